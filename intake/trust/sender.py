"""Whether an incoming mail's From is authenticated.

Every header of an incoming mail is the sender's word. A From address counts as proven only
when the mail has exactly one From field holding exactly one address and either

- a DKIM signature we verify ourselves on the exact raw bytes (`[trust] dkim`) has a d=
  aligned with the From domain, or
- the admin's own border server (`[trust] authserv_ids`) says so in the Authentication-
  Results fields on top of the mail: a dkim=pass whose header.d (or header.i) is aligned.

Alignment is DMARC's relaxed alignment: the same organizational domain by the public suffix
list shipped with `publicsuffixlist` (never fetched at run time). SPF results and dmarc=pass
never count on their own: SPF says nothing about the From field, and a dmarc=pass is only
as good as the inputs the DMARC filter trusted (see docs/trust.md).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from email.errors import HeaderParseError
from email.headerregistry import AddressHeader
from email.policy import default as default_policy
from functools import cache
from typing import Any

import dkim
from publicsuffixlist import PublicSuffixList

from intake.service.settings import TrustSettings
from intake.trust.auth_results import trusted_dkim_passes
from intake.trust.dkim import DnsTemporaryError, verify_signatures

__all__ = [
    "AUTHSERV_FAIL", "AUTHSERV_PASS", "DKIM_FAIL", "DKIM_PASS", "NOT_ALIGNED", "NOT_CHECKED",
    "NO_FROM", "NO_SIGNATURE", "SEVERAL_FROM", "UNREADABLE",
    "DnsTemporaryError", "SenderCheck", "aligned", "check_sender",
]

log = logging.getLogger(__name__)

# The codes of `SenderCheck.code`. Only DKIM_PASS and AUTHSERV_PASS mean authenticated
# (the two "noqa: S105" say these are codes, not passwords).
DKIM_PASS = "dkim-pass"  # noqa: S105  # a signature we verified, aligned with From
AUTHSERV_PASS = "authserv-pass"  # noqa: S105  # the admin's server's dkim=pass, aligned
DKIM_FAIL = "dkim-fail"  # signatures present, none of them verifies (or counts)
NOT_ALIGNED = "not-aligned"  # a signature verifies, but for an unrelated domain
NO_SIGNATURE = "no-signature"  # no DKIM-Signature field at all
AUTHSERV_FAIL = "authserv-fail"  # no dkim=pass in the trusted Authentication-Results
NOT_CHECKED = "not-checked"  # neither [trust] dkim nor authserv_ids is configured
NO_FROM = "no-from"  # no From field, or one without an address
SEVERAL_FROM = "several-from"  # more than one From field, or one with several addresses
UNREADABLE = "unreadable"  # the header block or the From field cannot be read safely

# A line ending inside the header block that is a bare CR: dkimpy and Python's email
# package would disagree about where fields begin, so such a mail is never authenticated.
_BARE_CR = re.compile(rb"\r(?!\n)")
_END_OF_HEADERS = re.compile(rb"\n\r?\n")
_HOSTNAME_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


@dataclass(frozen=True)
class SenderCheck:
    """The verdict on a mail's sender.

    `code` is one of the module's codes; `authenticated` is True only when the single From
    address is proven; `from_address` is that address case-folded (None unless the mail has
    exactly one From field holding exactly one address); `domain` is the DKIM d= (or
    header.d) domain that passed and aligned, if any.
    """

    code: str
    authenticated: bool
    from_address: str | None
    domain: str | None


@dataclass(frozen=True)
class _From:
    address: str
    domain: str  # ASCII (A-label) form, lower case


def check_sender(raw: bytes, settings: TrustSettings) -> SenderCheck:
    """Judge whether the From of the raw mail `raw` is authenticated under `settings`.

    Never raises for anything in the mail itself; raises `DnsTemporaryError` when a DKIM
    key lookup that could have authenticated the sender failed temporarily and nothing else
    authenticated it (the caller retries later).
    """
    try:
        return _check(raw, settings)
    except DnsTemporaryError:
        raise
    except Exception as error:  # no input may crash the daemon (DESIGN.md)
        log.warning("sender check could not read the mail (%s)", type(error).__name__)
        return SenderCheck(UNREADABLE, False, None, None)


def _check(raw: bytes, settings: TrustSettings) -> SenderCheck:
    headers = _header_fields(raw)
    if headers is None:
        return SenderCheck(UNREADABLE, False, None, None)
    sender = _single_from(headers)
    if isinstance(sender, str):
        return SenderCheck(sender, False, None, None)
    if not settings.authenticates:
        return SenderCheck(NOT_CHECKED, False, sender.address, None)

    by_server = _by_authserv(headers, settings, sender) if settings.authserv_ids else None
    if not settings.dkim:
        assert by_server is not None  # settings.authenticates
        return by_server
    try:
        verdict = verify_signatures(raw, settings, lambda domain: aligned(domain, sender.domain))
    except DnsTemporaryError:
        if by_server is not None and by_server.authenticated:
            return by_server
        raise
    if verdict.aligned_pass is not None:
        return SenderCheck(DKIM_PASS, True, sender.address, verdict.aligned_pass)
    if by_server is not None and by_server.authenticated:
        return by_server
    if verdict.unaligned_pass:
        return SenderCheck(NOT_ALIGNED, False, sender.address, None)
    code = DKIM_FAIL if verdict.signatures else NO_SIGNATURE
    return SenderCheck(code, False, sender.address, None)


def _by_authserv(headers: list[tuple[bytes, bytes]], settings: TrustSettings,
                 sender: _From) -> SenderCheck:
    """The verdict of the admin's own server's Authentication-Results alone."""
    domains = trusted_dkim_passes(headers, settings.authserv_ids)
    for domain in domains:
        if aligned(domain, sender.domain):
            return SenderCheck(AUTHSERV_PASS, True, sender.address, domain)
    code = NOT_ALIGNED if domains else AUTHSERV_FAIL
    return SenderCheck(code, False, sender.address, None)


def aligned(signing_domain: str, from_domain: str) -> bool:
    """Whether a DKIM signing domain is aligned with a From domain (DMARC relaxed mode).

    The same domain always aligns; otherwise both must have the same organizational domain
    (the registrable domain by the public suffix list, private entries included, so
    one.github.io does not align with other.github.io).
    """
    signer, author = _ascii_domain(signing_domain), _ascii_domain(from_domain)
    if signer is None or author is None:
        return False
    if signer == author:
        return True
    organizational = _public_suffixes().privatesuffix(signer)
    return organizational is not None and organizational == _public_suffixes().privatesuffix(
        author)


@cache
def _public_suffixes() -> Any:
    """The public suffix list shipped with the package (loaded once, about 50 ms)."""
    return PublicSuffixList()


def _ascii_domain(domain: str) -> str | None:
    """`domain` in lower-case A-label form, or None when it is not a host name."""
    text = domain.strip().rstrip(".").lower()
    try:
        text = text.encode("idna").decode("ascii") if not text.isascii() else text
    except UnicodeError:
        return None
    labels = text.split(".")
    # One label is a host name too: `localhost`, the embedded defaults' intake domain, whose
    # first-run mail (README, "Send a first mail") gets its receipt.
    if len(text) > 253:
        return None
    if not all(_HOSTNAME_LABEL.fullmatch(label) for label in labels):
        return None
    return text


def _header_fields(raw: bytes) -> list[tuple[bytes, bytes]] | None:
    """(name, raw value) of each header field, split the way dkimpy splits them.

    None when the header block has a bare CR or a line that is not a field (dkimpy would
    refuse the mail, and other parsers would read it differently).
    """
    if raw.startswith((b"\r\n", b"\n")):
        return []
    end = _END_OF_HEADERS.search(raw)
    block = raw[:end.start() + 1] if end else raw
    if _BARE_CR.search(block):
        return None
    try:
        headers, _ = dkim.rfc822_parse(block)
    except Exception:  # MessageFormatError, or IndexError on a leading fold
        return None
    return [(bytes(name), bytes(value)) for name, value in headers]


def _single_from(headers: list[tuple[bytes, bytes]]) -> _From | str:
    """The one From address, or the code saying why there is none."""
    values = [value for name, value in headers if name.lower() == b"from"]
    if not values:
        return NO_FROM
    if len(values) > 1:
        return SEVERAL_FROM
    try:
        text = re.sub(r"\r?\n", "", values[0].decode("utf-8")).strip()
        field = default_policy.header_factory("from", text)
    except (UnicodeDecodeError, HeaderParseError, ValueError, IndexError):
        return UNREADABLE
    assert isinstance(field, AddressHeader)
    addresses = field.addresses
    defects = tuple(getattr(field, "defects", ()))  # BaseHeader's, missing from the stubs
    if not addresses:
        return NO_FROM if not defects else UNREADABLE
    if len(addresses) > 1:
        return SEVERAL_FROM
    if defects:
        return UNREADABLE
    address = addresses[0]
    # Python's parser decodes RFC 2047 words inside an address; the address we judge must be
    # written in the field as it stands.
    if not address.username or address.username not in text or address.domain not in text:
        return UNREADABLE
    domain = _ascii_domain(address.domain)
    if domain is None:
        return UNREADABLE
    return _From(address=address.addr_spec.casefold(), domain=domain)
