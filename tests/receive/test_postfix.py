"""The recipe of docs/postfix.md, run for real: a private Postfix instance delivers the
intake address to our LMTP listener, over TCP and over a unix socket.

SQLite only: what is under test is Postfix speaking LMTP to the listener; the store behind
it is the same on both databases and tests/receive/test_smtp.py covers PostgreSQL.

Needs Debian's postfix and swaks, and root (Postfix's master starts as root and runs its
daemons as the `postfix` user); skipped otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest

from notifier.transport import OUTGOING_MAILDIR
from storage.blobstore import BlobStore
from storage.cases import list_cases
from storage.database import Database
from storage.messages import list_messages
from tests.support import (
    INTAKE_ADDRESS,
    MANAGER,
    DaemonThread,
    free_port,
    make_config,
    wait_until,
)

SYSTEM_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
POSTFIX = shutil.which("postfix", path=SYSTEM_PATH)
POSTMAP = shutil.which("postmap", path=SYSTEM_PATH)
SWAKS = shutil.which("swaks", path=SYSTEM_PATH)


def _postfix_user_exists() -> bool:
    import pwd

    try:
        pwd.getpwnam("postfix")
    except KeyError:
        return False
    return True


pytestmark = pytest.mark.skipif(
    not (POSTFIX and POSTMAP and SWAKS) or os.geteuid() != 0 or not _postfix_user_exists(),
    reason="needs postfix, swaks, the postfix user and root",
)

SENDER = "ansat@kommune.example"
LOG_TAIL_LINES = 40

# Every service a relay needs, none chrooted (chroot would need a copy of /etc inside the
# queue folder; docs/postfix.md says which service must not be chrooted for the socket).
MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class PostfixInstance:
    """A private Postfix (own config, queue and data folders) relaying to one LMTP next hop."""

    def __init__(self, base: Path, nexthop: str) -> None:
        self.base = base
        self.config_dir = base / "etc"
        self.log_file = base / "maillog"
        self.port = free_port()
        self.config_dir.mkdir()
        # The queue folder belongs to root, the data folder to mail_owner; Postfix's
        # post-install creates the queue's subfolders with their owners at start.
        (base / "queue").mkdir(mode=0o755)
        (base / "data").mkdir(mode=0o700)
        shutil.chown(base / "data", user="postfix")
        # The lines of docs/postfix.md, with this instance's folders and port.
        main_cf = {
            "compatibility_level": "3.6",
            "queue_directory": str(base / "queue"),
            "data_directory": str(base / "data"),
            "mail_owner": "postfix",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "myhostname": "mx.kommune.example",
            "mydestination": "",
            "mynetworks": "127.0.0.0/8",
            "alias_maps": "",
            "alias_database": "",
            "relay_domains": "kommune.example",
            "relay_recipient_maps": f"hash:{self.config_dir / 'chikanemail-recipients'}",
            "transport_maps": f"hash:{self.config_dir / 'transport'}",
            "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
            "smtpd_peername_lookup": "no",
            "maillog_file_prefixes": str(base),
            "maillog_file": str(self.log_file),
            # The queue runs at once, and a failed delivery is retried soon, not in minutes.
            "queue_run_delay": "1s",
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "2s",
            # Replies come to chikanemail+<token>@…: found in both tables by the base address.
            "recipient_delimiter": "+",
        }
        (self.config_dir / "main.cf").write_text(
            "".join(f"{key} = {value}\n" for key, value in main_cf.items()), encoding="utf-8")
        (self.config_dir / "master.cf").write_text(MASTER_CF.format(port=self.port),
                                                   encoding="utf-8")
        (self.config_dir / "transport").write_text(f"{INTAKE_ADDRESS}  {nexthop}\n",
                                                   encoding="utf-8")
        (self.config_dir / "chikanemail-recipients").write_text(f"{INTAKE_ADDRESS}  OK\n",
                                                                encoding="utf-8")
        for table in ("transport", "chikanemail-recipients"):
            self._run(POSTMAP, "-c", str(self.config_dir), str(self.config_dir / table))

    def _run(self, *command: str | None) -> None:
        arguments = [str(part) for part in command]
        done = subprocess.run(arguments, capture_output=True, text=True, timeout=60,
                              check=False)
        assert done.returncode == 0, (
            f"{' '.join(arguments)} failed ({done.returncode}):\n{done.stdout}{done.stderr}\n"
            f"{self.log_tail()}")

    def start(self) -> None:
        """Start the master (it creates the queue folders with their owners)."""
        self._run(POSTFIX, "-c", str(self.config_dir), "start")

    def stop(self) -> None:
        """Stop the master and wait until it is gone."""
        self._run(POSTFIX, "-c", str(self.config_dir), "stop")

    def log_tail(self) -> str:
        """The last lines of this instance's log, to show when something fails."""
        try:
            lines = self.log_file.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return "(no Postfix log written)"
        return "Postfix log tail:\n" + "\n".join(lines[-LOG_TAIL_LINES:])

    def send_with_swaks(self, message_id: str, *, sender: str = SENDER,
                        to: str = INTAKE_ADDRESS, body: str = "Postfix recipe test") -> None:
        """Send one mail (to the intake address by default) through this Postfix's smtpd."""
        self._run(SWAKS, "--server", f"127.0.0.1:{self.port}", "--from", sender,
                  "--to", to, "--header", f"Message-Id: {message_id}",
                  "--header", "Subject: Postfix recipe test", "--body", body, "--silent", "2")


@pytest.fixture
def world_readable_dir() -> Iterator[Path]:
    """A folder the `postfix` user can reach (pytest's tmp_path is root-only)."""
    base = Path(tempfile.mkdtemp(prefix="chikanemail-postfix-"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def run_postfix(world_readable_dir: Path) -> Iterator[Callable[[str], PostfixInstance]]:
    """Start a private Postfix relaying the intake address to a next hop; stopped after."""
    started: list[PostfixInstance] = []

    def start(nexthop: str) -> PostfixInstance:
        instance = PostfixInstance(world_readable_dir, nexthop)
        instance.start()
        started.append(instance)
        return instance

    yield start
    for instance in started:
        instance.stop()


def _stored_with(daemon: DaemonThread, message_id: str) -> Any:
    """The message row whose blob holds this Message-ID, once stored; else None."""
    database = Database(daemon.config.storage.effective_database_url)
    store = BlobStore(daemon.config.storage.blob_root)
    try:
        for row in list_messages(database):
            if message_id.encode() in store.read_bytes(row.sha256):
                return row
        return None
    finally:
        database.dispose()


def _deliver_and_check(daemon: DaemonThread, postfix: PostfixInstance, name: str) -> None:
    message_id = f"<postfix-{name}-{os.getpid()}@kommune.example>"
    postfix.send_with_swaks(message_id)
    try:
        row = wait_until(lambda: _stored_with(daemon, message_id), timeout=60, interval=0.2,
                         message=f"the message {message_id} stored by the daemon")
    except AssertionError as error:
        raise AssertionError(f"{error}\n{postfix.log_tail()}") from None
    assert row.source == "lmtp", postfix.log_tail()
    assert row.mail_from == SENDER, postfix.log_tail()
    assert list(row.rcpt_tos) == [INTAKE_ADDRESS], postfix.log_tail()


def test_postfix_delivers_over_lmtp_on_tcp(
    tmp_path: Path, run_postfix: Callable[[str], PostfixInstance]
) -> None:
    """transport_maps: the intake address -> lmtp:inet:127.0.0.1:<port>."""
    config = make_config(tmp_path / "data", "", lmtp=True)
    with DaemonThread(config) as daemon:
        host, port = daemon.smtp_address
        postfix = run_postfix(f"lmtp:inet:{host}:{port}")
        _deliver_and_check(daemon, postfix, "tcp")
        _reply_through_the_token_address(daemon, postfix)


def _reply_through_the_token_address(daemon: DaemonThread, postfix: PostfixInstance) -> None:
    """The manager answers the notification's secret reply address (`chikanemail+<token>@`):
    Postfix finds the base address in its tables and hands the whole address over LMTP."""
    outgoing = daemon.config.storage.data_path / OUTGOING_MAILDIR / "new"

    def notification() -> EmailMessage | None:
        for path in sorted(outgoing.glob("*")) if outgoing.is_dir() else []:
            mail = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
            if MANAGER in str(mail["To"]):
                return mail  # type: ignore[return-value]
        return None

    found = wait_until(notification, timeout=30, message="the notification in the Maildir")
    reply_to = found["Reply-To"].addresses[0].addr_spec
    assert reply_to.startswith(INTAKE_ADDRESS.partition("@")[0] + "+"), reply_to
    message_id = f"<postfix-reply-{os.getpid()}@kommune.example>"
    postfix.send_with_swaks(message_id, sender=MANAGER, to=reply_to, body="kvitter")
    row = wait_until(lambda: _stored_with(daemon, message_id), timeout=60, interval=0.2,
                     message="the reply stored")
    assert list(row.rcpt_tos) == [reply_to], postfix.log_tail()
    database = Database(daemon.config.storage.effective_database_url)
    try:
        case = wait_until(lambda: next((case for case in list_cases(database)
                                        if case.acknowledged_by), None),
                          timeout=30, message="the case acknowledged by the token reply")
    finally:
        database.dispose()
    assert case.acknowledged_by == MANAGER


def test_postfix_delivers_over_lmtp_on_a_unix_socket(
    tmp_path: Path, world_readable_dir: Path, run_postfix: Callable[[str], PostfixInstance]
) -> None:
    """transport_maps: the intake address -> lmtp:unix:<socket>, socket 0660 group postfix."""
    runtime_dir = world_readable_dir / "run"
    runtime_dir.mkdir(mode=0o755)
    socket_path = runtime_dir / "lmtp.sock"
    config = make_config(tmp_path / "data", "", lmtp=True, socket=str(socket_path),
                         socket_group="postfix")
    with DaemonThread(config) as daemon:
        mode = socket_path.stat().st_mode & 0o777
        assert mode == 0o660, f"socket mode {mode:o}"
        postfix = run_postfix(f"lmtp:unix:{socket_path}")
        _deliver_and_check(daemon, postfix, "socket")
    assert not socket_path.exists(), "the socket file is removed at stop"
