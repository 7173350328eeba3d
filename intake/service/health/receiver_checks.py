"""Health checks of what takes mail in: the SMTP/LMTP listener and its 451s, the IMAP mailboxes
and mail left on their servers."""

from __future__ import annotations

import contextlib
import socket
from datetime import datetime, timedelta
from typing import Any

from intake.receive.smtp.answers import (
    ANSWER_WINDOW,
    OWN_FAILURES,
    RefusalReason,
    read_status_file,
    status_file_path,
)
from intake.service.health.findings import (
    MIB,
    CheckStatus,
    Decimals,
    Finding,
    HealthInputs,
    Phrase,
    format_age,
    joined,
)
from storage.i18n.catalogs import N_
from storage.imap_state import folder_status, oversized_messages

# How long the listener check waits for a connection and for the 220 greeting.
LISTENER_TIMEOUT_SECONDS = 3.0


# Why the daemon answered 451, in words; the count follows as `n`.
REFUSAL_WORDS: dict[RefusalReason, str] = {
    RefusalReason.STORAGE_FULL: N_("storage full: {n}"),
    RefusalReason.STORAGE: N_("storage: {n}"),
    RefusalReason.DATABASE: N_("database: {n}"),
    RefusalReason.OTHER: N_("other: {n}"),
}


# A mailbox whose last successful check is older than this is worth a look.
IMAP_STALE_AFTER = timedelta(minutes=10)


def _connectable_host(host: str) -> str:
    """Where to connect to reach a listener bound to `host` (a wildcard means this machine)."""
    return {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # noqa: S104


def _read_line(connection: socket.socket, limit: int = 512) -> bytes:
    """The first line the peer sends (up to `limit` bytes), or what came before it closed."""
    received = b""
    while b"\n" not in received and len(received) < limit:
        chunk = connection.recv(limit - len(received))
        if not chunk:
            break
        received += chunk
    return received


def check_listeners(inputs: HealthInputs) -> Finding:
    """The [smtp] listener accepts a connection and greets with 220 (skipped when disabled)."""
    smtp = inputs.config.smtp
    kind = "LMTP" if smtp.lmtp else "SMTP"
    details: dict[str, Any] = {"kind": kind, "host": smtp.host, "port": smtp.port}
    if not smtp.enabled:
        return Finding(CheckStatus.SKIPPED,
                       Phrase.gettext("[smtp] enabled = false: no listener"), details)
    where = f"{smtp.host}:{smtp.port}"
    try:
        with socket.create_connection((_connectable_host(smtp.host), smtp.port),
                                      timeout=LISTENER_TIMEOUT_SECONDS) as connection:
            greeting = _read_line(connection).decode("ascii", "replace")
            with contextlib.suppress(OSError):  # the greeting is what counts
                connection.sendall(b"QUIT\r\n")
    except OSError as error:
        reason = error.strerror or type(error).__name__
        return Finding(CheckStatus.FAIL, Phrase.gettext(
            "nothing answers on {where} ({kind})", system=reason, where=where, kind=kind),
            details)
    details["greeting"] = greeting.strip()
    if not greeting.startswith("220"):
        # The greeting is the server's own words: shown as they came.
        return Finding(CheckStatus.FAIL, Phrase.gettext(
            "{kind} on {where} did not greet with 220", system=repr(greeting.strip()[:80]),
            kind=kind, where=where), details)
    return Finding(CheckStatus.OK, Phrase.gettext("{kind} on {where} greets with 220",
                                                  kind=kind, where=where), details)


def check_imap(inputs: HealthInputs) -> Finding:
    """Each [[imap]] mailbox: connected and checked within 10 minutes; never checked
    successfully while errors are recorded is a failure."""
    assert inputs.database is not None
    mailboxes = inputs.config.imap
    if not mailboxes:
        return Finding(CheckStatus.SKIPPED,
                       Phrase.gettext("no [[imap]] mailboxes configured"))
    worst = CheckStatus.OK
    lines: list[Phrase] = []
    entries: list[dict[str, Any]] = []
    for mailbox in mailboxes:
        state = folder_status(inputs.database, mailbox.name, mailbox.folder)
        connected = state.connected if state else False
        success = state.last_success_at if state else None
        error = state.last_error if state else None
        age = inputs.now - success if success is not None else None
        name = mailbox.name
        if success is None and error:
            status = CheckStatus.FAIL
            line = Phrase.gettext("{mailbox}: never worked", system=error, mailbox=name)
        elif success is None:
            status = CheckStatus.WARN
            line = Phrase.gettext("{mailbox}: not checked yet", mailbox=name)
        elif not connected or (age is not None and age > IMAP_STALE_AFTER):
            status = CheckStatus.WARN
            since = format_age(age or timedelta())
            if connected:
                line = Phrase.gettext("{mailbox}: connected, last success {age} ago",
                                      mailbox=name, age=since)
            else:
                line = Phrase.gettext("{mailbox}: not connected, last success {age} ago",
                                      mailbox=name, age=since)
            if error:
                line = line.followed_by(Phrase.gettext("last error", system=error))
        else:
            status, line = CheckStatus.OK, Phrase.gettext("{mailbox}: ok", mailbox=name)
        if status == CheckStatus.FAIL or (status == CheckStatus.WARN
                                          and worst == CheckStatus.OK):
            worst = status
        lines.append(line)
        entries.append({"name": mailbox.name, "folder": mailbox.folder, "status": status.value,
                        "connected": connected,
                        "last_success_age_seconds": (int(age.total_seconds())
                                                     if age is not None else None),
                        "last_error": error})
    return Finding(worst, joined(lines), {"mailboxes": entries})


def _times(entry: Any) -> list[datetime]:
    """The 451 times of one reason in the status file."""
    times = entry.get("times", []) if isinstance(entry, dict) else []
    return [datetime.fromisoformat(value) for value in times]


def check_smtp_answers(inputs: HealthInputs) -> Finding:
    """451s the daemon answered in the last 15 minutes because our storage or database
    failed: a failure while no message was stored since the last one, a warning once mail is
    stored again (until they leave the window). Read from the status file the daemon
    publishes, so it works with the disk full and the database down."""
    config = inputs.config
    if not config.smtp.enabled:
        return Finding(CheckStatus.SKIPPED,
                       Phrase.gettext("[smtp] enabled = false: no listener"))
    path = status_file_path(config.health.status_dir, config.storage.data_path)
    details: dict[str, Any] = {"path": str(path)}
    try:
        status = read_status_file(path)
    except (OSError, ValueError) as error:
        return Finding(CheckStatus.WARN, Phrase.gettext("cannot read {path}", system=str(error),
                                                        path=str(path)), details)
    if status is None:
        return Finding(CheckStatus.WARN, Phrase.gettext(
            "no status from the daemon at {path}: it is not running, or it writes elsewhere "
            "([health] status_dir)", path=str(path)), details)
    since = inputs.now - ANSWER_WINDOW
    refused = status["refused_451"]
    recent = {reason: [at for at in _times(refused.get(reason.value)) if at >= since]
              for reason in RefusalReason}
    own = [at for reason in OWN_FAILURES for at in recent[reason]]
    others = recent[RefusalReason.OTHER]
    stored_at = (datetime.fromisoformat(status["last_stored_at"])
                 if status.get("last_stored_at") else None)
    details.update({"pid": status.get("pid"),
                    "window_seconds": int(ANSWER_WINDOW.total_seconds()),
                    "refused_451": {reason.value: len(times) for reason, times in recent.items()},
                    "last_refused_at": max(own + others).isoformat() if own or others else None,
                    "last_stored_at": stored_at.isoformat() if stored_at else None})
    counts = tuple(Phrase.gettext(REFUSAL_WORDS[reason], n=len(times))
                   for reason, times in recent.items() if times)
    window = format_age(ANSWER_WINDOW)
    if own:
        last = max(own)
        summary = Phrase.ngettext(
            "{n} message answered 451 in the last {window} ({counts}), the last {age} ago",
            "{n} messages answered 451 in the last {window} ({counts}), the last {age} ago",
            len(own) + len(others), window=window, counts=counts,
            age=format_age(inputs.now - last))
        if stored_at is None or stored_at < last:
            return Finding(CheckStatus.FAIL, summary.followed_by(
                Phrase.gettext("no message stored since")), details)
        return Finding(CheckStatus.WARN, summary.followed_by(Phrase.gettext(
            "mail is stored again since {age} ago", age=format_age(inputs.now - stored_at))),
            details)
    if others:
        return Finding(CheckStatus.WARN, Phrase.ngettext(
            "{n} message answered 451 in the last {window} for errors of ours (see the log), "
            "the last {age} ago",
            "{n} messages answered 451 in the last {window} for errors of ours (see the log), "
            "the last {age} ago",
            len(others), window=window, age=format_age(inputs.now - max(others))), details)
    return Finding(CheckStatus.OK, Phrase.gettext("no 451 in the last {window}",
                                                  window=window), details)


def check_imap_left(inputs: HealthInputs) -> Finding:
    """Mail left on an IMAP server because it is over max_message_bytes: a warning with the
    count and the oldest, per mailbox."""
    assert inputs.database is not None
    left = oversized_messages(inputs.database)
    if not left and not inputs.config.imap:
        return Finding(CheckStatus.SKIPPED,
                       Phrase.gettext("no [[imap]] mailboxes configured"))
    if not left:
        return Finding(CheckStatus.OK, Phrase.gettext("no mail left on the server"),
                       {"left": 0})
    mailboxes: dict[str, list[Any]] = {}
    for message in left:
        mailboxes.setdefault(message.mailbox, []).append(message)
    entries: list[dict[str, Any]] = []
    lines: list[Phrase] = []
    for name, kept in mailboxes.items():
        oldest = min(kept, key=lambda message: message.seen_at)
        entries.append({"name": name, "left": len(kept),
                        "oldest_seen_at": oldest.seen_at.isoformat(),
                        "oldest_folder": oldest.folder, "oldest_uid": oldest.uid,
                        "oldest_size": oldest.size})
        lines.append(Phrase.gettext(
            "{mailbox}: {n} left on the server (over max_message_bytes), oldest seen {age} ago "
            "(UID {uid} in {folder}, {size} MiB): fetch it by hand or raise the limit",
            mailbox=name, n=len(kept), age=format_age(inputs.now - oldest.seen_at),
            uid=oldest.uid, folder=oldest.folder, size=Decimals(oldest.size / MIB, "0.0")))
    return Finding(CheckStatus.WARN, joined(lines), {"left": len(left), "mailboxes": entries})
