"""Times, dates and durations as people read them, in their language and the workplace's zone.

The one place that writes a moment for a person: the mails (through
`notifier.templating`), the CLI's text output and the export's report. Dates and month
names come from Babel's CLDR data; JSON keeps ISO 8601 and never passes through here.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, tzinfo

from babel.dates import format_date, format_datetime

from storage.i18n.catalogs import LANGUAGES as LANGUAGES  # re-exported for older callers
from storage.i18n.catalogs import check_language, translations

# The date patterns are Babel (CLDR) patterns kept in the catalogs, so a new language brings
# its own in its .po file. Long: "tirsdag 8. december 2026 kl. 08.00", "Tuesday 8 December
# 2026, 08:00". Short, for a table cell: "06.12 19:24" / "6 Dec 19:24", the year added when
# it is not this year's. The export's report is read as evidence, so its times keep the
# second: "tirsdag 8. december 2026 kl. 08.00.15", compact in the timeline's narrow column
# "08.12.2026 08.00.15". The msgid is the English pattern; each catalog gives its own,
# under the context "CLDR date pattern".


def _pattern(language: str, which: str) -> str:
    """The language's date pattern of one kind, from its catalog."""
    patterns = translations(check_language(language))
    return {
        "long_date": patterns.pgettext("CLDR date pattern", "EEEE d MMMM y"),
        "long_datetime": patterns.pgettext("CLDR date pattern", "EEEE d MMMM y, HH:mm"),
        "evidence": patterns.pgettext("CLDR date pattern", "EEEE d MMMM y, HH:mm:ss"),
        "evidence_compact": patterns.pgettext("CLDR date pattern", "d MMM y HH:mm:ss"),
        "short_this_year": patterns.pgettext("CLDR date pattern", "d MMM HH:mm"),
        "short_other_year": patterns.pgettext("CLDR date pattern", "d MMM y HH:mm"),
    }[which]


def _checked(language: str) -> str:
    try:
        return check_language(language)
    except ValueError:
        raise ValueError(f"unknown language {language!r}; expected one of {LANGUAGES}") from None


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
    text = format_datetime(local, _pattern(_checked(language), "long_datetime"), tzinfo=zone,
                           locale=language)
    return f"{text} ({zone_label(local, zone)})" if with_zone else text


def evidence_datetime(moment: datetime, language: str, zone: tzinfo, *,
                      compact: bool = False) -> str:
    """The moment to the second as the export's report writes it: "tirsdag 8. december 2026
    kl. 08.00.15 (CET)" (da), "Tuesday 8 December 2026, 08:00:15 (CET)" (en); compact for a
    table column: "08.12.2026 08.00.15 (CET)", "8 Dec 2026 08:00:15 (CET)"."""
    local = _local(moment, zone)
    pattern = _pattern(_checked(language), "evidence_compact" if compact else "evidence")
    text = format_datetime(local, pattern, tzinfo=zone, locale=language)
    return f"{text} ({zone_label(local, zone)})"


def long_date(day: date, language: str) -> str:
    """A calendar day in full: "søndag 22. november 2026" (da), "Sunday 22 November 2026"
    (en)."""
    return format_date(day, _pattern(_checked(language), "long_date"), locale=language)


def stored_day_words(value: object, language: str) -> object:
    """A day kept as ISO 8601 ("2026-12-01") as the reader writes it ("tirsdag 1. december
    2026"); anything else (none, a text that is no date) as it is."""
    try:
        return long_date(date.fromisoformat(str(value)), language)
    except ValueError:
        return value


def short_datetime(moment: datetime, language: str, zone: tzinfo, *,
                   now: datetime | None = None) -> str:
    """The moment for a table cell, in the zone: "06.12 19:24" (da), "6 Dec 19:24" (en), with
    the year ("06.12.2025 19:24") when it is not the current year."""
    local = _local(moment, zone)
    current = _local(now or datetime.now(UTC), zone)
    which = "short_this_year" if local.year == current.year else "short_other_year"
    return format_datetime(local, _pattern(_checked(language), which), tzinfo=zone,
                           locale=language)


def duration_words(days: int, rest: timedelta, working: bool, language: str) -> str:
    """A plan duration as a reader says it: "3 arbejdsdage", "1 dag og 12 timer" (da),
    "3 working days", "1 day and 12 hours" (en)."""
    words = translations(_checked(language))
    hours, remainder = divmod(int(rest.total_seconds()), 3600)
    minutes, seconds = divmod(remainder, 60)
    day_words = (words.ngettext("{n} working day", "{n} working days", days) if working
                 else words.ngettext("{n} day", "{n} days", days))
    parts = [
        text.format(n=count) for count, text in (
            (days, day_words),
            (hours, words.ngettext("{n} hour", "{n} hours", hours)),
            (minutes, words.ngettext("{n} minute", "{n} minutes", minutes)),
            (seconds, words.ngettext("{n} second", "{n} seconds", seconds)),
        ) if count
    ]
    if not parts:
        return day_words.format(n=0)
    if len(parts) == 1:
        return parts[0]
    return words.gettext("{first} and {last}").format(first=", ".join(parts[:-1]),
                                                      last=parts[-1])


def due_rule_words(days: int, rest: timedelta, working: bool, after: str,
                   language: str) -> str:
    """A plan step's deadline rule in words: "14 dage efter første fraværsdag" (da),
    "14 days after the first day of absence" (en); an unknown event is named as coded."""
    words = translations(_checked(language))
    # What a plan step's deadline counts from (`due_after`).
    events = {"intake": words.pgettext("deadline counts from", "intake"),
              "first_absence_day": words.pgettext("deadline counts from",
                                                  "the first day of absence")}
    return words.gettext("{duration} after {event}").format(
        duration=duration_words(days, rest, working, language),
        event=events.get(after, after))
