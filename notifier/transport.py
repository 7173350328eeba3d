"""How a rendered mail leaves: an SMTP relay, or a local Maildir when no relay is configured.

A transport either hands the mail over or raises one of two errors: `TemporarySendError`
(try again later: 4xx replies, a relay that is down, slow or hangs up) or
`PermanentSendError` (the relay refused this mail for good: 5xx for it or for every
recipient). Problems with the relay itself (login, STARTTLS, greeting) are temporary: the
mail is fine, and an admin can fix the relay or the configuration before the deadline.
"""

from __future__ import annotations

import logging
import mailbox
import os
import secrets
import smtplib
import socket
import ssl
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from notifier.settings import NotifySettings
from storage.errors import ChikanemailError, SettingsError

log = logging.getLogger("chikanemail.notifier.transport")

OUTGOING_MAILDIR = "outgoing-maildir"


class SendError(ChikanemailError):
    """A mail was not handed over."""


class TemporarySendError(SendError):
    """A mail was not handed over this time; trying again later may work."""


class PermanentSendError(SendError):
    """The relay refused a mail for good; trying again will not help."""


@dataclass(frozen=True)
class SendResult:
    """What the relay did with a mail it accepted: recipients it refused for good, if any."""

    refused: Mapping[str, tuple[int, str]] = field(default_factory=dict)

    def describe_refused(self) -> str | None:
        """The refused recipients and the relay's replies, as one line (None when none)."""
        if not self.refused:
            return None
        return "refused for good: " + "; ".join(
            f"{address}: {code} {text}" for address, (code, text) in sorted(self.refused.items())
        )


class Transport(Protocol):
    """Hands one rendered mail to whatever delivers it."""

    def send(self, mail_from: str, rcpt_tos: Sequence[str], raw: bytes) -> SendResult:
        """Deliver `raw` unchanged to the recipients, or raise a `SendError`."""
        ...


class SmtpTransport:
    """Sends through the configured relay, one connection per mail.

    A mail some recipients refused with 4xx is retried as a whole, so recipients that
    accepted it get it again with the same Message-ID; a receiving side that counts mails
    must dedupe by Message-ID. Recipients refused with 5xx are logged and reported.
    """

    def __init__(self, settings: NotifySettings) -> None:
        if not settings.smtp_host:
            raise SettingsError(None, "notify.smtp_host", "empty; no relay to send through")
        if settings.username and not settings.password_file:
            raise SettingsError(
                None, "notify.password_file", "required when notify.username is set"
            )
        self.host = settings.smtp_host
        self.port = settings.smtp_port
        self.timeout = settings.timeout_seconds
        self.starttls = settings.starttls
        self.username = settings.username
        self.password_file = Path(settings.password_file) if settings.password_file else None
        if self.username:
            self._read_password()  # fail at start, not at the first mail
            if not self.starttls:
                log.warning("notify.username is set without notify.starttls: the password "
                            "crosses the network in clear text to %s", self.host)

    def __repr__(self) -> str:
        return f"SmtpTransport({self.host}:{self.port})"

    def send(self, mail_from: str, rcpt_tos: Sequence[str], raw: bytes) -> SendResult:
        """Hand the mail to the relay, or raise Temporary/PermanentSendError."""
        if not rcpt_tos:
            raise PermanentSendError("no recipients")
        try:
            client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        except smtplib.SMTPConnectError as error:
            raise TemporarySendError(
                f"relay {self.host}:{self.port} refused the connection: "
                f"{error.smtp_code} {_text(error.smtp_error)}"
            ) from error
        except OSError as error:
            raise TemporarySendError(
                f"cannot connect to relay {self.host}:{self.port}: {_os_error(error)}"
            ) from error
        try:
            refused = self._transact(client, mail_from, list(rcpt_tos), raw)
        finally:
            _quit_quietly(client)
        result = SendResult({address: (code, _text(text))
                             for address, (code, text) in refused.items()})
        if result.refused:
            log.warning("relay accepted a mail but refused some recipients for good: %s",
                        result.describe_refused())
        return result

    def _transact(self, client: smtplib.SMTP, mail_from: str, rcpt_tos: list[str],
                  raw: bytes) -> dict[str, tuple[int, bytes]]:
        try:
            client.ehlo_or_helo_if_needed()
            if self.starttls:
                client.starttls(context=ssl.create_default_context())
                client.ehlo_or_helo_if_needed()
            if self.username:
                client.login(self.username, self._read_password())
            refused = client.sendmail(mail_from, rcpt_tos, raw,
                                      _mail_options(client, mail_from, rcpt_tos, raw))
        except smtplib.SMTPRecipientsRefused as error:
            raise _classify_refused(error.recipients, everyone=True) from error
        except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as error:
            stage = "MAIL FROM" if isinstance(error, smtplib.SMTPSenderRefused) else "DATA"
            raise _by_code(error.smtp_code, f"relay answered {stage} with "
                           f"{error.smtp_code} {_text(error.smtp_error)}") from error
        except smtplib.SMTPServerDisconnected as error:
            raise TemporarySendError(f"relay closed the connection: {error}") from error
        except smtplib.SMTPResponseException as error:
            # Greeting, EHLO, STARTTLS or AUTH refused: the relay or our settings, not the mail.
            raise TemporarySendError(
                f"relay refused the session: {error.smtp_code} {_text(error.smtp_error)}"
            ) from error
        except smtplib.SMTPException as error:
            raise TemporarySendError(f"relay session failed: {error}") from error
        except SettingsError as error:
            raise TemporarySendError(str(error)) from error
        except UnicodeEncodeError as error:
            raise PermanentSendError(
                "an address is not ASCII and the relay does not offer SMTPUTF8"
            ) from error
        except OSError as error:  # timeouts, resets, TLS failures
            raise TemporarySendError(f"connection to relay failed: {_os_error(error)}") from error
        if any(code < 500 for code, _ in refused.values()):
            # Some recipients have it, some should get it later: send it again as a whole.
            raise _classify_refused(refused, everyone=False)
        return refused

    def _read_password(self) -> str:
        if self.password_file is None:
            raise SettingsError(None, "notify.password_file",
                                "required when notify.username is set")
        try:
            password = self.password_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as error:
            reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
            raise SettingsError(
                None, "notify.password_file", f"cannot read {self.password_file}: {reason}"
            ) from error
        if not password:
            raise SettingsError(None, "notify.password_file", f"{self.password_file} is empty")
        return password


def _mail_options(client: smtplib.SMTP, mail_from: str, rcpt_tos: Sequence[str],
                  raw: bytes) -> list[str]:
    options: list[str] = []
    if not raw.isascii() and client.has_extn("8bitmime"):
        options.append("BODY=8BITMIME")
    if not all(address.isascii() for address in (mail_from, *rcpt_tos)) and client.has_extn(
        "smtputf8"
    ):
        options.append("SMTPUTF8")
    return options


def _classify_refused(refused: Mapping[str, tuple[int, bytes]], *, everyone: bool) -> SendError:
    replies = "; ".join(f"{address}: {code} {_text(text)}"
                        for address, (code, text) in sorted(refused.items()))
    if everyone and refused and all(code >= 500 for code, _ in refused.values()):
        return PermanentSendError(f"relay refused every recipient: {replies}")
    who = "every recipient" if everyone else "some recipients"
    return TemporarySendError(f"relay refused {who} (retrying the whole mail): {replies}")


def _by_code(code: int, description: str) -> SendError:
    if 500 <= code < 600:
        return PermanentSendError(description)
    return TemporarySendError(description)


def _quit_quietly(client: smtplib.SMTP) -> None:
    """End the session; the outcome of the mail is already known, so errors here do not count."""
    try:
        client.quit()
    except (smtplib.SMTPException, OSError):
        pass
    finally:
        client.close()


def _text(reply: bytes | str) -> str:
    if isinstance(reply, bytes):
        reply = reply.decode("utf-8", errors="replace")
    return " ".join(reply.split())


def _os_error(error: OSError) -> str:
    if isinstance(error, TimeoutError | socket.timeout):
        return "timed out"
    return f"{type(error).__name__}: {error.strerror or error}"


class MaildirTransport:
    """Writes each mail into a local Maildir: the default when no relay is configured.

    The folder is created owner-only (0700) and each mail file 0600 from its first byte;
    a mail is fsync'd in tmp/ and renamed into new/, so a reader never sees half a mail.
    The envelope is not kept (the outbox row has it); the file holds the exact bytes.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"MaildirTransport({self.path})"

    def send(self, mail_from: str, rcpt_tos: Sequence[str], raw: bytes) -> SendResult:
        """Store the mail's exact bytes in the Maildir's new/ folder."""
        try:
            self._deliver(raw)
        except OSError as error:
            raise TemporarySendError(
                f"cannot write to the Maildir {self.path}: {_os_error(error)}"
            ) from error
        return SendResult()

    def _deliver(self, raw: bytes) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        mailbox.Maildir(self.path, create=True)  # the tmp/new/cur folders, 0700
        name = _unique_name()
        temporary = self.path / "tmp" / name
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(raw)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            temporary.unlink(missing_ok=True)
            raise
        os.close(fd)
        os.rename(temporary, self.path / "new" / name)
        _fsync_folder(self.path / "new")


def _unique_name() -> str:
    """A Maildir file name: time, process, a random part, host (per the Maildir spec)."""
    now = time.time()
    host = socket.gethostname().replace("/", r"\057").replace(":", r"\072")
    return f"{int(now)}.M{int(now % 1 * 1e6)}P{os.getpid()}R{secrets.token_hex(8)}.{host}"


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def transport_for(settings: NotifySettings, data_dir: Path) -> Transport:
    """The transport the settings ask for: the relay, or the Maildir under the data folder."""
    if settings.smtp_host:
        return SmtpTransport(settings)
    return MaildirTransport(Path(data_dir) / OUTGOING_MAILDIR)
