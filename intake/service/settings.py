"""Settings the intake package owns, one small frozen dataclass per TOML table."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

from storage.settings import FORBID_UNKNOWN_KEYS

DEFAULT_MAX_MESSAGE_BYTES = 50 * 1024 * 1024


def available_cores() -> int:
    """How many CPU cores this process may run on (its affinity, else the machine's)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class SmtpSettings:
    """The SMTP (or LMTP) listener: the [smtp] table."""

    __pydantic_config__ = FORBID_UNKNOWN_KEYS

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8025
    lmtp: bool = False
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    timeout_seconds: float = 300.0
    tls_cert: str = ""
    tls_key: str = ""
    require_starttls: bool = False
    server_hostname: str = ""
    max_connections: int = 50
    # Connections from one client (IPv4 address, IPv6 /64) at once; 0: no per-client limit.
    # Not applied with lmtp or on a unix socket (the local MTA).
    max_connections_per_client: int = 10
    # DATA slower than this on average over each timeout_seconds is cut (0: any byte will do).
    min_data_bytes_per_second: int = 1024
    # A whole DATA must arrive within this (0: no deadline).
    data_deadline_seconds: float = 3600.0
    # A session must hand in a mail within this of its start or of its last mail (0: no
    # deadline); a DATA under way is judged by the two settings above instead.
    session_deadline_seconds: float = 600.0
    # A unix socket path: listen there instead of host:port (LMTP from an MTA on this host).
    socket: str = ""
    socket_mode: str = "0660"
    socket_group: str = ""


@dataclass(frozen=True)
class IntakeSettings:
    """Who may send to whom: the [intake] table."""

    __pydantic_config__ = FORBID_UNKNOWN_KEYS

    addresses: tuple[str, ...] = ("chikanemail@localhost",)
    allowed_sender_domains: tuple[str, ...] = ()
    foreign_sender_action: Literal["reject", "quarantine"] = "reject"
    # Between an intake address's local part and a secret reply token: chikanemail+<token>@…
    recipient_delimiter: Literal["+", "-"] = "+"


@dataclass(frozen=True)
class TrustSettings:
    """Who a mail is proven to come from: the [trust] table.

    A mail acts on a case only when it came to a live reply token of that case and person;
    with `commands = "token+authenticated"` its From must also be authenticated, by our own
    DKIM check (`dkim`) or by the Authentication-Results of a server the admin names
    (`authserv_ids`).
    """

    __pydantic_config__ = FORBID_UNKNOWN_KEYS

    dkim: bool = False
    # DNS servers for DKIM keys, "host" or "host:port"; empty: the system's resolver.
    dns_servers: tuple[str, ...] = ()
    dns_timeout_seconds: float = 5.0
    # The authserv-ids of the admin's own servers whose Authentication-Results count.
    authserv_ids: tuple[str, ...] = ()
    # "token+authenticated" (default when dkim or authserv_ids is set) or "token"; empty:
    # that default.
    commands: Literal["", "token", "token+authenticated"] = ""

    @property
    def authenticates(self) -> bool:
        """Whether any way of authenticating a sender is configured."""
        return self.dkim or bool(self.authserv_ids)

    @property
    def command_mode(self) -> str:
        """The mode in force: the configured one, else the default for what is configured."""
        if self.commands:
            return self.commands
        return "token+authenticated" if self.authenticates else "token"


@dataclass(frozen=True)
class WorkerSettings:
    """The worker that runs the processing pipeline: the [worker] table."""

    __pydantic_config__ = FORBID_UNKNOWN_KEYS

    enabled: bool = True
    # 0: one worker process per CPU core; 1: the worker is a thread of the daemon's own
    # process; N > 1: N worker processes (`intake.pipeline.worker_processes`).
    processes: int = 0
    batch_size: int = 10
    poll_seconds: float = 5.0
    max_attempts: int = 3
    retry_seconds: float = 60.0
    lease_seconds: float = 900.0

    @property
    def process_count(self) -> int:
        """How many processes run the pipeline: `processes`, or the cores when it is 0."""
        return self.processes or available_cores()


@dataclass(frozen=True)
class ExtractSettings:
    """How every part of a message is taken out as evidence: the [extract] table."""

    __pydantic_config__ = FORBID_UNKNOWN_KEYS

    max_depth: int = 10
    ocr: bool = True
    ocr_languages: str = "dan+eng"
    ocr_timeout_seconds: float = 60.0
    max_image_pixels: int = 64_000_000
    max_parts: int = 1000


@dataclass(frozen=True)
class ImapMailbox:
    """One mailbox to take mail from: an [[imap]] table."""

    __pydantic_config__ = FORBID_UNKNOWN_KEYS

    name: str
    host: str
    username: str
    port: int = 993
    security: Literal["ssl", "starttls"] = "ssl"
    auth: Literal["password", "xoauth2"] = "password"
    password_file: str = ""
    # OAuth2 (auth = "xoauth2"): the token endpoint, the client, and where the secrets live.
    oauth_token_endpoint: str = ""
    oauth_client_id: str = ""
    oauth_client_secret_file: str = ""
    oauth_scope: str = ""
    oauth_refresh_token_file: str = ""
    folder: str = "INBOX"
    processed_folder: str = "Chikanemail/Behandlet"
    mode: Literal["idle", "poll"] = "idle"
    poll_seconds: float = 60.0
    # Connect and read timeout (imapclient has none by default).
    timeout_seconds: float = 60.0
    # Verify the server's certificate against this CA file (PEM); empty: the system's CAs.
    ca_file: str = ""


@dataclass(frozen=True)
class LoggingSettings:
    """What the daemon logs: the [logging] table."""

    __pydantic_config__ = FORBID_UNKNOWN_KEYS

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # "text": key=value lines; "json": one JSON object per line.
    format: Literal["text", "json"] = "text"


@dataclass(frozen=True)
class HealthSettings:
    """What `chikanemail health` warns or fails about: the [health] table."""

    __pydantic_config__ = FORBID_UNKNOWN_KEYS

    # Free space on the data directory's filesystem (and the stores', if elsewhere): warn
    # below min_free_mb, fail below fail_free_mb.
    min_free_mb: int = 1024
    fail_free_mb: int = 200
    # Warn when the oldest message received but not yet processed waited longer than this.
    backlog_max_age_minutes: float = 30.0
    # Warn when the last backup is older than this; 0: no backup check.
    backup_max_age_hours: float = 0.0
    # Where the daemon publishes its SMTP answers for `health`; empty: systemd's
    # $RUNTIME_DIRECTORY, else run/ in the data directory.
    status_dir: str = ""
