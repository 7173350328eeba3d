"""Load and validate the one TOML configuration file into frozen settings objects.

Every mistake is reported as a `SettingsError` naming the file and the key. Relative paths in
a file are taken relative to the folder of that file.
"""

from __future__ import annotations

import grp
import json
import os
import re
import stat
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import pydantic
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from intake.cases.routing import RoutingSettings, validate_routing
from intake.receive.imap.config import TABLE as IMAP_TABLE
from intake.receive.imap.config import check_mailboxes
from intake.service.settings import (
    ExtractSettings,
    HealthSettings,
    ImapMailbox,
    IntakeSettings,
    LoggingSettings,
    SmtpSettings,
    TrustSettings,
    WorkerSettings,
)
from intake.web.settings import WebSettings, web_settings_problem
from intake.web.stats.settings import StatsSettings
from notifier.plan.checks import check_plan
from notifier.plan.settings import PlanSettings
from notifier.settings import NotifySettings, TimestampSettings
from notifier.templating import old_style_overrides, old_style_problem
from storage.errors import SettingsError
from storage.i18n.catalogs import LANGUAGES
from storage.settings import RetentionSettings, StorageSettings
from storage.ui_settings import UiSettings, timezone_problem

CONFIG_ENV_VAR = "CHIKANEMAIL_CONFIG"
# Extraction parses a message in memory, about 7 times its size (bench/extract_figures.py).
MAX_MESSAGE_BYTES_CEILING = 256 * 1024 * 1024
_NO_FILE = "(built-in defaults)"
_IMAP = IMAP_TABLE
_DOMAIN = re.compile(r"(\*\.)?([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9-]{1,63}\.?")
_ADDRESS = re.compile(r"[^@\s<>]+@[^@\s<>]+")
# sun_path of struct sockaddr_un on Linux, with its terminating NUL.
_UNIX_SOCKET_PATH_MAX = 108

T = TypeVar("T")


@dataclass(frozen=True)
class AppConfig:
    """The whole validated configuration; each package receives its own section."""

    source: str = _NO_FILE
    storage: StorageSettings = field(default_factory=StorageSettings)
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    intake: IntakeSettings = field(default_factory=IntakeSettings)
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    extract: ExtractSettings = field(default_factory=ExtractSettings)
    routing: RoutingSettings = field(default_factory=RoutingSettings)
    notify: NotifySettings = field(default_factory=NotifySettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    plan: PlanSettings = field(default_factory=PlanSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    timestamp: TimestampSettings = field(default_factory=TimestampSettings)
    trust: TrustSettings = field(default_factory=TrustSettings)
    health: HealthSettings = field(default_factory=HealthSettings)
    ui: UiSettings = field(default_factory=UiSettings)
    web: WebSettings = field(default_factory=WebSettings)
    stats: StatsSettings = field(default_factory=StatsSettings)
    # Mailboxes to take mail from: the [[imap]] tables, in the file's order.
    imap: tuple[ImapMailbox, ...] = ()
    # Settings the file uses that still work but will go: said once at start (daemon, CLI).
    deprecations: tuple[str, ...] = ()


_SECTIONS: dict[str, type[Any]] = {
    "storage": StorageSettings,
    "smtp": SmtpSettings,
    "intake": IntakeSettings,
    "worker": WorkerSettings,
    "extract": ExtractSettings,
    "routing": RoutingSettings,
    "notify": NotifySettings,
    "logging": LoggingSettings,
    "plan": PlanSettings,
    "retention": RetentionSettings,
    "timestamp": TimestampSettings,
    "trust": TrustSettings,
    "health": HealthSettings,
    "ui": UiSettings,
    "web": WebSettings,
    "stats": StatsSettings,
}


def config_path_from_environment() -> Path | None:
    """The config file named by the CHIKANEMAIL_CONFIG environment variable, if set."""
    value = os.environ.get(CONFIG_ENV_VAR, "").strip()
    return Path(value) if value else None


def load_config(path: Path | None) -> AppConfig:
    """Read and validate the config file; with no path, the built-in defaults."""
    if path is None:
        return validate_config({}, source=_NO_FILE, base_dir=Path.cwd())
    return validate_config(_read_toml(path), source=str(path),
                           base_dir=Path(path).resolve().parent)


def load_config_copy(copy: Path, original: Path) -> AppConfig:
    """Read a copy of a config file (a backup's) as the file at `original` would be read:
    relative paths in it resolve from `original`'s folder."""
    return validate_config(_read_toml(copy), source=f"{copy} (copy of {original})",
                           base_dir=original.parent)


def _read_toml(path: Path) -> dict[str, Any]:
    source = str(path)
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise SettingsError(source, "(file)", "no such file") from None
    except PermissionError:
        raise SettingsError(source, "(file)", "not readable by this user") from None
    except IsADirectoryError:
        raise SettingsError(source, "(file)", "is a directory, not a TOML file") from None
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(source, "(syntax)", str(error)) from None


def validate_config(data: dict[str, Any], *, source: str, base_dir: Path) -> AppConfig:
    """Turn parsed TOML into an `AppConfig`, or raise `SettingsError` naming the bad key."""
    sections: dict[str, Any] = {}
    for name, value in data.items():
        if name == _IMAP:
            sections[name] = _validate_imap(value, source)
            continue
        if name not in _SECTIONS:
            known = ", ".join([*(f"[{known_name}]" for known_name in _SECTIONS), "[[imap]]"])
            raise SettingsError(source, name, f"unknown table or key (known tables: {known})")
        if not isinstance(value, dict):
            raise SettingsError(source, name, f"must be a table ([{name}]), not a single value")
        sections[name] = _validate_section(name, _SECTIONS[name], value, source)
    config = AppConfig(source=source, **sections)
    config = _resolve_language(config, data)
    config = _resolve_paths(config, base_dir)
    _check_contradictions(config)
    return config


def _validate_section(name: str, settings_type: type[T], table: dict[str, Any], source: str) -> T:
    adapter = pydantic.TypeAdapter(settings_type)
    try:
        # JSON mode lets strict validation take a table for a dataclass and an array for a tuple.
        return adapter.validate_json(json.dumps(table, default=str))
    except pydantic.ValidationError as error:
        first = error.errors()[0]
        key = name + "".join(f"[{part + 1}]" if isinstance(part, int) else f".{part}"
                             for part in first["loc"])
        problem = first["msg"]
        if first["type"] == "unexpected_keyword_argument":
            problem = "unknown key"
        elif "input" in first and not isinstance(first["input"], dict):
            problem += f" (got {first['input']!r})"
        raise SettingsError(source, key, problem) from None


def _validate_imap(value: Any, source: str) -> tuple[ImapMailbox, ...]:
    """The [[imap]] tables; a mistake is named `imap[N].key`, N counting tables from 1."""
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise SettingsError(source, _IMAP, "must be an array of tables: write each mailbox as "
                            "its own [[imap]] table")
    return tuple(_validate_section(f"{_IMAP}[{number}]", ImapMailbox, table, source)
                 for number, table in enumerate(value, start=1))


def _resolve_language(config: AppConfig, data: dict[str, Any]) -> AppConfig:
    """[ui] language is the workplace's language; [notify] language, its old name, still
    works (with a deprecation notice) where [ui] does not set one. The notifier receives the
    outcome as its `language`."""
    source = config.source
    notify_table = data.get("notify")
    ui_table = data.get("ui")
    old = notify_table.get("language") if isinstance(notify_table, dict) else None
    new = ui_table.get("language") if isinstance(ui_table, dict) else None
    language = config.ui.language
    if language not in LANGUAGES:
        raise SettingsError(source, "ui.language",
                            f"must be one of {', '.join(LANGUAGES)} (got {language!r})")
    notices: list[str] = []
    if old is not None and new is None:
        language = config.notify.language
        notices.append(f"{source}: [notify] language is deprecated; write "
                       f"[ui] language = \"{old}\" instead (the workplace's language for "
                       "mails, receipts, the export report and the CLI)")
    elif old is not None and old != new:
        notices.append(f"{source}: [notify] language = \"{old}\" is deprecated and ignored: "
                       f"[ui] language = \"{new}\" is set and wins; remove [notify] language")
    elif old is not None:
        notices.append(f"{source}: [notify] language is deprecated and repeats [ui] "
                       "language; remove [notify] language")
    return replace(config, ui=replace(config.ui, language=language),
                   notify=replace(config.notify, language=language),  # type: ignore[arg-type]
                   deprecations=config.deprecations + tuple(notices))


def _resolve_paths(config: AppConfig, base_dir: Path) -> AppConfig:
    def absolute(value: str) -> str:
        if not value:
            return value
        path = Path(value).expanduser()
        return str(path if path.is_absolute() else (base_dir / path).resolve())

    storage = replace(config.storage, data_dir=absolute(config.storage.data_dir))
    smtp = replace(
        config.smtp, tls_cert=absolute(config.smtp.tls_cert), tls_key=absolute(config.smtp.tls_key),
        socket=absolute(config.smtp.socket),
    )
    routing = replace(config.routing, directory=absolute(config.routing.directory))
    timestamp = replace(config.timestamp, ca_file=absolute(config.timestamp.ca_file))
    notify = replace(config.notify, password_file=absolute(config.notify.password_file),
                     template_dir=absolute(config.notify.template_dir))
    imap = tuple(
        replace(mailbox, password_file=absolute(mailbox.password_file),
                oauth_client_secret_file=absolute(mailbox.oauth_client_secret_file),
                oauth_refresh_token_file=absolute(mailbox.oauth_refresh_token_file),
                ca_file=absolute(mailbox.ca_file))
        for mailbox in config.imap
    )
    web = config.web
    if web.oidc is not None:
        web = replace(web, oidc=replace(
            web.oidc, client_secret_file=absolute(web.oidc.client_secret_file)))
    return replace(config, storage=storage, smtp=smtp, routing=routing, notify=notify,
                   imap=imap, timestamp=timestamp, web=web)


def _check_smtp_socket(smtp: SmtpSettings, fail: Callable[[str, str], None]) -> None:
    """[smtp] socket, socket_mode and socket_group."""
    if not re.fullmatch(r"0?[0-7]{3}", smtp.socket_mode):
        fail("smtp.socket_mode", f"must be octal permissions like \"0660\" (got "
             f"{smtp.socket_mode!r})")
    if smtp.socket_group:
        try:
            grp.getgrnam(smtp.socket_group)
        except KeyError:
            fail("smtp.socket_group", f"no group {smtp.socket_group!r} on this machine")
    if not smtp.socket:
        return
    if len(os.fsencode(smtp.socket)) >= _UNIX_SOCKET_PATH_MAX:
        fail("smtp.socket", f"{smtp.socket} is too long for a unix socket path "
             f"(at most {_UNIX_SOCKET_PATH_MAX - 1} bytes)")
    folder = os.path.dirname(smtp.socket)
    if not os.path.isdir(folder):
        fail("smtp.socket", f"folder {folder} does not exist (with systemd: "
             "RuntimeDirectory=chikanemail creates /run/chikanemail)")
    if os.path.exists(smtp.socket) and not stat.S_ISSOCK(os.stat(smtp.socket).st_mode):
        fail("smtp.socket", f"{smtp.socket} exists and is not a socket")


def _check_notify(config: AppConfig, fail: Callable[[str, str], None]) -> None:
    notify = config.notify
    if not 1 <= notify.smtp_port <= 65535:
        fail("notify.smtp_port", f"must be between 1 and 65535 (got {notify.smtp_port})")
    for key, address in (("notify.from_address", notify.from_address),
                         ("notify.reply_to", notify.reply_to)):
        if address and not _ADDRESS.fullmatch(address):
            fail(key, f"{address!r} is not a mail address")
    if notify.username and not notify.password_file:
        fail("notify.password_file", "needed when notify.username is set")
    if notify.password_file and not os.access(notify.password_file, os.R_OK):
        fail("notify.password_file", f"file {notify.password_file} does not exist or is not "
             "readable")
    if notify.template_dir and not os.path.isdir(notify.template_dir):
        fail("notify.template_dir", f"{notify.template_dir} is not a folder")
    old_templates = old_style_overrides(notify.template_dir)
    if old_templates:
        fail("notify.template_dir", old_style_problem(old_templates))
    for manager, language in notify.manager_languages.items():
        if not _ADDRESS.fullmatch(manager):
            fail("notify.manager_languages", f"{manager!r} is not a mail address")
        if language not in LANGUAGES:
            fail(f"notify.manager_languages.{manager}", f"must be one of "
                 f"{', '.join(LANGUAGES)} (got {language!r})")
    for key, seconds in (("notify.retry_deadline_hours", notify.retry_deadline_hours),
                         ("notify.first_retry_seconds", notify.first_retry_seconds),
                         ("notify.max_retry_seconds", notify.max_retry_seconds),
                         ("notify.poll_seconds", notify.poll_seconds),
                         ("notify.timeout_seconds", notify.timeout_seconds)):
        if seconds <= 0:
            fail(key, "must be greater than 0")


def _check_trust(config: AppConfig, fail: Callable[[str, str], None]) -> None:
    """[trust], and [notify] reply_to as the address whose plus-addresses carry tokens."""
    trust = config.trust
    for server in trust.dns_servers:
        host, _, port = server.rpartition(":") if server.count(":") == 1 else (server, "", "")
        if not host or (port and not (port.isdigit() and 1 <= int(port) <= 65535)):
            fail("trust.dns_servers", f"{server!r} is not an address, or address:port")
    if trust.dns_timeout_seconds <= 0:
        fail("trust.dns_timeout_seconds", "must be greater than 0")
    for authserv_id in trust.authserv_ids:
        if not authserv_id.strip() or any(character.isspace() for character in authserv_id):
            fail("trust.authserv_ids", f"{authserv_id!r} is not a server name")
    if trust.commands == "token+authenticated" and not trust.authenticates:
        fail("trust.commands", "\"token+authenticated\" needs trust.dkim = true or "
             "trust.authserv_ids")
    reply_to = config.notify.reply_to
    intake_addresses = {address.casefold() for address in config.intake.addresses}
    if reply_to and reply_to.casefold() not in intake_addresses:
        fail("notify.reply_to", f"{reply_to!r} must be one of intake.addresses (replies carry "
             "the case's secret token on its plus-address)")


def _check_proof(config: AppConfig, fail: Callable[[str, str], None]) -> None:
    """[storage] verify, [retention] and [timestamp]."""
    if config.storage.verify_every_days <= 0:
        fail("storage.verify_every_days", "must be greater than 0")
    retention = config.retention
    for key, days in (("retention.closed_case_days", retention.closed_case_days),
                      ("retention.not_a_report_days", retention.not_a_report_days)):
        if days < 1:
            fail(key, "must be at least 1 (a day)")
    timestamp = config.timestamp
    if timestamp.tsa_url and not re.match(r"https?://[^/\s]+", timestamp.tsa_url):
        fail("timestamp.tsa_url", f"{timestamp.tsa_url!r} is not an http(s) URL")
    if timestamp.ca_file and not os.access(timestamp.ca_file, os.R_OK):
        fail("timestamp.ca_file", f"file {timestamp.ca_file} does not exist or is not readable")
    for key, seconds in (("timestamp.timeout_seconds", timestamp.timeout_seconds),
                         ("timestamp.first_retry_seconds", timestamp.first_retry_seconds),
                         ("timestamp.max_retry_seconds", timestamp.max_retry_seconds)):
        if seconds <= 0:
            fail(key, "must be greater than 0")


def _check_contradictions(config: AppConfig) -> None:
    """Checks no single type can express: ranges, pairs of keys, files that must exist."""
    source = config.source

    def fail(key: str, problem: str) -> None:
        raise SettingsError(source, key, problem)

    health = config.health
    if not 0 <= health.fail_free_mb <= health.min_free_mb:
        fail("health.fail_free_mb", f"must be between 0 and health.min_free_mb "
             f"({health.min_free_mb}) (got {health.fail_free_mb})")
    if health.status_dir and not Path(health.status_dir).is_absolute():
        fail("health.status_dir", "must be an absolute path (e.g. /run/chikanemail)")

    if config.storage.database_url:
        try:
            backend = make_url(config.storage.database_url).get_backend_name()
        except ArgumentError:
            fail("storage.database_url", "not a database URL (e.g. postgresql+psycopg://…)")
        else:
            if backend not in ("sqlite", "postgresql"):
                fail("storage.database_url", f"unsupported database {backend!r}; use sqlite "
                     "or postgresql+psycopg")

    for viewer in config.stats.viewers:
        if not _ADDRESS.fullmatch(viewer):
            fail("stats.viewers", f"{viewer!r} is not a mail address")

    web_problem = web_settings_problem(config.web)
    if web_problem is not None:
        fail(*web_problem)

    smtp = config.smtp
    if not 0 <= smtp.port <= 65535:
        fail("smtp.port", f"must be between 0 and 65535 (got {smtp.port})")
    if smtp.max_message_bytes < 1024:
        fail("smtp.max_message_bytes", "must be at least 1024")
    if smtp.max_message_bytes > MAX_MESSAGE_BYTES_CEILING:
        fail("smtp.max_message_bytes",
             f"must be at most {MAX_MESSAGE_BYTES_CEILING} (extraction parses a message in "
             "memory, about 7 times its size)")
    if smtp.timeout_seconds <= 0:
        fail("smtp.timeout_seconds", "must be greater than 0")
    if smtp.max_connections < 1:
        fail("smtp.max_connections", "must be at least 1")
    if smtp.max_connections_per_client < 0:
        fail("smtp.max_connections_per_client", "must be 0 (no limit) or more")
    if smtp.min_data_bytes_per_second < 0:
        fail("smtp.min_data_bytes_per_second", "must be 0 (off) or more")
    if smtp.data_deadline_seconds < 0:
        fail("smtp.data_deadline_seconds", "must be 0 (no deadline) or more")
    if smtp.session_deadline_seconds < 0:
        fail("smtp.session_deadline_seconds", "must be 0 (no deadline) or more")
    if bool(smtp.tls_cert) != bool(smtp.tls_key):
        fail("smtp.tls_key" if smtp.tls_cert else "smtp.tls_cert",
             "tls_cert and tls_key must be given together")
    for key, value in (("smtp.tls_cert", smtp.tls_cert), ("smtp.tls_key", smtp.tls_key)):
        if value and not os.access(value, os.R_OK):
            fail(key, f"file {value} does not exist or is not readable")
    if smtp.require_starttls and not smtp.tls_cert:
        fail("smtp.require_starttls", "needs smtp.tls_cert and smtp.tls_key")
    _check_smtp_socket(smtp, fail)

    intake = config.intake
    if not intake.addresses:
        fail("intake.addresses", "must list at least one accepted address")
    for address in intake.addresses:
        if not _ADDRESS.fullmatch(address):
            fail("intake.addresses", f"{address!r} is not a mail address")
    for domain in intake.allowed_sender_domains:
        if "@" in domain or not _DOMAIN.fullmatch(domain.lower()):
            fail("intake.allowed_sender_domains",
                 f"{domain!r} is not a domain (write example.dk or *.example.dk)")

    worker = config.worker
    for key, number, minimum in (
        ("worker.processes", worker.processes, 0),
        ("worker.batch_size", worker.batch_size, 1),
        ("worker.max_attempts", worker.max_attempts, 1),
    ):
        if number < minimum:
            fail(key, f"must be at least {minimum}")
    for key, seconds in (
        ("worker.poll_seconds", worker.poll_seconds),
        ("worker.lease_seconds", worker.lease_seconds),
    ):
        if seconds <= 0:
            fail(key, "must be greater than 0")
    if worker.retry_seconds < 0:
        fail("worker.retry_seconds", "must not be negative")

    timezone = timezone_problem(config.ui.timezone)
    if timezone:
        fail("ui.timezone", timezone)

    _check_notify(config, fail)
    _check_trust(config, fail)
    _check_proof(config, fail)
    validate_routing(config.routing, source)
    check_plan(config.plan, source)
    check_mailboxes(config.imap, fail)

    extract = config.extract
    if not 1 <= extract.max_depth <= 50:
        fail("extract.max_depth", "must be between 1 and 50")
    if extract.ocr_timeout_seconds <= 0:
        fail("extract.ocr_timeout_seconds", "must be greater than 0")
    if extract.max_image_pixels < 1_000_000:
        fail("extract.max_image_pixels", "must be at least 1000000")
    if extract.max_parts < 1:
        fail("extract.max_parts", "must be at least 1")
    if not re.fullmatch(r"[A-Za-z_]+(\+[A-Za-z_]+)*", extract.ocr_languages):
        fail("extract.ocr_languages", "must be tesseract language codes joined by + "
             "(e.g. dan+eng)")
