"""Whether a mail proves it comes from the person it names, for the case it is about.

Every header of an incoming mail is the sender's word. What we trust instead:

- the secret reply token in the address the mail came to (the SMTP/LMTP envelope recipient;
  for IMAP and ingested files the Delivered-To, X-Original-To, To and Cc headers, since the
  token itself is the secret), live, of this case and of this person;
- where the admin configured it, an authenticated From (`intake.trust.sender`).

A command acts only with the token, and with `[trust] commands = "token+authenticated"` also
an authenticated From. A reporter's follow-up is proven by the receipt's token or by an
authenticated From alone. A receipt goes out only to a From we can vouch for.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import getaddresses

from sqlalchemy.orm import Session

from intake.parse.headers import first_address, header_str
from intake.receive.addresses import RecipientPolicy, SenderPolicy, normalize_address
from intake.trust.sender import SenderCheck
from storage.models import Message, MessageSource
from storage.reply_tokens import TokenState, find_token

log = logging.getLogger("chikanemail.intake.proof")

# The headers an IMAP mailbox's mail names its recipients in; the first two are written by
# the delivering server, the others by the sender (a token there is still the secret).
_RECIPIENT_HEADERS = ("Delivered-To", "X-Original-To", "To", "Cc")
_ENVELOPE_SOURCES = (MessageSource.SMTP, MessageSource.LMTP)
# The command mode that also wants an authenticated From.
AUTHENTICATED_MODE = "token+authenticated"


def addressed_to(row: Message, headers: EmailMessage) -> list[str]:
    """The addresses a mail came to: the envelope for SMTP/LMTP, else the headers."""
    if row.source in _ENVELOPE_SOURCES:
        return list(row.rcpt_tos or ())
    values = [value for name in _RECIPIENT_HEADERS for value in _header_values(headers, name)]
    return [address for _name, address in getaddresses(values) if "@" in address]


def _header_values(headers: EmailMessage, name: str) -> list[str]:
    try:
        return [str(value) for value in headers.get_all(name, [])]
    except Exception:  # a malformed header: no token from it
        log.info("recipient header %s could not be read", name)
        return []


def reply_token_of(session: Session, row: Message, headers: EmailMessage,
                   recipients: RecipientPolicy) -> TokenState | None:
    """The first token we issued among the addresses the mail came to (live or retired)."""
    for address in addressed_to(row, headers):
        token = recipients.token_in(address)
        if token is None:
            continue
        found = find_token(session, token)
        if found is not None:
            return found
    return None


def refusal(case_id: int, claimed: str, token: TokenState | None, check: SenderCheck,
            command_mode: str) -> str | None:
    """Why a mail claiming to be from `claimed` may not act on the case; None when it may.

    The codes: the sender check's code for a From that is not one address; `no-token`,
    `token-for-another-case`, `token-retired`, `token-for-another-person`; and, when the
    mode wants an authenticated From, the sender check's failing code or
    `not-authenticated`.
    """
    if check.from_address is None:
        return check.code
    if token is None:
        return "no-token"
    if token.case_id != case_id:
        return "token-for-another-case"
    if not token.live:
        return "token-retired"
    if token.address != normalize_address(claimed):
        return "token-for-another-person"
    if command_mode == AUTHENTICATED_MODE and not check.authenticated:
        return check.code if check.code not in ("not-checked", "") else "not-authenticated"
    return None


def follow_up_refusal(case_id: int, reporter: str, token: TokenState | None,
                      check: SenderCheck, command_mode: str) -> str | None:
    """Why a mail is not proven to be the reporter's own follow-up; None when it is: the
    receipt's token (as for a command), or an authenticated From that is the reporter."""
    if check.authenticated and check.from_address == normalize_address(reporter):
        return None
    return refusal(case_id, reporter, token, check, command_mode)


@dataclass(frozen=True)
class ReceiptPolicy:
    """Who may get a receipt: an allowed domain, and a From we can vouch for."""

    domains: SenderPolicy
    authenticates: bool

    @classmethod
    def from_settings(cls, allowed_sender_domains: Iterable[str],
                      intake_addresses: Iterable[str], authenticates: bool) -> ReceiptPolicy:
        """Allowed sender domains, or with none configured the intake's own domains."""
        domains = list(allowed_sender_domains) or [
            address.rpartition("@")[2] for address in intake_addresses]
        return cls(SenderPolicy.from_domains(domains), authenticates)

    def why_not(self, row: Message, headers: EmailMessage, check: SenderCheck) -> str | None:
        """Why the report's From gets no receipt; None when it may get one.

        With authentication configured the From must pass it. Otherwise, as a guard against
        casual forgery only, the From must equal the envelope sender (SMTP/LMTP) or the
        Return-Path (IMAP, ingested files).
        """
        if check.from_address is None:
            return check.code
        if not self.domains.admits(check.from_address):
            return "domain-not-allowed"
        if self.authenticates:
            return None if check.authenticated else (
                check.code if check.code != "not-checked" else "not-authenticated")
        envelope = (row.mail_from if row.source in _ENVELOPE_SOURCES
                    else _return_path(headers))
        if envelope is None or normalize_address(envelope) != check.from_address:
            return "envelope-differs"
        return None


def _return_path(headers: EmailMessage) -> str | None:
    return first_address(header_str(headers, "Return-Path"))
