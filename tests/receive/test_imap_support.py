"""Helpers the IMAP tests share (this module holds no tests): mailboxes on the Dovecot
fixture, mails to put in them, and a look at what is left in a folder."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import secrets
import signal
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from imapclient import IMAPClient

from intake.receive.imap.receiver import ImapReceiver
from intake.service.config import AppConfig
from intake.service.daemon import Services, open_services
from intake.service.settings import ImapMailbox
from storage.messages import get_message_by_sha256
from storage.models import Message
from tests.dovecot import Dovecot
from tests.support import make_config, write_toml

PASSWORD = "secret"  # noqa: S105  # the fixture user's test password
# Dovecot's default namespace uses "." between levels: the configured
# "Chikanemail/Behandlet" is this folder on the server.
PROCESSED = "Chikanemail.Behandlet"


def mailbox_for(dovecot: Dovecot, secrets_dir: Path, **overrides: Any) -> ImapMailbox:
    """An [[imap]] mailbox for the fixture's user, its password in a file in `secrets_dir`."""
    password_file = secrets_dir / "imap-password"
    if not password_file.exists():
        password_file.write_text(PASSWORD + "\n", encoding="utf-8")
    mailbox = ImapMailbox(name="intake", host="127.0.0.1", username="intake",
                          port=dovecot.port, password_file=str(password_file),
                          ca_file=str(dovecot.ca_file), timeout_seconds=10.0)
    return replace(mailbox, **overrides)


def write_config(path: Path, tables: dict[str, dict[str, Any]],
                 mailboxes: list[ImapMailbox]) -> Path:
    """A TOML config file of these tables and one [[imap]] table per mailbox (every key)."""
    write_toml(path, tables)
    lines = []
    for mailbox in mailboxes:
        lines.append("[[imap]]")
        for field in dataclasses.fields(mailbox):
            value = getattr(mailbox, field.name)
            lines.append(f"{field.name} = {json.dumps(value)}")  # JSON scalars are TOML too
        lines.append("")
    with path.open("a", encoding="utf-8") as file:
        file.write("\n".join(lines))
    return path


def services_for(tmp_path: Path, database_url: str, **overrides: Any) -> tuple[AppConfig,
                                                                              Services]:
    """A test config (its own data dir and database) and the accept path built from it."""
    config = make_config(tmp_path / "data", database_url, **overrides)
    return config, open_services(config)


@contextmanager
def running(receiver: ImapReceiver) -> Iterator[ImapReceiver]:
    """The receiver's thread for the length of the block; it must stop within 5 s."""
    receiver.start()
    try:
        yield receiver
    finally:
        assert receiver.stop(5.0), "the receiver did not stop within 5 s"


@contextmanager
def imap(dovecot: Dovecot) -> Iterator[IMAPClient]:
    """A second, independent session on the fixture (what a mail program would do)."""
    context = ssl.create_default_context(cafile=str(dovecot.ca_file))
    with IMAPClient("127.0.0.1", port=dovecot.port, ssl_context=context, timeout=10) as client:
        client.login("intake", PASSWORD)
        yield client


def session_processes(dovecot: Dovecot) -> list[int]:
    """The fixture's per-connection processes (imap-login and imap), children of its master."""
    assert dovecot.process is not None
    master = dovecot.process.pid
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # ended meanwhile
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        parent = int(stat[stat.rindex(")") + 2:].split()[1])
        if parent == master and name in ("imap", "imap-login"):
            found.append(int(entry.name))
    return found


def restart_dropping_sessions(dovecot: Dovecot, how: signal.Signals = signal.SIGTERM) -> None:
    """Restart Dovecot and end the sessions of the old instance with a signal.

    The fixture's Dovecot lets running sessions outlive its master (as `shutdown_clients =
    no` does); a restart that drops them is what a client has to survive. SIGTERM makes a
    session say "* BYE Server shutting down"; SIGKILL just closes the connection.
    """
    sessions = session_processes(dovecot)
    assert sessions, "no session of the old instance to drop"
    dovecot.restart()
    end_processes(sessions, how)


def drop_sessions(dovecot: Dovecot, how: signal.Signals = signal.SIGKILL) -> None:
    """End every open session of the (running) server, as a crashed backend would."""
    sessions = session_processes(dovecot)
    assert sessions, "no session to drop"
    end_processes(sessions, how)


def end_processes(pids: list[int], how: signal.Signals) -> None:
    """Signal these processes of the fixture (those already gone are fine)."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, how)


def make_mail(label: str, body_bytes: int = 200) -> bytes:
    """A distinct CRLF mail with about `body_bytes` of body."""
    token = secrets.token_hex(8)
    lines = [f"line {n} of {label} {token}" for n in range(body_bytes // 30 + 1)]
    return (f"From: Ansat <ansat@kommune.example>\r\n"
            f"To: <chikanemail@kommune.example>\r\n"
            f"Subject: {label}\r\n"
            f"Message-ID: <{label}-{token}@kommune.example>\r\n"
            f"\r\n" + "\r\n".join(lines) + "\r\n").encode()


def append(dovecot: Dovecot, *mails: bytes, folder: str = "INBOX") -> None:
    """APPEND the mails to a folder of the fixture's user."""
    with imap(dovecot) as client:
        for mail in mails:
            client.append(folder, mail)


def folder_contents(dovecot: Dovecot, folder: str) -> list[bytes]:
    """The exact bytes of every message in a folder, in UID order ([] if it does not exist)."""
    with imap(dovecot) as client:
        if not client.folder_exists(folder):
            return []
        client.select_folder(folder, readonly=True)
        uids = client.search("ALL")
        fetched = client.fetch(uids, ["BODY.PEEK[]"]) if uids else {}
        return [fetched[uid][b"BODY[]"] for uid in sorted(fetched)]


def stored_row(services: Services, raw: bytes) -> Message | None:
    """The message row for these exact bytes, if stored."""
    return get_message_by_sha256(services.database, hashlib.sha256(raw).hexdigest())
