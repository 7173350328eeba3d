"""Connection floods against the SMTP listener, small and quick, over real sockets.

One address may hold only `max_connections_per_client` connections (421 past it) while
others still get in; a DATA slower than `min_data_bytes_per_second`, or longer than
`data_deadline_seconds`, is cut, and so is a session that hands in no mail within
`session_deadline_seconds`; an LMTP listener (the local MTA) is never throttled.
The 500-connection flood is tests/faults/test_smtp_flood.py.
"""

from __future__ import annotations

import logging
import select
import smtplib
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from intake.receive.smtp.flood_guard import REPLY_TOO_MANY_FROM_CLIENT, FloodLog, client_of
from intake.receive.smtp.server import (
    REPLY_DATA_TOO_LONG,
    REPLY_DATA_TOO_SLOW,
    REPLY_SESSION_TOO_LONG,
)
from tests.receive import test_smtp
from tests.receive.test_smtp import SENDER, LineClient, mail, rows_for
from tests.support import INTAKE_ADDRESS, DaemonThread, wait_until

make_daemon = test_smtp.make_daemon  # the fixture: a daemon with the test's settings


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only: a flood tries the listener, which is the same on either database."""
    return f"sqlite:///{tmp_path / 'test.sqlite3'}"

# Loopback aliases: on Linux every 127.x.y.z is this host, with no set-up.
FLOODER = "127.0.0.1"
NORMAL = "127.0.0.2"
SLOW = "127.0.0.3"


class ClientFrom(LineClient):
    """A LineClient whose connection comes from the given loopback address."""

    def __init__(self, address: tuple[str, int], source: str) -> None:
        self.sock = socket.create_connection(address, timeout=10, source_address=(source, 0))
        self.buffer = b""

    def closed_by_server(self) -> bool:
        """Read until the server closes the connection; what it said on the way is kept."""
        while True:
            chunk = self.sock.recv(65536)
            if not chunk:
                return True
            self.buffer += chunk


def open_mail(client: LineClient, helo: str = "EHLO") -> None:
    """Greeting to 354."""
    assert client.reply()[0] == 220
    assert client.command(f"{helo} client.example")[0] == 250
    assert client.command(f"MAIL FROM:<{SENDER}>")[0] == 250
    assert client.command(f"RCPT TO:<{INTAKE_ADDRESS}>")[0] == 250
    assert client.command("DATA")[0] == 354


def trickle(client: LineClient, pieces: list[bytes], pause: float) -> float:
    """Send the pieces with a pause after each, until the server says something; the
    seconds that took (the sender is slow on purpose: the pause is pacing, not
    synchronisation)."""
    started = time.monotonic()
    for piece in pieces:
        if select.select([client.sock], [], [], 0)[0]:
            return time.monotonic() - started
        client.send(piece)
        time.sleep(pause)
    raise AssertionError("the server let the whole slow DATA through")


def send_normal_mail(daemon: DaemonThread, subject: str) -> None:
    with smtplib.SMTP(*daemon.smtp_address, source_address=(NORMAL, 0), timeout=10) as client:
        assert client.sendmail(SENDER, [INTAKE_ADDRESS], mail(subject)) == {}


def test_one_client_gets_421_past_its_limit_and_others_still_get_in(
        make_daemon: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="chikanemail")
    daemon = make_daemon(max_connections=10, max_connections_per_client=2)
    held = [ClientFrom(daemon.smtp_address, FLOODER) for _ in range(2)]
    try:
        assert [client.reply()[0] for client in held] == [220, 220]
        for _ in range(6):  # far fewer than max_connections: the client's own limit answers
            refused = ClientFrom(daemon.smtp_address, FLOODER)
            assert refused.reply() == (421, REPLY_TOO_MANY_FROM_CLIENT)
            assert refused.closed_by_server()
            refused.close()
        send_normal_mail(daemon, "from another address")
        refusals = [record.getMessage() for record in caplog.records
                    if "max_connections_per_client" in record.getMessage()]
        assert len(refusals) == 1, refusals  # once per client per interval, not per connection
        assert f"client={FLOODER}" in refusals[0]
        held[0].command("QUIT")
        held[0].close()

        def admitted_again() -> bool:
            client = ClientFrom(daemon.smtp_address, FLOODER)
            try:
                return client.reply()[0] == 220
            finally:
                client.close()
        wait_until(admitted_again, message="a free slot for the flooding client")
    finally:
        for client in held:
            client.close()
    assert [row.subject for row in rows_for(daemon)] == ["from another address"]


def test_an_idle_connection_is_cut_at_the_timeout(make_daemon: Any) -> None:
    daemon = make_daemon(timeout_seconds=0.5)
    started = time.monotonic()  # the server's timer starts once it has accepted
    client = ClientFrom(daemon.smtp_address, FLOODER)
    try:
        assert client.reply()[0] == 220
        assert client.closed_by_server()
        assert 0.45 < time.monotonic() - started < 3.0
    finally:
        client.close()


def test_a_trickling_data_is_cut_below_the_minimum_rate(make_daemon: Any) -> None:
    daemon = make_daemon(timeout_seconds=0.5, min_data_bytes_per_second=200)
    client = ClientFrom(daemon.smtp_address, SLOW)
    try:
        open_mail(client)
        body = mail("slowloris")
        # 20 bytes a second, where 200 are asked for: every byte would restart an idle timer.
        elapsed = trickle(client, [body[i:i + 1] for i in range(len(body))], 0.05)
        assert client.closed_by_server()
        assert client.buffer == (REPLY_DATA_TOO_SLOW + "\r\n").encode()
        assert 0.4 < elapsed < 3.0
    finally:
        client.close()
    send_normal_mail(daemon, "after the slowloris")
    assert [row.subject for row in rows_for(daemon)] == ["after the slowloris"]


def test_a_data_longer_than_the_deadline_is_cut(make_daemon: Any) -> None:
    daemon = make_daemon(timeout_seconds=1.0, min_data_bytes_per_second=0,
                         data_deadline_seconds=1.0)
    client = ClientFrom(daemon.smtp_address, SLOW)
    lines = [b"%05d a line sent every tenth of a second\r\n" % i for i in range(100)]
    try:
        open_mail(client)
        elapsed = trickle(client, lines, 0.1)  # alive for the idle timer, never done in 1 s
        assert client.closed_by_server()
        assert client.buffer == (REPLY_DATA_TOO_LONG + "\r\n").encode()
        assert 0.9 < elapsed < 4.0
    finally:
        client.close()
    assert rows_for(daemon) == []


def test_commands_trickled_a_byte_at_a_time_are_cut_at_the_session_deadline(
        make_daemon: Any) -> None:
    daemon = make_daemon(timeout_seconds=1.0, session_deadline_seconds=1.0)
    client = ClientFrom(daemon.smtp_address, SLOW)
    try:
        assert client.reply()[0] == 220
        command = b"EHLO a-client-that-never-sends-mail.example\r\n" * 20
        # A byte every 50 ms: every byte would restart the idle timer of 1 s.
        elapsed = trickle(client, [command[i:i + 1] for i in range(len(command))], 0.05)
        assert client.closed_by_server()
        assert client.buffer.endswith((REPLY_SESSION_TOO_LONG + "\r\n").encode())
        assert 0.9 < elapsed < 3.0
    finally:
        client.close()


def test_each_mail_handed_in_restarts_the_session_deadline(make_daemon: Any) -> None:
    # A deadline a loaded machine's fsync and commit stay well inside between two mails.
    daemon = make_daemon(timeout_seconds=5.0, session_deadline_seconds=1.0)
    with smtplib.SMTP(*daemon.smtp_address, source_address=(NORMAL, 0), timeout=10) as client:
        started = time.monotonic()
        sent = 0
        # Past the session deadline twice over, all told, and at least three mails: each
        # one after the first would be cut if the deadline ran from the session's start.
        while time.monotonic() - started < 2.2 or sent < 3:
            assert client.sendmail(SENDER, [INTAKE_ADDRESS], mail(f"mail {sent}")) == {}
            sent += 1
            time.sleep(0.2)  # pacing the sender, not synchronisation
    assert len(rows_for(daemon)) == sent >= 3


def test_a_per_client_limit_not_below_the_global_one_is_warned_about(
        make_daemon: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="chikanemail")
    make_daemon(max_connections=5, max_connections_per_client=5)
    warnings = [record.getMessage() for record in caplog.records
                if "one client can take every connection" in record.getMessage()]
    assert len(warnings) == 1
    assert "smtp.max_connections_per_client (5)" in warnings[0]


def test_lmtp_from_the_local_mta_is_never_throttled(make_daemon: Any) -> None:
    daemon = make_daemon(lmtp=True, timeout_seconds=1.0, max_connections_per_client=1,
                         min_data_bytes_per_second=100_000, data_deadline_seconds=0.5,
                         session_deadline_seconds=0.5)
    first, second = (ClientFrom(daemon.smtp_address, FLOODER) for _ in range(2))
    try:
        open_mail(first, helo="LHLO")
        assert second.reply()[0] == 220  # two from one address, past its limit of one
        raw = mail("slow lmtp")
        started = time.monotonic()
        for index in range(0, len(raw), 20):  # far below the rate, past the deadline
            first.send(raw[index:index + 20])
            time.sleep(0.1)  # pacing the slow sender, not synchronisation
        first.send(b"\r\n.\r\n")
        assert first.reply()[0] == 250
        assert time.monotonic() - started > 0.5
    finally:
        first.close()
        second.close()
    assert [row.subject for row in rows_for(daemon)] == ["slow lmtp"]


def test_a_client_is_its_ipv4_address_or_its_ipv6_64() -> None:
    assert client_of(("192.0.2.7", 2525)) == "192.0.2.7"
    assert client_of(("2001:db8:1:2:aa::1", 25, 0, 0)) == "2001:db8:1:2::/64"
    assert client_of(("2001:db8:1:2:bb::9", 25, 0, 0)) == "2001:db8:1:2::/64"
    assert client_of(("::ffff:192.0.2.7", 25, 0, 0)) == "192.0.2.7"
    assert client_of("") is None  # a unix socket


def test_the_flood_log_names_how_many_it_left_out(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="chikanemail")
    flood_log = FloodLog(interval=0.0)
    flood_log.refused("192.0.2.7", "connection refused")
    assert "192.0.2.7" in caplog.records[-1].getMessage()
    quiet = FloodLog(interval=3600.0)
    for _ in range(5):
        quiet.refused("192.0.2.8", "connection refused")
    assert sum("192.0.2.8" in record.getMessage() for record in caplog.records) == 1
