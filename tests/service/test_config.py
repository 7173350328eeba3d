"""Configuration: defaults, the documented example, and errors that name key and file."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest

from intake.service.config import AppConfig, load_config
from intake.service.settings import ImapMailbox
from storage.errors import SettingsError
from tests.support import REPO_ROOT

EXAMPLE = REPO_ROOT / "config.example.toml"
# Old names that still load (with a deprecation notice) and that the example no longer shows.
DEPRECATED_KEYS = {"notify": {"language"}}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_no_file_gives_embedded_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(None)
    assert config.storage.data_path == tmp_path / "chikanemail-data"
    assert config.storage.effective_database_url == (
        f"sqlite:///{tmp_path / 'chikanemail-data' / 'chikanemail.sqlite3'}")
    assert (config.smtp.host, config.smtp.port) == ("127.0.0.1", 8025)
    assert config.smtp.max_message_bytes == 52428800
    assert config.intake.addresses == ("chikanemail@localhost",)
    assert config.intake.foreign_sender_action == "reject"


def test_example_file_documents_every_key_with_its_default() -> None:
    with EXAMPLE.open("rb") as handle:
        example = tomllib.load(handle)
    defaults = AppConfig()
    for field in dataclasses.fields(AppConfig):
        if field.name in ("source", "imap", "deprecations"):  # [[imap]]: see below
            continue
        section = getattr(defaults, field.name)
        keys = {f.name for f in dataclasses.fields(section)} - DEPRECATED_KEYS.get(field.name,
                                                                                  set())
        # A table that is off by default ([web.oidc]) is shown commented out.
        optional = {key for key in keys if getattr(section, key) is None}
        for key in optional:
            assert f"\n# [{field.name}.{key}]\n" in EXAMPLE.read_text(encoding="utf-8")
        keys -= optional
        assert set(example[field.name]) == keys, f"[{field.name}] keys differ from the code"
        for key in keys:
            expected = getattr(section, key)
            if isinstance(expected, tuple):
                expected = [dataclasses.asdict(item) if dataclasses.is_dataclass(item) else item
                            for item in expected]
            assert example[field.name][key] == expected, f"{field.name}.{key} default differs"


def commented_imap_example() -> dict[str, object]:
    """The example's commented-out [[imap]] table, uncommented and parsed."""
    text = EXAMPLE.read_text(encoding="utf-8")
    block = text[text.index("\n# [[imap]]\n") + 1:]
    lines = [line[2:] if line.startswith("# ") else line.lstrip("#") for line in
             block.splitlines()]
    assert all(line.startswith("#") or "=" in line or line.startswith("[[imap]]") or not line
               for line in lines), "the [[imap]] example must be the end of the file"
    (table,) = tomllib.loads("\n".join(lines))["imap"]
    assert isinstance(table, dict)
    return table


def test_example_file_documents_every_imap_key_with_its_default() -> None:
    table = commented_imap_example()
    fields = {field.name: field for field in dataclasses.fields(ImapMailbox)}
    assert set(table) == set(fields), "[[imap]] keys differ from the code"
    for name, field in fields.items():
        if field.default is dataclasses.MISSING:
            assert table[name], f"imap.{name} needs an example value"
        else:
            assert table[name] == field.default, f"imap.{name} default differs"


def test_example_file_loads(tmp_path: Path) -> None:
    config = load_config(EXAMPLE)
    assert config.storage.data_path == REPO_ROOT / "chikanemail-data"
    assert config.smtp == AppConfig().smtp
    assert config.imap == ()  # the [[imap]] example is commented out


STEP = ('[[plan.steps]]\nkey = "a"\ntitle = { da = "A", en = "A" }\n'
        'description = { da = "", en = "" }\n')


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("[smtp]\nprot = 25\n", "smtp.prot", "unknown key"),
        ('[smtp]\nport = "25"\n', "smtp.port", "valid integer"),
        ("[smtp]\nenabled = 1\n", "smtp.enabled", "valid boolean"),
        ('[intake]\naddresses = "a@b.dk"\n', "intake.addresses", "valid array"),
        ('[intake]\nforeign_sender_action = "drop"\n', "intake.foreign_sender_action",
         "'reject' or 'quarantine'"),
        ("[smpt]\nport = 25\n", "smpt", "unknown table"),
        ("storage = 3\n", "storage", "must be a table"),
        ("[smtp]\nport = 70000\n", "smtp.port", "between 0 and 65535"),
        ("[smtp]\nrequire_starttls = true\n", "smtp.require_starttls", "tls_cert"),
        ('[smtp]\ntls_cert = "cert.pem"\n', "smtp.tls_key", "together"),
        ("[smtp]\nmax_message_bytes = 10\n", "smtp.max_message_bytes", "at least"),
        ("[smtp]\nmax_connections = 0\n", "smtp.max_connections", "at least 1"),
        ("[smtp]\nmax_connections_per_client = -1\n", "smtp.max_connections_per_client",
         "0 (no limit)"),
        ("[smtp]\nmin_data_bytes_per_second = -5\n", "smtp.min_data_bytes_per_second",
         "0 (off)"),
        ('[smtp]\ndata_deadline_seconds = "1h"\n', "smtp.data_deadline_seconds",
         "valid number"),
        ("[smtp]\ndata_deadline_seconds = -1\n", "smtp.data_deadline_seconds",
         "0 (no deadline)"),
        ("[intake]\naddresses = []\n", "intake.addresses", "at least one"),
        ('[intake]\naddresses = ["nobody"]\n', "intake.addresses", "not a mail address"),
        ('[intake]\nallowed_sender_domains = ["a@b.dk"]\n', "intake.allowed_sender_domains",
         "not a domain"),
        ('[storage]\ndatabase_url = "mysql://x/y"\n', "storage.database_url", "unsupported"),
        ("[worker]\nmax_attempts = 0\n", "worker.max_attempts", "at least 1"),
        ("[extract]\nmax_parts = 0\n", "extract.max_parts", "at least 1"),
        ("[smtp\n", "(syntax)", "line 1"),
        ('[plan]\nacknowledge_within = "P1M"\n', "plan.acknowledge_within", "months"),
        ('[plan]\nreminder_time = "8"\n', "plan.reminder_time", "HH:MM"),
        ('[plan]\nextra_closed_days = ["24-12"]\n', "plan.extra_closed_days", "24-12"),
        ('[plan]\nadmins = ["boss"]\n', "plan.admins", "not a mail address"),
        ('[plan]\ndigest_weekday = "mandag"\n', "plan.digest_weekday", "monday"),
        ("[plan]\nsteps = []\n", "plan.steps", "at least one step"),
        (STEP + 'due = "P1X"\n', "plan.steps[1].due", "P1X"),
        (STEP + 'owner = "boss"\n', "plan.steps[1].owner", "manager"),
        (STEP + 'colour = "red"\n', "plan.steps[1].colour", "unknown key"),
        (STEP + 'owner = "safety_rep"\n', "plan.safety_rep", "owned by safety_rep"),
        (STEP + 'due = "PT4H"\ndue_after = "first_absence_day"\n', "plan.steps[1].due",
         "whole days"),
        (STEP + STEP, "plan.steps[2].key", "earlier step"),
        ('[[plan.steps]]\nkey = "a"\ndescription = { da = "", en = "" }\n',
         "plan.steps[1].title", "required"),
        ('[notify]\nreply_to = "svar@kommune.dk"\n', "notify.reply_to",
         "must be one of intake.addresses"),
        ('[intake]\nrecipient_delimiter = "#"\n', "intake.recipient_delimiter", "'+'"),
        ('[trust]\ncommands = "token+authenticated"\n', "trust.commands", "needs trust.dkim"),
        ('[trust]\ncommands = "none"\n', "trust.commands", "token"),
        ('[trust]\ndns_servers = ["127.0.0.1:99999"]\n', "trust.dns_servers", "address:port"),
        ('[trust]\nauthserv_ids = ["mx kommune.dk"]\n', "trust.authserv_ids", "server name"),
        ("[trust]\ndkim = 1\n", "trust.dkim", "boolean"),
    ],
)
def test_mistakes_name_the_key_and_the_file(tmp_path: Path, text: str, key: str,
                                            problem: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(SettingsError) as caught:
        load_config(path)
    message = str(caught.value)
    assert str(path) in message
    assert f": {key}:" in message
    assert problem in message


def test_missing_file_is_an_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(SettingsError, match="no such file") as caught:
        load_config(missing)
    assert str(missing) in str(caught.value)


def test_relative_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    path = tmp_path / "etc" / "config.toml"
    path.write_text('[storage]\ndata_dir = "../var/data"\n', encoding="utf-8")
    assert load_config(path).storage.data_path == tmp_path / "var" / "data"


def test_settings_are_frozen(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[intake]\naddresses = ["A@Kommune.dk"]\n'))
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.smtp.port = 1  # type: ignore[misc]
    assert config.intake.addresses == ("A@Kommune.dk",)


def test_the_command_mode_follows_what_is_configured_and_token_only_is_said_at_start(
        caplog: pytest.LogCaptureFixture) -> None:
    from intake.service.daemon import warn_about_trust
    from intake.service.settings import TrustSettings

    assert TrustSettings().command_mode == "token"
    assert TrustSettings(dkim=True).command_mode == "token+authenticated"
    assert TrustSettings(authserv_ids=("mx.kommune.dk",)).command_mode == "token+authenticated"
    assert TrustSettings(dkim=True, commands="token").command_mode == "token"
    with caplog.at_level("WARNING", logger="chikanemail.daemon"):
        warn_about_trust(AppConfig())
        warn_about_trust(AppConfig(trust=TrustSettings(dkim=True)))
    said = [record.getMessage() for record in caplog.records]
    assert len(said) == 1 and "not authenticated" in said[0]


# -- [ui] language (issue 19) -----------------------------------------------------------


def test_ui_language_is_the_workplaces_language(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[ui]\nlanguage = "en"\n'))
    assert (config.ui.language, config.notify.language) == ("en", "en")
    assert config.deprecations == ()
    assert load_config(write(tmp_path, "")).ui.language == "da"


def test_the_old_notify_language_still_works_and_says_it_is_deprecated(tmp_path: Path) -> None:
    path = write(tmp_path, '[notify]\nlanguage = "en"\n')
    config = load_config(path)
    assert (config.ui.language, config.notify.language) == ("en", "en")
    [notice] = config.deprecations
    assert str(path) in notice and "[notify] language" in notice
    assert '[ui] language = "en"' in notice


def test_ui_language_wins_over_the_old_key_and_the_notice_says_so(tmp_path: Path) -> None:
    path = write(tmp_path, '[ui]\nlanguage = "da"\n[notify]\nlanguage = "en"\n')
    config = load_config(path)
    assert (config.ui.language, config.notify.language) == ("da", "da")
    [notice] = config.deprecations
    assert str(path) in notice and "ignored" in notice and "wins" in notice


def test_an_unknown_ui_language_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"ui\.language.*da, en"):
        load_config(write(tmp_path, '[ui]\nlanguage = "sv"\n'))


def test_old_per_language_templates_are_refused_at_start(tmp_path: Path) -> None:
    (tmp_path / "templates" / "en").mkdir(parents=True)
    (tmp_path / "templates" / "en" / "receipt.txt.j2").write_text("x", encoding="utf-8")
    path = write(tmp_path, '[notify]\ntemplate_dir = "templates"\n')
    with pytest.raises(SettingsError, match=r"notify\.template_dir") as raised:
        load_config(path)
    message = str(raised.value)
    assert str(path) in message and "en/receipt.txt.j2" in message
    assert "{% trans %}" in message and "README" in message


def test_the_daemon_logs_the_deprecation_once_at_start(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from intake.service.daemon import warn_about_deprecations

    config = load_config(write(tmp_path, '[notify]\nlanguage = "en"\n'))
    with caplog.at_level("WARNING", logger="chikanemail.daemon"):
        warn_about_deprecations(config)
    [record] = caplog.records
    assert "[notify] language is deprecated" in record.getMessage()
