"""`chikanemail health` and the web listener: a web view that cannot bind fails the check,
while mail intake goes on; a running one passes it."""

from __future__ import annotations

import json
import smtplib
import socket
from dataclasses import replace
from pathlib import Path
from typing import Any

from intake.service.config import AppConfig
from intake.web.settings import WebSettings
from tests.support import INTAKE_ADDRESS, DaemonThread, describe, run_cli, write_toml

RAW = (b"From: Ansat <ansat@kommune.example>\r\nTo: <chikanemail@kommune.example>\r\n"
       b"Subject: Fwd: grim besked\r\n\r\nSe nedenfor.\r\n")


def health(config: AppConfig, tmp_path: Path, smtp_port: int) -> tuple[int, dict[str, Any]]:
    """`health --json` as the admin runs it, with this daemon's config: (exit, checks)."""
    config_file = write_toml(tmp_path / "health.toml", {
        "storage": {"data_dir": str(config.storage.data_path),
                    "database_url": config.storage.effective_database_url},
        "intake": {"addresses": [INTAKE_ADDRESS]},
        "smtp": {"host": "127.0.0.1", "port": smtp_port},
        "health": {"min_free_mb": 0, "fail_free_mb": 0},
        "web": {"listen": config.web.listen},
    })
    result = run_cli(["--config", str(config_file), "health", "--json"])
    report = json.loads(result.stdout)
    assert report["healthy"] is (result.exit_code == 0), describe(result)
    return result.exit_code, {check["name"]: check for check in report["checks"]}


def test_a_web_port_that_is_taken_fails_health_but_mail_still_comes_in(
        config: AppConfig, tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as squatter:
        port = squatter.getsockname()[1]
        taken = replace(config, web=WebSettings(listen=f"127.0.0.1:{port}"))
        with DaemonThread(taken) as daemon:
            assert daemon.ready_info is not None and daemon.ready_info.web_address is None
            host, smtp_port = daemon.smtp_address
            with smtplib.SMTP(host, smtp_port) as client:
                assert client.sendmail("ansat@kommune.example", [INTAKE_ADDRESS], RAW) == {}
            code, checks = health(taken, tmp_path, smtp_port)
    assert code == 1
    assert checks["web"]["status"] == "fail"
    assert f"cannot listen on 127.0.0.1:{port}" in checks["web"]["summary"]
    assert checks["listeners"]["status"] == "ok"


def test_a_running_web_view_passes_health(config: AppConfig, tmp_path: Path) -> None:
    with DaemonThread(config) as daemon:
        assert daemon.ready_info is not None and daemon.ready_info.web_address is not None
        web_host, web_port = daemon.ready_info.web_address
        listening = replace(config, web=WebSettings(listen=f"{web_host}:{web_port}"))
        code, checks = health(listening, tmp_path, daemon.smtp_address[1])
    assert checks["web"]["status"] == "ok", checks["web"]
    assert checks["web"]["summary"] == f"the web view answers on {web_host}:{web_port}"
    assert code == 0, checks
