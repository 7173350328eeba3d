"""Deadline lengths in the response plan, written as ISO 8601 durations ("P1D", "PT4H").

Only the unambiguous part of ISO 8601 is accepted: weeks alone (PnW), or days and/or a
time part (PnD, PTnH, PTnM, PTnS, P1DT12H), whole numbers in capital letters. Months and
years vary in length, so they are refused.

Days either count working days (a week is then 5 of them) or calendar days; both keep
the local time of day. The time part is elapsed time: "P1D" is the same time tomorrow,
"PT24H" is 24 hours later, which differs by an hour across a change to or from summer time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from notifier.templating import LANGUAGES
from notifier.working_days import WorkingCalendar
from storage.time_text import due_rule_words, duration_words

_DURATION = re.compile(
    # [0-9], not \d: int() would also read other scripts' digits.
    r"P(?:(?P<weeks>[0-9]+)W"
    r"|(?:(?P<days>[0-9]+)D)?"
    r"(?:T(?=[0-9])(?:(?P<hours>[0-9]+)H)?(?:(?P<minutes>[0-9]+)M)?(?:(?P<seconds>[0-9]+)S)?)?)"
)
_EXAMPLES = "for example P1D, P2W, PT4H or P1DT12H"

# Ten years: far beyond any response plan, well inside what datetime can count.
_LONGEST = timedelta(days=3650)


@dataclass(frozen=True)
class PlanDuration:
    """A deadline length from the plan: ISO 8601, counted in working days or calendar time."""

    text: str  # as written, e.g. "P1D"
    days: int  # the days part (weeks count 7 days calendar, 5 days when working)
    rest: timedelta  # the time part (hours, minutes, seconds)
    working: bool

    def __post_init__(self) -> None:
        if self.days < 0 or self.rest < timedelta(0):
            raise ValueError(f"duration {self.text!r} is negative")


def parse_duration(text: str, *, working: bool = False) -> PlanDuration:
    """The plan duration an ISO 8601 text such as "P1D" or "PT4H" stands for.

    With `working`, its days (and weeks, of 5 days each) are working days. Lower-case
    letters are refused, as are years, months, fractions, signs and an empty "P".
    """
    match = _DURATION.fullmatch(text)
    if match is None or match.group(0) in ("P", "PT"):
        raise ValueError(f"duration {text!r}: {_why_not(text)}")
    weeks, days, hours, minutes, seconds = (
        int(match[name] or 0) for name in ("weeks", "days", "hours", "minutes", "seconds")
    )
    days += weeks * (5 if working else 7)
    # Checked in plain integers: timedelta itself overflows on absurd amounts.
    if days * 86400 + hours * 3600 + minutes * 60 + seconds > _LONGEST.total_seconds():
        raise ValueError(f"duration {text!r} is longer than {_LONGEST.days} days")
    rest = timedelta(hours=hours, minutes=minutes, seconds=seconds)
    return PlanDuration(text=text, days=days, rest=rest, working=working)


def _why_not(text: str) -> str:
    date_part = text.partition("T")[0]
    if not text.strip():
        return "empty; write an ISO 8601 duration, " + _EXAMPLES
    if text != text.strip():
        return "remove the spaces around it"
    if text.startswith(("-", "+")) or "-" in text:
        return "a duration cannot be negative or signed; " + _EXAMPLES
    if "." in text or "," in text:
        return "fractions are not accepted; use a smaller unit (PT90M rather than PT1.5H)"
    if text != text.upper():
        return "write it in capital letters, " + _EXAMPLES
    if "Y" in date_part or "M" in date_part:
        return ("years and months are not accepted, as their length varies "
                "(months are ambiguous); use days or weeks, e.g. P30D or P4W")
    if text in ("P", "PT") or text.endswith("T"):
        return "it has no amount; " + _EXAMPLES
    if "W" in text:
        return "weeks cannot be combined with other units; use days, e.g. P10D"
    return "not an ISO 8601 duration of weeks, days, hours, minutes and seconds; " + _EXAMPLES


def add_duration(calendar: WorkingCalendar, start: datetime, duration: PlanDuration) -> datetime:
    """The moment `duration` after `start`, in UTC.

    Working days are counted by `calendar.add_working_days`; calendar days keep the local
    time of day in the calendar's zone. The time part is then added as elapsed time.
    """
    if start.tzinfo is None or start.utcoffset() is None:
        raise ValueError(f"start must be timezone-aware, got naive {start.isoformat()}")
    if duration.working:
        moment = calendar.add_working_days(start, duration.days)
    else:
        local = start.astimezone(calendar.zone)
        moment = calendar.at_local_time(local.date() + timedelta(days=duration.days),
                                        local.time())
    return (moment + duration.rest).astimezone(UTC)


def describe_duration(duration: PlanDuration, language: str) -> str:
    """The duration as a reader says it: "3 arbejdsdage", "1 dag og 12 timer" (da),
    "3 working days", "1 day and 12 hours" (en)."""
    if language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}; expected one of {LANGUAGES}")
    return duration_words(duration.days, duration.rest, duration.working, language)


def describe_due_rule(duration: PlanDuration, after: str, language: str) -> str:
    """A step's deadline rule in words: "14 dage efter første fraværsdag" (da), "14 days
    after the first day of absence" (en)."""
    if language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}; expected one of {LANGUAGES}")
    return due_rule_words(duration.days, duration.rest, duration.working, after, language)
