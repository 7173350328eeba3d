"""The workplace's local time: Danish, with its zone named, the one way every part shows it."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WORKPLACE_ZONE = "Europe/Copenhagen"


@lru_cache(maxsize=1)
def workplace_zone() -> tzinfo:
    """Danish local time; UTC (and labelled so) if the system has no time zone data."""
    try:
        return ZoneInfo(WORKPLACE_ZONE)
    except ZoneInfoNotFoundError:
        return UTC


def local_time_with_zone(moment: datetime) -> str:
    """The moment in the workplace's local time with the zone's name and offset, e.g.
    `2026-07-01 12:00:00 CEST (+0200)`."""
    return moment.astimezone(workplace_zone()).strftime("%Y-%m-%d %H:%M:%S %Z (%z)")


def read_in_workplace_zone(wall_time: datetime) -> datetime | None:
    """A date written without a zone, read as the workplace's local time; None when a
    daylight-saving change makes that time ambiguous (the autumn hour that happens twice)
    or impossible (the spring hour that is skipped)."""
    zone = workplace_zone()
    naive = wall_time.replace(tzinfo=None)
    first = naive.replace(tzinfo=zone, fold=0)
    second = naive.replace(tzinfo=zone, fold=1)
    if first.utcoffset() != second.utcoffset():
        return None  # the two readings of the hour differ: repeated or skipped
    if first.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != naive:
        return None  # no such local time (kept as a second check for any zone's rules)
    return first
