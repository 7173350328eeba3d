"""The full-disk run of issue 18: a daemon whose data directory is on a 12 MB tmpfs (mounted
in a mount namespace of its own). Filled up, the disk makes SMTP answer 451 and `health`
fail naming the free space and the 451s; with space again, mail is stored and `health`
recovers.

"Recovers" means: the free-space check is ok at once, and the 451 check drops from fail to
a warning that names the past 451s (how many, the last one's age) and that mail is stored
again since; it is ok once the last 451 is more than 15 minutes old. `health` exits 0 again.
"""

from __future__ import annotations

import json
import os
import shutil
import smtplib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from intake.receive.smtp.answers import STATUS_FILE_NAME, read_status_file
from tests.support import (
    INTAKE_ADDRESS,
    chikanemail_command,
    free_port,
    wait_for_port,
    wait_until,
    write_toml,
)

RAW = (b"From: Ansat <ansat@kommune.example>\r\nTo: <chikanemail@kommune.example>\r\n"
       b"Subject: Fwd: grim besked\r\n\r\nSe nedenfor.\r\n")
pytestmark = pytest.mark.integration  # the service as a process

DISK_SIZE = "12m"
# Mount a tmpfs on $DISK in this (new) mount namespace, then become the given command.
MOUNT_THEN_EXEC = 'mount -t tmpfs -o size=$SIZE,mode=0700 chikanemail-test "$DISK" && exec "$@"'


def namespace_commands() -> tuple[list[str], list[str]]:
    """How to start a process in a new mount namespace, and how to join it (nsenter)."""
    if os.geteuid() == 0:
        return ["unshare", "--mount", "--propagation", "private"], ["-m"]
    return (["unshare", "--mount", "--map-root-user", "--propagation", "private"],
            ["-U", "-m", "--preserve-credentials"])


def require_mount_namespace(tmp_path: Path) -> None:
    """Fail, naming what is missing, when no tmpfs can be mounted in a mount namespace: the
    test would otherwise pass without having filled a disk."""
    missing = [tool for tool in ("unshare", "nsenter", "mount") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"needs {', '.join(missing)} (util-linux) for a mount namespace")
    probe = tmp_path / "probe"
    probe.mkdir()
    unshare, _ = namespace_commands()
    done = subprocess.run([*unshare, "sh", "-c", MOUNT_THEN_EXEC, "sh", "true"],
                          env={**os.environ, "DISK": str(probe), "SIZE": "1m"},
                          capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        pytest.fail("cannot mount a tmpfs in a new mount namespace (needs root or "
                    f"unprivileged user namespaces): {done.stderr.strip()}")


@pytest.fixture
def daemon_on_small_disk(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """`chikanemail serve` with its data directory (evidence and SQLite) on a 12 MB tmpfs
    only it (and what joins its namespace) sees; the status file on the test's own disk."""
    require_mount_namespace(tmp_path)
    disk = tmp_path / "disk"
    disk.mkdir()
    port = free_port()
    config_file = write_toml(tmp_path / "config.toml", {
        "storage": {"data_dir": str(disk / "data")},
        "intake": {"addresses": [INTAKE_ADDRESS]},
        "smtp": {"host": "127.0.0.1", "port": port, "server_hostname": "chikanemail.test"},
        "health": {"min_free_mb": 4, "fail_free_mb": 1, "status_dir": str(tmp_path / "run")},
        "worker": {"processes": 1},
    })
    unshare, join = namespace_commands()
    with open(tmp_path / "daemon.log", "ab") as log:
        process = subprocess.Popen(
            [*unshare, "sh", "-c", MOUNT_THEN_EXEC, "sh",
             *chikanemail_command(), "--config", str(config_file), "serve"],
            stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "DISK": str(disk), "SIZE": DISK_SIZE, "PYTHONUNBUFFERED": "1"})
    inside = ["nsenter", "-t", str(process.pid), *join]
    try:
        wait_for_port(port)
        yield {"port": port, "config": config_file, "inside": inside, "data": disk / "data",
               "status": tmp_path / "run" / STATUS_FILE_NAME, "log": tmp_path / "daemon.log"}
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(30)


def health_inside(daemon: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """`chikanemail health --json` in the daemon's mount namespace: (exit status, checks)."""
    done = subprocess.run([*daemon["inside"], *chikanemail_command(), "--config",
                           str(daemon["config"]), "health", "--json"],
                          capture_output=True, text=True, timeout=60, check=False)
    report = json.loads(done.stdout)
    return done.returncode, {check["name"]: check for check in report["checks"]}


def send(port: int) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail("ansat@kommune.example", [INTAKE_ADDRESS], RAW)


def test_a_full_disk_makes_health_fail_and_it_recovers(
        daemon_on_small_disk: dict[str, Any]) -> None:
    daemon = daemon_on_small_disk
    filler = daemon["data"] / "filler"
    fill = subprocess.run([*daemon["inside"], "dd", "if=/dev/zero", f"of={filler}", "bs=1M"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert "No space left on device" in fill.stderr, fill.stderr
    assert not filler.exists()  # the tmpfs is the daemon's alone; here is the plain folder

    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(daemon["port"])
    assert refused.value.smtp_code == 451

    def storage_full_451s() -> int:
        status = read_status_file(daemon["status"])
        return len(status["refused_451"]["storage-full"]["times"]) if status else 0
    wait_until(storage_full_451s, message="the 451 in the status file")

    code, checks = health_inside(daemon)
    assert code == 1, checks
    assert checks["free-space"]["status"] == "fail", checks["free-space"]
    assert checks["free-space"]["summary"].startswith("free space: only 0 MB free of ")
    answers = checks["smtp-answers"]
    assert answers["status"] == "fail", answers
    assert "(storage full: 1)" in answers["summary"]
    assert answers["summary"].endswith("no message stored since")

    subprocess.run([*daemon["inside"], "rm", str(filler)], check=True, timeout=30)
    send(daemon["port"])  # accepted again: raises otherwise

    def stored_again() -> bool:
        status = read_status_file(daemon["status"])
        return bool(status and status["last_stored_at"])
    wait_until(stored_again, message="the 250 in the status file")

    code, checks = health_inside(daemon)
    failed = [name for name, check in checks.items() if check["status"] == "fail"]
    assert code == 0 and not failed, checks
    assert checks["free-space"]["status"] == "ok"
    answers = checks["smtp-answers"]
    assert answers["status"] == "warn", answers
    assert "(storage full: 1), the last " in answers["summary"]
    assert "mail is stored again since" in answers["summary"]
