"""The [ui] table: how the workplace's people read what the service shows them.

Here, in `storage`, because every package shows times to people and `storage` is the one
package all may import. Today it holds the workplace's time zone; the reader's language
joins it here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from storage.settings import FORBID_UNKNOWN_KEYS

DEFAULT_TIMEZONE = "Europe/Copenhagen"


@dataclass(frozen=True)
class UiSettings:
    """The workplace's time zone: every time a person reads, and every plan deadline."""

    __pydantic_config__ = FORBID_UNKNOWN_KEYS

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
