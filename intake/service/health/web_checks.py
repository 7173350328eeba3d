"""Health check of the web view: the daemon's web listener answers its health page."""

from __future__ import annotations

import http.client
from typing import Any

from intake.receive.smtp.answers import status_file_path
from intake.service.health.findings import CheckStatus, Finding, HealthInputs
from intake.web.status import HEALTH_PATH, HEALTH_TEXT, read_status, status_file

# How long the check waits for the web view's answer.
WEB_TIMEOUT_SECONDS = 3.0


def _connectable_host(host: str) -> str:
    """Where to connect to reach a listener bound to `host` (a wildcard means this machine)."""
    return {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # noqa: S104


def check_web(inputs: HealthInputs) -> Finding:
    """[web] enabled: the running daemon's web view answers GET /healthz; a listener the
    daemon could not bind (the port taken, an address not on this machine) fails."""
    config = inputs.config
    web = config.web
    details: dict[str, Any] = {"listen": web.listen, "base_url": web.effective_base_url}
    if not web.enabled:
        return Finding(CheckStatus.SKIPPED, "[web] enabled = false: no web view", details)
    status_path = status_file(
        status_file_path(config.health.status_dir, config.storage.data_path).parent)
    status = read_status(status_path) or {}
    error = status.get("error")
    if error:
        details["error"] = error
        return Finding(CheckStatus.FAIL, f"the web view is not listening: {error}", details)
    host, port = web.host, web.port
    recorded = status.get("address")
    if port == 0 and isinstance(recorded, list) and len(recorded) == 2:
        host, port = str(recorded[0]), int(recorded[1])
    if port == 0:
        return Finding(CheckStatus.FAIL, "no running daemon has said where its web view "
                                         "listens (listen port 0)", details)
    where = f"{host}:{port}"
    try:
        connection = http.client.HTTPConnection(_connectable_host(host), port,
                                                timeout=WEB_TIMEOUT_SECONDS)
        try:
            connection.request("GET", HEALTH_PATH)
            response = connection.getresponse()
            body = response.read(200).decode("utf-8", "replace")
        finally:
            connection.close()
    except OSError as error_:
        reason = error_.strerror or type(error_).__name__
        return Finding(CheckStatus.FAIL, f"nothing answers on {where} (web view): {reason}",
                       details)
    details["status"] = response.status
    if response.status != 200 or body.strip() != HEALTH_TEXT:
        return Finding(CheckStatus.FAIL, f"something other than the web view answers on "
                                         f"{where} (HTTP {response.status})", details)
    return Finding(CheckStatus.OK, f"the web view answers on {where}", details)
