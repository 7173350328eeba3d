"""R7: a connection flood against the SMTP listener, over real sockets.

500 connections from 127.0.0.1 that connect and say nothing (each one the server closes is
opened again), and 5 slowloris connections from 127.0.0.3 sending their DATA a byte at a
time, all from a separate process (tests/faults/flood_clients.py). Meanwhile a normal
client on 127.0.0.2 sends 20 mails: each must get its 250 within 2 s. The flooding address
gets 421 past `max_connections_per_client`, long before `max_connections`; what it was let
in is cut at the idle timeout; the slowloris is cut by the minimum DATA rate. An LMTP
listener (the local MTA) is not throttled at all.
"""

from __future__ import annotations

import json
import logging
import resource
import smtplib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from intake.receive.smtp.flood_guard import REPLY_TOO_MANY_FROM_CLIENT
from intake.receive.smtp.handler import REPLY_TOO_MANY_CONNECTIONS
from intake.receive.smtp.server import REPLY_DATA_TOO_SLOW
from tests.receive import test_smtp, test_smtp_floods
from tests.receive.test_smtp import rows_for
from tests.receive.test_smtp_floods import NORMAL, ClientFrom, send_normal_mail
from tests.support import INTAKE_ADDRESS

pytestmark = pytest.mark.faults

FLOOD = 500
SLOWLORIS = 5
NORMAL_MAILS = 20
TIMEOUT = 2.0
PER_CLIENT = 20
WORST_250_SECONDS = 2.0
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _enough_open_files() -> Iterator[None]:
    """The daemon's side of the flood is in this process: room for a socket each."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4096)), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


# Daemons with the test's [smtp] settings, on SQLite only (the listener is the same on both).
make_daemon = test_smtp.make_daemon
database_url = test_smtp_floods.database_url


def test_a_flood_from_one_address_does_not_delay_anyone_else(
        make_daemon: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="chikanemail")
    daemon = make_daemon(timeout_seconds=TIMEOUT, max_connections=50,
                   max_connections_per_client=PER_CLIENT, min_data_bytes_per_second=100,
                   data_deadline_seconds=60.0)
    host, port = daemon.smtp_address
    with subprocess.Popen(
            [sys.executable, "-m", "tests.faults.flood_clients", host, str(port), str(FLOOD),
             str(SLOWLORIS), str(TIMEOUT)],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as flood:
        try:
            assert flood.stdout is not None and flood.stdin is not None
            assert flood.stdout.readline() == "ready\n"
            times = []
            for number in range(NORMAL_MAILS):
                started = time.monotonic()
                send_normal_mail(daemon, f"during the flood {number}")
                times.append(time.monotonic() - started)
            flood.stdin.close()  # stop flooding; the flooder waits for the idle cuts
            report = json.loads(flood.stdout.readline())
            assert flood.wait(timeout=30) == 0
        finally:
            if flood.poll() is None:
                flood.kill()
    print(f"\nR7: {report['connections']} flood connections; the normal client's 250 took "
          f"at worst {max(times):.3f} s, median {sorted(times)[len(times) // 2]:.3f} s "
          f"over {NORMAL_MAILS} mails ({sorted(round(t, 3) for t in times)}); "
          f"idle connections held "
          f"{min(report['held_seconds']):.2f}-{max(report['held_seconds']):.2f} s; "
          f"slowloris cut after {[round(s['cut_after'], 2) for s in report['slow']]} s")
    assert max(times) < WORST_250_SECONDS

    first_lines = report["first_lines"]
    # Only the client's own limit answered: the listener was never full.
    assert set(first_lines) <= {REPLY_TOO_MANY_FROM_CLIENT} | {
        line for line in first_lines if line.startswith("220 ")}
    assert REPLY_TOO_MANY_CONNECTIONS not in first_lines
    assert first_lines[REPLY_TOO_MANY_FROM_CLIENT] >= FLOOD - PER_CLIENT
    admitted = report["held_seconds"]
    assert len(admitted) >= PER_CLIENT
    assert all(TIMEOUT - 0.05 < held < TIMEOUT + 2.0 for held in admitted), admitted
    assert report["still_open"] == 0

    assert len(report["slow"]) == SLOWLORIS
    for slow in report["slow"]:
        assert slow["said"] == REPLY_DATA_TOO_SLOW + "\r\n"
        assert TIMEOUT - 0.05 < slow["cut_after"] < 2 * TIMEOUT + 2.0

    refusals = [record.getMessage() for record in caplog.records
                if "max_connections_per_client" in record.getMessage()]
    assert len(refusals) == 1, refusals  # once per client per minute, however many
    subjects = sorted(row.subject for row in rows_for(daemon))
    assert subjects == sorted(f"during the flood {number}" for number in range(NORMAL_MAILS))


def test_lmtp_from_the_local_mta_is_exempt(make_daemon: Any) -> None:
    daemon = make_daemon(lmtp=True, timeout_seconds=TIMEOUT, max_connections=200,
                   max_connections_per_client=PER_CLIENT, min_data_bytes_per_second=100_000)
    clients = [ClientFrom(daemon.smtp_address, "127.0.0.1") for _ in range(5 * PER_CLIENT)]
    try:
        assert [client.reply()[0] for client in clients] == [220] * len(clients)
        with smtplib.LMTP(*daemon.smtp_address, source_address=(NORMAL, 0)) as lmtp:
            assert lmtp.sendmail("a@kommune.example", [INTAKE_ADDRESS],
                                 b"Subject: via LMTP\r\n\r\nbody\r\n") == {}
    finally:
        for client in clients:
            client.close()
    assert [row.subject for row in rows_for(daemon)] == ["via LMTP"]
