"""The [web] table: defaults, mistakes named by key and file, the Secure cookie rule, and
whose X-Forwarded-For is believed."""

from __future__ import annotations

from pathlib import Path

import pytest

from intake.service.config import load_config
from intake.web.login_links import safe_next_path
from intake.web.security import TrustedProxies
from intake.web.settings import WebSettings
from storage.errors import SettingsError


def test_the_defaults_serve_on_loopback_8080_without_a_secure_cookie() -> None:
    web = load_config(None).web
    assert (web.enabled, web.host, web.port) == (True, "127.0.0.1", 8080)
    assert web.effective_base_url == "http://127.0.0.1:8080"
    assert not web.cookies_secure
    assert (web.idle_timeout_minutes, web.absolute_timeout_hours) == (30.0, 12.0)


@pytest.mark.parametrize(("base_url", "secure"), [
    ("https://chikanemail.kommune.example", True),
    ("http://chikanemail.kommune.example", True),
    ("http://localhost:8080", False),
    ("http://[::1]:8080/", False),
])
def test_the_cookie_is_secure_except_for_an_http_base_url_on_this_machine(
        base_url: str, secure: bool) -> None:
    assert WebSettings(base_url=base_url).cookies_secure is secure


@pytest.mark.parametrize(("table", "key"), [
    ('listen = "8080"', "web.listen"),
    ('listen = "::1:8080"', "web.listen"),
    ('base_url = "ftp://example.org"', "web.base_url"),
    ('trusted_proxies = ["proxy.example"]', "web.trusted_proxies"),
    ("idle_timeout_minutes = 0", "web.idle_timeout_minutes"),
    ("login_requests_per_client = 0", "web.login_requests_per_client"),
    ("listn = \"127.0.0.1:8080\"", "web.listn"),
])
def test_a_mistake_names_the_key_and_the_file(tmp_path: Path, table: str, key: str) -> None:
    config_file = tmp_path / "config.toml"
    config_file.write_text(f"[web]\n{table}\n", encoding="utf-8")
    with pytest.raises(SettingsError) as raised:
        load_config(config_file)
    assert str(config_file) in str(raised.value)
    assert key in str(raised.value)


def test_forwarded_for_counts_only_from_a_trusted_proxy() -> None:
    proxies = TrustedProxies(["127.0.0.1", "10.0.0.0/24"])
    # A client talking to us directly cannot name another client.
    assert proxies.client_address("192.0.2.7", "198.51.100.1") == "192.0.2.7"
    # Behind the proxy: the last address the proxies did not add.
    assert proxies.client_address("127.0.0.1", "198.51.100.1") == "198.51.100.1"
    assert proxies.client_address("127.0.0.1", "203.0.113.9, 198.51.100.1, 10.0.0.5") == (
        "198.51.100.1")
    assert proxies.client_address("127.0.0.1", "garbage") == "127.0.0.1"
    assert TrustedProxies([]).client_address("127.0.0.1", "198.51.100.1") == "127.0.0.1"


@pytest.mark.parametrize(("value", "kept"), [
    ("/cases/2026-0001", "/cases/2026-0001"),
    ("/cases?status=open", "/cases?status=open"),
    ("//evil.example/", None), ("/\\evil.example", None), ("https://evil.example/", None),
    ("javascript:alert(1)", None), ("/cases/\r\nSet-Cookie: x=1", None), ("", None),
])
def test_only_local_paths_are_kept_as_the_way_back(value: str, kept: str | None) -> None:
    assert safe_next_path(value) == kept
