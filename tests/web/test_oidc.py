"""Login with an identity provider (issue 21, point 2), end to end: a real OpenID provider
(`oidc-provider` on node, tests/web/oidc/provider.mjs) and real daemons whose web views
talk to it over loopback sockets, driven by `requests` as a browser.

One node process serves the module with two issuers: one behaves like Entra ID's shared
`organizations` endpoint (discovery names the issuer .../{tenantid}/v2.0, each token is
issued by the user's own tenant) for an Entra daemon (tenant "tenant-a", mail link off), the
other like Google for a Google daemon (domain kommune.example, mail link on). The provider
logs in the account named in the login_hint the test adds to the redirect, and re-signs the
ID tokens of some accounts with a wrong issuer, audience or lifetime.
"""

from __future__ import annotations

import dataclasses
import html
import json
import logging
import re
import shutil
import subprocess
import threading
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import pytest
import requests
from sqlalchemy import select

from intake.service.config import validate_config
from intake.web.csrf import PRE_SESSION_COOKIE
from intake.web.oidc_claims import OidcRefused, verified_address
from intake.web.oidc_client import OidcClient
from intake.web.oidc_settings import OidcSettings
from intake.web.sessions import COOKIE_NAME
from intake.web.settings import WebSettings
from notifier.clock import ManualClock
from storage.database import Database
from storage.errors import SettingsError
from storage.models import WebSession
from tests.support import MANAGER, REPO_ROOT, DaemonThread, free_port, make_config
from tests.web.node_packages import npm_installed
from tests.web.web_support import csrf_token

pytestmark = pytest.mark.integration

PROVIDER_DIR = Path(__file__).resolve().parent / "oidc"
TENANT = "tenant-a"
ENTRA_PATH = "/organizations/v2.0"
GOOGLE_PATH = "/google"
DOMAIN = "kommune.example"
SOMEONE_ELSE = "vikar@kommune.example"  # not a manager, deputy or admin
ENTRA_CLIENT = ("entra-app", "entra-secret-0123456789-0123456789")
GOOGLE_CLIENT = ("google-app", "google-secret-0123456789-0123456789")


def _entra(username: str, **claims: Any) -> dict[str, Any]:
    return {"tid": TENANT, "preferred_username": username, "email": username, **claims}


def _google(address: str, **claims: Any) -> dict[str, Any]:
    return {"email": address, "email_verified": True, "hd": DOMAIN, **claims}


ACCOUNTS: dict[str, dict[str, Any]] = {
    "manager": {"claims": _entra(MANAGER)},
    "someone-else": {"claims": _entra(SOMEONE_ELSE)},
    # Any user may write any address in `email`; only preferred_username is the tenant's.
    "email-names-manager": {"claims": _entra(SOMEONE_ELSE, email=MANAGER)},
    "other-tenant": {"claims": _entra(MANAGER, tid="tenant-b")},
    # Claims tenant-a's tid, but the token comes from tenant-b's issuer.
    "other-tenants-issuer": {"claims": _entra(MANAGER),
                             "tamper": {"iss": "{origin}/tenant-b/v2.0"}},
    "wrong-issuer": {"claims": _entra(MANAGER),
                     "tamper": {"iss": "https://login.microsoftonline.com/tenant-a/v2.0"}},
    "wrong-audience": {"claims": _entra(MANAGER), "tamper": {"aud": "another-app"}},
    "expired": {"claims": _entra(MANAGER), "tamper": {"expired": True}},
    "google-manager": {"claims": _google(MANAGER)},
    "google-unverified": {"claims": _google(MANAGER, email_verified=False)},
    "google-other-domain": {"claims": _google(MANAGER, hd="example.org")},
    "google-personal": {"claims": {"email": MANAGER, "email_verified": True}},
}


@contextmanager
def openid_provider(settings_file: Path) -> Iterator[str]:
    """Run the provider with the module's issuers, clients and accounts; yields its origin
    (http://127.0.0.1:<port>)."""
    npm_installed(PROVIDER_DIR, "oidc-provider")
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is needed for the OIDC tests")
    settings_file.write_text(json.dumps({
        "issuers": [{"path": ENTRA_PATH, "entra_shared": True}, {"path": GOOGLE_PATH}],
        "clients": [{"client_id": client_id, "client_secret": secret}
                    for client_id, secret in (ENTRA_CLIENT, GOOGLE_CLIENT)],
        "accounts": ACCOUNTS,
    }), encoding="utf-8")
    process = subprocess.Popen([node, str(PROVIDER_DIR / "provider.mjs"), str(settings_file)],
                               cwd=PROVIDER_DIR, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    try:
        first_line: list[str] = []
        reader = threading.Thread(
            target=lambda: first_line.append(process.stdout.readline() if process.stdout
                                             else ""), daemon=True)
        reader.start()
        # It prints one line once it listens; a provider that dies prints none.
        reader.join(30)
        if not first_line or not first_line[0].strip():
            raise AssertionError("the OpenID provider did not start within 30 s")
        yield str(json.loads(first_line[0])["origin"])
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


@contextmanager
def oidc_daemon(folder: Path, oidc: OidcSettings,
                mail_link: bool) -> Iterator[tuple[DaemonThread, str]]:
    """A daemon whose web view logs in with `oidc`, on a port chosen before it starts (the
    redirect URI names it); the daemon and its base URL."""
    port = free_port()
    config = make_config(folder / "data", f"sqlite:///{folder / 'web.sqlite3'}",
                         extract={"ocr": False})
    config = replace(config, web=WebSettings(listen=f"127.0.0.1:{port}", oidc=oidc,
                                             mail_link=mail_link))
    with DaemonThread(config, clock=ManualClock(datetime.now(UTC))) as daemon:
        yield daemon, f"http://127.0.0.1:{port}"


class Site:
    """One daemon of the module: its base URL and database."""

    def __init__(self, daemon: DaemonThread, base_url: str) -> None:
        self.daemon = daemon
        self.base_url = base_url
        self.database = Database(daemon.config.storage.effective_database_url)

    def sessions_of(self, address: str) -> int:
        with self.database.read() as session:
            return len(session.execute(select(WebSession.id).where(
                WebSession.address == address)).all())


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Site]]:
    folder = tmp_path_factory.mktemp("web-oidc")
    secrets = {}
    for name, (_client_id, secret) in (("entra", ENTRA_CLIENT), ("google", GOOGLE_CLIENT)):
        secrets[name] = folder / f"{name}-secret"
        secrets[name].write_text(secret + "\n", encoding="utf-8")
    with openid_provider(folder / "provider.json") as origin:
        entra = OidcSettings(provider="entra", issuer=origin + ENTRA_PATH,
                             client_id=ENTRA_CLIENT[0],
                             client_secret_file=str(secrets["entra"]), tenants=(TENANT,))
        google = OidcSettings(provider="google", issuer=origin + GOOGLE_PATH,
                              client_id=GOOGLE_CLIENT[0],
                              client_secret_file=str(secrets["google"]), domains=(DOMAIN,))
        with oidc_daemon(folder / "entra", entra, mail_link=False) as (entra_daemon, entra_url), \
                oidc_daemon(folder / "google", google, mail_link=True) as (google_daemon,
                                                                           google_url):
            running = {"entra": Site(entra_daemon, entra_url),
                       "google": Site(google_daemon, google_url)}
            yield running
            for site in running.values():
                site.database.dispose()


def log_in_at_provider(http: requests.Session, base_url: str, login_hint: str,
                       start: str = "/login/oidc") -> requests.Response:
    """Follow the login page's button as the account `login_hint` names, through the
    provider (which logs it in at once), and return the daemon's answer to the callback."""
    started = http.get(base_url + start, allow_redirects=False)
    assert started.status_code == 303, started.text
    location = started.headers["location"] + "&" + urlencode({"login_hint": login_hint})
    for _hop in range(10):
        if location.startswith(base_url):
            return http.get(location, allow_redirects=False)
        response = http.get(location, allow_redirects=False)
        assert response.status_code in (302, 303), response.text
        location = urljoin(location, response.headers["location"])
    raise AssertionError("the provider did not send the browser back")


def assert_refused(response: requests.Response, http: requests.Session) -> None:
    """The one refusal page, no session, and the front page still asks for a login."""
    assert response.status_code == 403, response.text
    assert "Du kunne ikke logges ind" in response.text
    assert COOKIE_NAME not in http.cookies
    front = http.get(response.url.split("/login")[0] + "/", allow_redirects=False)
    assert front.headers["location"] == "/login"


def test_entra_login_starts_a_session_and_logout_ends_it(sites: dict[str, Site]) -> None:
    site = sites["entra"]
    http = requests.Session()
    page = http.get(site.base_url + "/login")
    assert "Log ind med Microsoft" in page.text
    assert 'action="/login"' not in page.text  # mail_link = false: no form
    before = site.sessions_of(MANAGER)

    answer = log_in_at_provider(http, site.base_url, "manager")

    assert answer.status_code == 303 and answer.headers["location"] == "/cases", answer.text
    assert COOKIE_NAME in http.cookies
    assert site.sessions_of(MANAGER) == before + 1
    front = http.get(site.base_url + "/", allow_redirects=False)
    assert front.headers["location"] == "/cases"
    token = csrf_token(http.get(site.base_url + "/cases").text)
    out = http.post(site.base_url + "/logout", data={"csrf_token": token},
                    allow_redirects=False)
    assert out.status_code == 303
    front = http.get(site.base_url + "/", allow_redirects=False)
    assert front.headers["location"] == "/login"


@pytest.mark.parametrize(("provider", "account", "check"), [
    ("entra", "wrong-issuer", "iss is not the tenant's own issuer"),
    ("entra", "other-tenants-issuer", "iss is not the tenant's own issuer"),
    ("entra", "wrong-audience", "InvalidClaimError: aud"),
    ("entra", "expired", "ExpiredTokenError: exp"),
    ("entra", "someone-else", "the address may not log in"),
    ("entra", "email-names-manager", "the address may not log in"),
    ("entra", "other-tenant", "tid not in web.oidc.tenants"),
    ("google", "google-unverified", "email_verified is not true"),
    ("google", "google-other-domain", "hd not in web.oidc.domains"),
    ("google", "google-personal", "hd not in web.oidc.domains"),
])
def test_refusals(sites: dict[str, Site], provider: str, account: str, check: str,
                  caplog: pytest.LogCaptureFixture) -> None:
    http = requests.Session()
    with caplog.at_level(logging.WARNING, logger="chikanemail.web.oidc"):
        answer = log_in_at_provider(http, sites[provider].base_url, account)
    assert_refused(answer, http)
    refusals = [record.getMessage() for record in caplog.records
                if record.name == "chikanemail.web.oidc"]
    assert any(check in message for message in refusals), refusals
    # The log names the check, never the token or the address.
    assert not any(MANAGER in message or "eyJ" in message for message in refusals)


def test_google_login_shows_both_ways_and_logs_in(sites: dict[str, Site]) -> None:
    site = sites["google"]
    http = requests.Session()
    page = http.get(site.base_url + "/login")
    assert "Log ind med Google" in page.text and 'action="/login"' in page.text
    # The button of a login page that was to bring the person back to a case.
    button = re.search(r'id="oidc-login" href="([^"]+)"',
                       http.get(site.base_url + "/login?next=/cases/2026-0007").text)
    assert button is not None
    answer = log_in_at_provider(http, site.base_url, "google-manager",
                                start=html.unescape(button.group(1)))
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/cases/2026-0007"
    front = http.get(site.base_url + "/", allow_redirects=False)
    assert front.headers["location"] == "/cases"


def test_a_callback_without_its_pre_login_record_is_refused(
        sites: dict[str, Site], caplog: pytest.LogCaptureFixture) -> None:
    """A code and state the browser did not start (login CSRF, a replayed callback)."""
    http = requests.Session()
    with caplog.at_level(logging.WARNING, logger="chikanemail.web.oidc"):
        answer = http.get(sites["entra"].base_url + "/login/oidc/callback",
                          params={"code": "stolen", "state": "guessed"},
                          allow_redirects=False)
    assert_refused(answer, http)
    assert any("no pre-login record" in record.getMessage() for record in caplog.records)


def test_a_state_that_is_not_the_records_is_refused(
        sites: dict[str, Site], caplog: pytest.LogCaptureFixture) -> None:
    site = sites["entra"]
    http = requests.Session()
    http.get(site.base_url + "/login/oidc", allow_redirects=False)  # the record's cookie
    with caplog.at_level(logging.WARNING, logger="chikanemail.web.oidc"):
        answer = http.get(site.base_url + "/login/oidc/callback",
                          params={"code": "stolen", "state": "guessed"},
                          allow_redirects=False)
    assert_refused(answer, http)
    assert any("OIDC login refused: state" in record.getMessage()
               for record in caplog.records)


def test_the_mail_link_is_off_where_mail_link_is_false(sites: dict[str, Site]) -> None:
    http = requests.Session()
    base_url = sites["entra"].base_url
    http.get(base_url + "/login")
    # The page has no form to take the token from; the cookie holds it before login.
    token = http.cookies[PRE_SESSION_COOKIE]
    asked = http.post(base_url + "/login", data={"address": MANAGER, "csrf_token": token})
    assert asked.status_code == 404


def _config_with(tmp_path: Path, web: dict[str, Any]) -> None:
    validate_config({"intake": {"addresses": ["chikanemail@kommune.example"]}, "web": web},
                    source="chikanemail.toml", base_dir=tmp_path)


@pytest.mark.parametrize(("oidc", "key", "problem"), [
    ({"tenants": []}, "web.oidc.tenants", "at least one tenant"),
    ({"issuer": "http://login.microsoftonline.com/tenant-a/v2.0"}, "web.oidc.issuer", "https"),
    ({"client_secret_file": "missing-secret"}, "web.oidc.client_secret_file", "does not exist"),
    ({"client_secret": "inline"}, "web.oidc.client_secret", "unknown key"),
    ({"tenants": ["organizations"]}, "web.oidc.tenants", "not a tenant id"),
    ({"provider": "google", "tenants": []}, "web.oidc.domains", "at least one"),
])
def test_oidc_settings_mistakes_name_the_key_and_the_file(
        tmp_path: Path, oidc: dict[str, Any], key: str, problem: str) -> None:
    (tmp_path / "secret").write_text("s3cret\n", encoding="utf-8")
    table = {"provider": "entra", "issuer": "https://login.microsoftonline.com/tenant-a/v2.0",
             "client_id": "app", "client_secret_file": "secret", "tenants": [TENANT], **oidc}
    with pytest.raises(SettingsError) as raised:
        _config_with(tmp_path, {"oidc": table})
    assert raised.value.key == key and problem in raised.value.problem
    assert str(raised.value).startswith("chikanemail.toml: ")


def test_mail_link_off_needs_oidc(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as raised:
        _config_with(tmp_path, {"mail_link": False})
    assert raised.value.key == "web.mail_link"


def test_the_secret_file_is_read_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("s3cret\n", encoding="utf-8")
    config = validate_config({"intake": {"addresses": ["chikanemail@kommune.example"]},
                              "web": {"oidc": {"provider": "google",
                                               "issuer": "https://accounts.google.com",
                                               "client_id": "app",
                                               "client_secret_file": "secret",
                                               "domains": [DOMAIN]}}},
                             source="chikanemail.toml", base_dir=tmp_path)
    assert config.web.oidc is not None
    assert config.web.oidc.client_secret_file == str(tmp_path / "secret")


def test_entra_shared_endpoint_trusts_each_tenant_only_with_its_own_issuer() -> None:
    shared = OidcSettings(provider="entra",
                          issuer="https://login.microsoftonline.com/organizations/v2.0",
                          client_id="app", tenants=("t1", "t2"))
    own = {"iss": "https://login.microsoftonline.com/t2/v2.0", "tid": "t2",
           "preferred_username": MANAGER, "email": "someone@else.example"}
    assert verified_address(shared, own) == MANAGER
    with pytest.raises(OidcRefused, match="issuer"):
        verified_address(shared, {**own, "iss": "https://login.microsoftonline.com/t1/v2.0"})
    with pytest.raises(OidcRefused, match="tid"):
        verified_address(shared, {**own, "tid": "t3",
                                  "iss": "https://login.microsoftonline.com/t3/v2.0"})
    with pytest.raises(OidcRefused, match="preferred_username"):
        verified_address(shared, {**own, "preferred_username": "not an address"})


def test_the_example_config_documents_every_oidc_key(tmp_path: Path) -> None:
    """The commented [web.oidc] table of config.example.toml, uncommented, names every key
    and loads (with its secret file made)."""
    text = (REPO_ROOT / "config.example.toml").read_text(encoding="utf-8")
    block = text[text.index("\n# [web.oidc]\n") + 1:].split("\n\n")[0]
    settings = [line[2:] for line in block.splitlines()
                if re.match(r"# (\[web\.oidc\]$|[a-z_]+ = )", line)]
    table = tomllib.loads("\n".join(settings))["web"]["oidc"]
    assert set(table) == {field.name for field in dataclasses.fields(OidcSettings)}
    (tmp_path / "secret").write_text("s3cret\n", encoding="utf-8")
    config = validate_config(
        {"intake": {"addresses": ["chikanemail@kommune.example"]},
         "web": {"oidc": {**table, "client_secret_file": "secret"}}},
        source="chikanemail.toml", base_dir=tmp_path)
    assert config.web.oidc is not None and config.web.oidc.provider == "entra"


def test_an_answer_naming_another_issuer_is_refused(
        sites: dict[str, Site], caplog: pytest.LogCaptureFixture) -> None:
    """RFC 9207: the provider names itself in its answer; another name is a mix-up."""
    site = sites["google"]
    http = requests.Session()
    started = http.get(site.base_url + "/login/oidc", allow_redirects=False)
    state = parse_qs(urlsplit(started.headers["location"]).query)["state"][0]
    with caplog.at_level(logging.WARNING, logger="chikanemail.web.oidc"):
        answer = http.get(site.base_url + "/login/oidc/callback", allow_redirects=False,
                          params={"code": "x", "state": state,
                                  "iss": "https://evil.example"})
    assert_refused(answer, http)
    assert any("iss parameter" in record.getMessage() for record in caplog.records)


def test_discovery_must_name_the_configured_issuer(sites: dict[str, Site]) -> None:
    """Entra's shared endpoint may answer with its {tenantid} template; for Google the
    same document is a provider that is not the one configured."""
    entra = sites["entra"].daemon.config.web.oidc
    assert entra is not None
    metadata = OidcClient(entra, "http://127.0.0.1/login/oidc/callback").metadata()
    assert metadata.issuer.endswith("/{tenantid}/v2.0")
    as_google = replace(entra, provider="google", tenants=(), domains=(DOMAIN,))
    with pytest.raises(OidcRefused, match="another issuer"):
        OidcClient(as_google, "http://127.0.0.1/login/oidc/callback").metadata()


def test_a_code_the_provider_does_not_know_is_refused(
        sites: dict[str, Site], caplog: pytest.LogCaptureFixture) -> None:
    site = sites["google"]
    http = requests.Session()
    started = http.get(site.base_url + "/login/oidc", allow_redirects=False)
    state = parse_qs(urlsplit(started.headers["location"]).query)["state"][0]
    with caplog.at_level(logging.WARNING, logger="chikanemail.web.oidc"):
        answer = http.get(site.base_url + "/login/oidc/callback", allow_redirects=False,
                          params={"code": "made-up", "state": state})
    assert_refused(answer, http)
    assert any("token exchange refused (invalid_grant)" in record.getMessage()
               for record in caplog.records)


def test_an_unreadable_secret_is_a_failure_not_a_refusal(sites: dict[str, Site]) -> None:
    """The person is told to try again, not that their account may not log in."""
    oidc = sites["google"].daemon.config.web.oidc
    assert oidc is not None
    secret = Path(oidc.client_secret_file)
    moved = secret.rename(secret.with_suffix(".away"))
    try:
        answer = requests.Session().get(sites["google"].base_url + "/login/oidc",
                                        allow_redirects=False)
    finally:
        moved.rename(secret)
    assert answer.status_code == 502
    assert "Prøv igen om lidt" in answer.text
