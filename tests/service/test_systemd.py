"""The systemd unit passes systemd's own checks, and the daemon speaks sd_notify for real."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from intake.service.systemd import SystemdNotifier, notify_address, watchdog_interval
from tests.support import (
    INTAKE_ADDRESS,
    REPO_ROOT,
    daemon_process,
    free_port,
    port_accepts,
    write_toml,
)

UNIT = REPO_ROOT / "packaging" / "chikanemail.service"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd_analyze = pytest.mark.skipif(SYSTEMD_ANALYZE is None,
                                           reason="systemd-analyze is not installed")
DEADLINE = 30.0


def unit_for_this_machine(directory: Path) -> Path:
    """A copy of the unit whose ExecStart names a program that exists here.

    The unit points at the documented install location, /opt/chikanemail/.venv, which this
    machine does not have; verify would only report that. Everything else stays as shipped.
    (A missing User= is not something verify checks.)
    """
    text = UNIT.read_text(encoding="utf-8")
    existing = shutil.which("true")
    assert existing is not None
    text, count = re.subn(r"^ExecStart=\S+", f"ExecStart={existing}", text, flags=re.MULTILINE)
    assert count == 1
    copy = directory / UNIT.name
    copy.write_text(text, encoding="utf-8")
    return copy


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    """systemd-analyze, offline: no running systemd is needed for these commands."""
    assert SYSTEMD_ANALYZE is not None
    return subprocess.run([SYSTEMD_ANALYZE, *args], capture_output=True, text=True,
                          timeout=60, check=False)


# -- the unit file ---------------------------------------------------------------------------


@needs_systemd_analyze
def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    unit = unit_for_this_machine(tmp_path)
    result = analyze("verify", "--man=no", "--generators=no", str(unit))
    # verify exits 0 even for unknown keys and only prints them: any output is a finding.
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


@needs_systemd_analyze
def test_verify_would_catch_a_mistake(tmp_path: Path) -> None:
    """The check above is not vacuous: a misspelt key is reported."""
    unit = unit_for_this_machine(tmp_path)
    unit.write_text(unit.read_text(encoding="utf-8").replace("ProtectHome=", "ProtectHomes="),
                    encoding="utf-8")
    result = analyze("verify", "--man=no", "--generators=no", str(unit))
    assert "Unknown key 'ProtectHomes'" in result.stderr


def test_unit_settings_the_daemon_relies_on() -> None:
    settings = [line for line in UNIT.read_text(encoding="utf-8").splitlines()
                if line and not line.startswith("#")]
    for expected in ("Type=notify", "NotifyAccess=main", "User=chikanemail",
                     "StateDirectory=chikanemail", "StateDirectoryMode=0700", "WatchdogSec=30",
                     "Restart=on-failure", "UMask=0077", "CapabilityBoundingSet=",
                     "AmbientCapabilities=",
                     "ExecStart=/opt/chikanemail/.venv/bin/chikanemail "
                     "--config /etc/chikanemail/config.toml serve"):
        assert expected in settings
    stop_timeout = next(line for line in settings if line.startswith("TimeoutStopSec="))
    # The daemon may take 30 s for each of SMTP sessions, worker and sender, 10 s for IMAP.
    assert int(stop_timeout.partition("=")[2]) >= 100


@needs_systemd_analyze
def test_unit_security_exposure_is_low(tmp_path: Path) -> None:
    unit = unit_for_this_machine(tmp_path)
    result = analyze("security", "--offline=yes", "--threshold=20", str(unit))
    assert result.returncode == 0, result.stdout + result.stderr
    line = next(line for line in result.stdout.splitlines() if "Overall exposure" in line)
    assert float(line.split(":")[1].split()[0]) <= 2.0, line


# -- the notify protocol ---------------------------------------------------------------------


@pytest.fixture
def notify_socket() -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket in the abstract namespace, as NOTIFY_SOCKET names it ('@...')."""
    name = f"@chikanemail-test-{secrets.token_hex(8)}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name[1:])
        yield sock, name


def receive(sock: socket.socket, timeout: float) -> list[str] | None:
    """The next notification as its lines; None when none arrives within `timeout`."""
    sock.settimeout(max(timeout, 0.001))
    try:
        data = sock.recv(4096)
    except TimeoutError:
        return None
    return data.decode("utf-8").split("\n")


def receive_until(sock: socket.socket, wanted: str, seen: list[list[str]],
                  timeout: float = DEADLINE) -> list[str]:
    """Collect notifications into `seen` until one contains the line `wanted`."""
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        message = receive(sock, remaining)
        if message is None:
            break
        seen.append(message)
        if wanted in message:
            return message
    raise AssertionError(f"no {wanted} within {timeout} s; received {seen}")


@pytest.mark.slow
def test_daemon_notifies_ready_watchdog_and_stopping(
    tmp_path: Path, notify_socket: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    sock, name = notify_socket
    port = free_port()
    config = write_toml(tmp_path / "chikanemail.toml", {
        "storage": {"data_dir": str(tmp_path / "data")},
        "smtp": {"port": port, "server_hostname": "chikanemail.test"},
        "intake": {"addresses": [INTAKE_ADDRESS]},
        "worker": {"processes": 1},
        "logging": {"level": "INFO"},
    })
    log_file = tmp_path / "daemon.log"
    # daemon_process passes this process's environment on, as systemd would set it.
    monkeypatch.setenv("NOTIFY_SOCKET", name)
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")  # a ping every 0.5 s
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    seen: list[list[str]] = []
    with daemon_process(config, log_file) as process:
        ready = receive_until(sock, "READY=1", seen)
        # READY=1 means mail can be delivered now, not soon.
        assert port_accepts(port), log_file.read_text()
        assert any(line.startswith("STATUS=accepting mail") and f":{port}" in line
                   for line in ready)

        # Two pings after READY=1, each within its 0.5 s interval (with room for a slow CI).
        for _ in range(2):
            assert receive_until(sock, "WATCHDOG=1", seen, timeout=5.0) == ["WATCHDOG=1"]

        process.send_signal(signal.SIGTERM)
        stopping = receive_until(sock, "STOPPING=1", seen)
        assert process.wait(DEADLINE) == 0, log_file.read_text()
    assert any(line.startswith("STATUS=stopping") for line in stopping)
    assert sum("READY=1" in message for message in seen) == 1


def test_without_notify_socket_nothing_is_sent() -> None:
    notifier = SystemdNotifier.from_environment({"WATCHDOG_USEC": "1000000"})
    assert not notifier.enabled
    assert notifier.watchdog_seconds is None
    assert notifier.send("READY=1") is False


def test_notify_socket_may_be_a_path(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        notifier = SystemdNotifier.from_environment({"NOTIFY_SOCKET": str(path)})
        notifier.ready("up")
        assert receive(sock, DEADLINE) == ["READY=1", "STATUS=up"]


def test_a_vanished_socket_is_logged_not_raised(tmp_path: Path) -> None:
    notifier = SystemdNotifier(str(tmp_path / "gone"), None)
    assert notifier.send("WATCHDOG=1") is False


def test_notify_address_forms() -> None:
    assert notify_address("/run/systemd/notify") == "/run/systemd/notify"
    assert notify_address("@abstract") == "\0abstract"
    assert notify_address("") is None
    assert notify_address("vsock:2:1234") is None


def test_watchdog_interval_is_half_and_only_for_this_process() -> None:
    pid = os.getpid()
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}, pid) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(pid)},
                             pid) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(pid + 1)},
                             pid) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}, pid) is None
    assert watchdog_interval({"WATCHDOG_USEC": "soon"}, pid) is None
    assert watchdog_interval({}, pid) is None


def test_a_stuck_event_loop_stops_pinging(notify_socket: tuple[socket.socket, str]) -> None:
    sock, name = notify_socket
    notifier = SystemdNotifier.from_environment({"NOTIFY_SOCKET": name,
                                                 "WATCHDOG_USEC": "100000"})
    assert notifier.watchdog_seconds == 0.05

    async def main() -> None:
        notifier.start_watchdog()
        await asyncio.sleep(0)  # the watchdog task runs once: its first ping
        assert receive(sock, DEADLINE) == ["WATCHDOG=1"]
        time.sleep(0.5)  # the loop is stuck for ten ping intervals
        assert receive(sock, 0) is None
        # Free again, the loop pings again.
        await asyncio.sleep(0.06)
        assert receive(sock, DEADLINE) == ["WATCHDOG=1"]
        notifier.stop_watchdog()

    asyncio.run(main())
