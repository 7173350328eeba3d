"""Settings the notifier owns: the [notify] and [timestamp] tables."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from storage.settings import FORBID_UNKNOWN_KEYS


@dataclass(frozen=True)
class NotifySettings:
    """How mail leaves: relay, sender addresses, language, retries."""

    __pydantic_config__ = FORBID_UNKNOWN_KEYS

    # Empty: no relay; outgoing mail is written to the Maildir <data_dir>/outgoing-maildir.
    smtp_host: str = ""
    smtp_port: int = 25
    starttls: bool = False
    username: str = ""
    password_file: str = ""
    # Empty: the first intake address.
    from_address: str = ""
    # Empty: the first intake address, so replies thread back into the case.
    reply_to: str = ""
    # The workplace's language. Written as [ui] language; the loader hands the outcome over
    # here. In [notify] it is the old, deprecated name (still read when [ui] sets none).
    language: Literal["da", "en"] = "da"
    # Per manager address: "da" or "en".
    manager_languages: dict[str, str] = field(default_factory=dict)
    # A folder whose templates (same names as notifier/templates/) override the built-in ones.
    template_dir: str = ""
    include_evidence: bool = False
    # Temporary failures are retried with exponential backoff until this deadline.
    retry_deadline_hours: float = 120.0
    first_retry_seconds: float = 30.0
    max_retry_seconds: float = 3600.0
    poll_seconds: float = 5.0
    timeout_seconds: float = 60.0


@dataclass(frozen=True)
class TimestampSettings:
    """RFC 3161 trusted time-stamps of each raw message's SHA-256 (off when tsa_url is empty)."""

    __pydantic_config__ = FORBID_UNKNOWN_KEYS

    # The time-stamp authority's URL, e.g. "https://freetsa.org/tsr". Empty: off.
    tsa_url: str = ""
    # The TSA's CA certificate (PEM), copied into exports so `openssl ts -verify` can use it.
    ca_file: str = ""
    timeout_seconds: float = 30.0
    # A TSA that is down is asked again later: after this, doubling up to max_retry_seconds.
    first_retry_seconds: float = 60.0
    max_retry_seconds: float = 3600.0
