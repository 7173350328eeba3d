"""The [ui] table: how the workplace's people read what the service shows them.

Here, in `storage`, because every package shows times to people and `storage` is the one
package all may import: the workplace's language and its time zone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from storage.settings import FORBID_UNKNOWN_KEYS

DEFAULT_TIMEZONE = "Europe/Copenhagen"


@dataclass(frozen=True)
class UiSettings:
    """The workplace's language and time zone: every text and time a person reads, and
    every plan deadline."""

    __pydantic_config__ = FORBID_UNKNOWN_KEYS

    # The workplace's language: mails (unless [notify] manager_languages names another for a
    # manager), receipts, the export report, system notes and the CLI. One of
    # storage.i18n.catalogs.LANGUAGES.
    language: str = "da"

    # An IANA zone name (tz database), e.g. "Europe/Copenhagen" or "Europe/Oslo".
    timezone: str = DEFAULT_TIMEZONE

    @property
    def zone(self) -> tzinfo:
        """The configured zone (checked at start by `timezone_problem`)."""
        return ZoneInfo(self.timezone)


def timezone_problem(name: str) -> str | None:
    """Why `name` is not a time zone this machine knows, or None when it is one."""
    if not name or name != name.strip():
        return f"{name!r} is not a time zone name (e.g. \"Europe/Copenhagen\")"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return (f"unknown time zone {name!r} (an IANA name such as \"Europe/Copenhagen\"; "
                "the system's tzdata or the tzdata package must know it)")
    return None
