"""The workplace's local time in the fixed, sortable form the evidence bundle and the audit
JSON use, with the zone named; the zone ([ui] timezone) is always given by the caller.

What people read in the CLI and the mails is written by `storage.time_text` instead.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo


def local_time_with_zone(moment: datetime, zone: tzinfo) -> str:
    """The moment in the workplace's zone with the zone's name and offset, e.g.
    `2026-07-01 12:00:00 CEST (+0200)`."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # the store keeps naive UTC on SQLite
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z (%z)")


def read_in_workplace_zone(wall_time: datetime, zone: tzinfo) -> datetime | None:
    """A date written without a zone, read as the workplace's local time; None when a
    daylight-saving change makes that time ambiguous (the autumn hour that happens twice)
    or impossible (the spring hour that is skipped)."""
    naive = wall_time.replace(tzinfo=None)
    first = naive.replace(tzinfo=zone, fold=0)
    second = naive.replace(tzinfo=zone, fold=1)
    if first.utcoffset() != second.utcoffset():
        return None  # the two readings of the hour differ: repeated or skipped
    if first.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != naive:
        return None  # no such local time (kept as a second check for any zone's rules)
    return first
