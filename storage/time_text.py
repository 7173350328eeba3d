"""Times, dates and durations as people read them, in their language and the workplace's zone.

The one place that writes a moment for a person: the mails (through
`notifier.templating`), the CLI's text output and the export's report. Dates and month
names come from Babel's CLDR data; JSON keeps ISO 8601 and never passes through here.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, tzinfo

from babel.dates import format_date, format_datetime

LANGUAGES = ("da", "en")

# Babel (CLDR) patterns. Long: "tirsdag 8. december 2026 kl. 08.00", "Tuesday 8 December
# 2026, 08:00". Short, for a table cell: "06.12 19:24" / "6 Dec 19:24", the year added
# when it is not this year's.
_LONG_DATE = {"da": "EEEE d. MMMM y", "en": "EEEE d MMMM y"}
_LONG_DATETIME = {"da": "EEEE d. MMMM y 'kl'. HH.mm", "en": "EEEE d MMMM y, HH:mm"}
# The export's report is read as evidence: its times keep the second. Full in the text
# ("tirsdag 8. december 2026 kl. 08.00.15 (CET)"), compact in the timeline's narrow column
# ("08.12.2026 08.00.15").
_EVIDENCE_DATETIME = {"da": "EEEE d. MMMM y 'kl'. HH.mm.ss", "en": "EEEE d MMMM y, HH:mm:ss"}
_EVIDENCE_COMPACT = {"da": "dd.MM.y HH.mm.ss", "en": "d MMM y HH:mm:ss"}
_SHORT_THIS_YEAR = {"da": "dd.MM HH:mm", "en": "d MMM HH:mm"}
_SHORT_OTHER_YEAR = {"da": "dd.MM.y HH:mm", "en": "d MMM y HH:mm"}

# (singular, plural) of each unit a plan duration is written in.
_UNITS = {
    "da": {
        "working_day": ("arbejdsdag", "arbejdsdage"),
        "day": ("dag", "dage"),
        "hour": ("time", "timer"),
        "minute": ("minut", "minutter"),
        "second": ("sekund", "sekunder"),
    },
    "en": {
        "working_day": ("working day", "working days"),
        "day": ("day", "days"),
        "hour": ("hour", "hours"),
        "minute": ("minute", "minutes"),
        "second": ("second", "seconds"),
    },
}
_AND = {"da": "og", "en": "and"}
# What a plan step's deadline counts from (`due_after`), after "efter" / "after".
_EVENTS = {
    "da": {"intake": "modtagelsen", "first_absence_day": "første fraværsdag"},
    "en": {"intake": "intake", "first_absence_day": "the first day of absence"},
}
_AFTER = {"da": "efter", "en": "after"}


def _checked(language: str) -> str:
    if language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}; expected one of {LANGUAGES}")
    return language


def _local(moment: datetime, zone: tzinfo) -> datetime:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # the store keeps naive UTC on SQLite
    return moment.astimezone(zone)


def zone_label(moment: datetime, zone: tzinfo) -> str:
    """The zone's abbreviation at that moment ("CET", "CEST"), or its UTC offset."""
    local = _local(moment, zone)
    return local.tzname() or local.strftime("UTC%z")


def long_datetime(moment: datetime, language: str, zone: tzinfo, *,
                  with_zone: bool = True) -> str:
    """The moment in full in the zone: "tirsdag 8. december 2026 kl. 08.00 (CET)" (da),
    "Tuesday 8 December 2026, 08:00 (CET)" (en); without the zone when asked."""
    local = _local(moment, zone)
    text = format_datetime(local, _LONG_DATETIME[_checked(language)], tzinfo=zone,
                           locale=language)
    return f"{text} ({zone_label(local, zone)})" if with_zone else text


def evidence_datetime(moment: datetime, language: str, zone: tzinfo, *,
                      compact: bool = False) -> str:
    """The moment to the second as the export's report writes it: "tirsdag 8. december 2026
    kl. 08.00.15 (CET)" (da), "Tuesday 8 December 2026, 08:00:15 (CET)" (en); compact for a
    table column: "08.12.2026 08.00.15 (CET)", "8 Dec 2026 08:00:15 (CET)"."""
    local = _local(moment, zone)
    patterns = _EVIDENCE_COMPACT if compact else _EVIDENCE_DATETIME
    text = format_datetime(local, patterns[_checked(language)], tzinfo=zone, locale=language)
    return f"{text} ({zone_label(local, zone)})"


def long_date(day: date, language: str) -> str:
    """A calendar day in full: "søndag 22. november 2026" (da), "Sunday 22 November 2026"
    (en)."""
    return format_date(day, _LONG_DATE[_checked(language)], locale=language)


def short_datetime(moment: datetime, language: str, zone: tzinfo, *,
                   now: datetime | None = None) -> str:
    """The moment for a table cell, in the zone: "06.12 19:24" (da), "6 Dec 19:24" (en), with
    the year ("06.12.2025 19:24") when it is not the current year."""
    local = _local(moment, zone)
    current = _local(now or datetime.now(UTC), zone)
    patterns = _SHORT_THIS_YEAR if local.year == current.year else _SHORT_OTHER_YEAR
    return format_datetime(local, patterns[_checked(language)], tzinfo=zone, locale=language)


def duration_words(days: int, rest: timedelta, working: bool, language: str) -> str:
    """A plan duration as a reader says it: "3 arbejdsdage", "1 dag og 12 timer" (da),
    "3 working days", "1 day and 12 hours" (en)."""
    units = _UNITS[_checked(language)]
    day_unit = units["working_day" if working else "day"]
    hours, remainder = divmod(int(rest.total_seconds()), 3600)
    minutes, seconds = divmod(remainder, 60)
    parts = [
        f"{count} {unit[0] if count == 1 else unit[1]}"
        for count, unit in ((days, day_unit), (hours, units["hour"]),
                            (minutes, units["minute"]), (seconds, units["second"]))
        if count
    ]
    if not parts:
        return f"0 {day_unit[1]}"
    if len(parts) == 1:
        return parts[0]
    return f"{', '.join(parts[:-1])} {_AND[language]} {parts[-1]}"


def due_rule_words(days: int, rest: timedelta, working: bool, after: str,
                   language: str) -> str:
    """A plan step's deadline rule in words: "14 dage efter første fraværsdag" (da),
    "14 days after the first day of absence" (en); an unknown event is named as coded."""
    event = _EVENTS[_checked(language)].get(after, after)
    return f"{duration_words(days, rest, working, language)} {_AFTER[language]} {event}"
