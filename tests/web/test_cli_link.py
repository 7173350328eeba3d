"""`chikanemail web link ADDRESS`: the printed link logs the person in, once."""

from __future__ import annotations

from pathlib import Path

import requests

from tests.support import INTAKE_ADDRESS, MANAGER, describe, run_cli, write_toml
from tests.web.web_support import press_login_button, web_daemon


def test_an_admin_prints_a_link_that_logs_a_manager_in_once(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'web.sqlite3'}"
    with web_daemon(tmp_path / "data", database_url) as (_daemon, _clock, base_url):
        config_file = write_toml(tmp_path / "cli.toml", {
            "storage": {"data_dir": str(tmp_path / "data"), "database_url": database_url},
            "intake": {"addresses": [INTAKE_ADDRESS]},
            "routing": {"default_manager": MANAGER},
            "web": {"listen": base_url.removeprefix("http://")},
        })
        printed = run_cli(["--config", str(config_file), "web", "link", MANAGER,
                           "--next", "/cases/2026-0003"])
        assert printed.exit_code == 0, describe(printed)
        link = printed.stdout.strip()
        assert link.startswith(f"{base_url}/login/")

        http = requests.Session()
        response = press_login_button(http, link)
        assert response.status_code == 303
        assert response.headers["location"] == "/cases/2026-0003"
        assert http.get(link).status_code == 400  # used up

        refused = run_cli(["--config", str(config_file), "web", "link", "nabo@example.org"])
        assert refused.exit_code == 1
        assert "no link" in refused.stderr
        assert "/login/" not in refused.stdout
