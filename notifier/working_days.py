"""Working days at a Danish workplace: the calendar the response plan's deadlines count in.

A working day is Monday to Friday, minus the Danish public holidays (the `holidays`
package, country DK, category public) and the days the admin closes on top of them
(`extra_closed_days`, e.g. Christmas Eve or Constitution Day).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta, tzinfo

import holidays
from babel.dates import format_date

from notifier.templating import LANGUAGES
from storage.i18n.catalogs import translations
from storage.ui_settings import UiSettings

# The `holidays` package's name for a language where it differs from ours; a language it
# does not know gets the holidays' Danish names.
_HOLIDAY_LANGUAGES = {"en": "en_US"}
_HOLIDAY_NAMES_KNOWN = {"da", "en_US", "th", "uk"}

_EVERY_YEAR = re.compile(r"(\d{2})-(\d{2})")
_ONE_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")

# An admin could close every day of the year; searching further than this means no working
# day will ever come, and saying so beats looping for ever.
_SEARCH_LIMIT = timedelta(days=400)

# (year, holidays language) -> that year's public holidays by date, shared by every
# calendar of the process: the `holidays` package takes milliseconds per country and year
# (its first use imports every country), and calendars are made per configuration and per
# plan check. The tables never change while the process runs.
_HOLIDAYS: dict[tuple[int, str], dict[date, str]] = {}
# Several threads (worker, scheduler, web) may ask for the same year at once: one builds it.
_HOLIDAYS_LOCK = threading.Lock()


class WorkingCalendar:
    """Monday to Friday minus Danish public holidays (the `holidays` package, country DK,
    public category) and the admin's extra closed days."""

    def __init__(
        self,
        *,
        extra_closed_days: Sequence[str] = (),
        zone: tzinfo | None = None,
        workday_start: time = time(8, 0),
    ) -> None:
        if isinstance(extra_closed_days, str):
            # A lone string would be read as a sequence of one-character entries.
            raise ValueError("extra_closed_days must be a list of entries, not one string")
        if workday_start.tzinfo is not None:
            raise ValueError("workday_start is a local wall-clock time; give it no time zone")
        # The workplace's zone ([ui] timezone); its default when none is given.
        self.zone: tzinfo = zone if zone is not None else UiSettings().zone
        self.workday_start = workday_start
        self._closed_every_year: set[tuple[int, int]] = set()
        self._closed_dates: set[date] = set()
        for entry in extra_closed_days:
            self._add_closed_day(entry)

    def _add_closed_day(self, entry: str) -> None:
        every_year = _EVERY_YEAR.fullmatch(entry)
        one_date = _ONE_DATE.fullmatch(entry)
        try:
            if every_year:
                month, day = int(every_year[1]), int(every_year[2])
                date(2000, month, day)  # a leap year, so that 02-29 is accepted
                self._closed_every_year.add((month, day))
                return
            if one_date:
                self._closed_dates.add(date(int(one_date[1]), int(one_date[2]), int(one_date[3])))
                return
        except ValueError:
            raise ValueError(f"extra closed day {entry!r} is not a real date") from None
        raise ValueError(
            f"extra closed day {entry!r} is neither MM-DD (every year) nor YYYY-MM-DD (one date)"
        )

    def is_working_day(self, day: date) -> bool:
        """Whether the workplace is open on this (local) date."""
        day = _plain_date(day)
        # closed_reason(day) is None, without naming the reason: deadlines ask this for
        # every day they count.
        return (day.weekday() < 5 and day not in _holidays_of(day.year, "da")
                and day not in self._closed_dates
                and (day.month, day.day) not in self._closed_every_year)

    def closed_reason(self, day: date, language: str = "da") -> str | None:
        """Why the workplace is closed on this date: the holiday's name, "lukkedag" /
        "closed day" for an admin's closed day, or the weekday's name; None on a working day.

        A holiday that falls on a weekend is named by the holiday.
        """
        day = _plain_date(day)
        if language not in LANGUAGES:
            raise ValueError(f"unknown language {language!r}; expected one of {LANGUAGES}")
        holiday = _holidays_of(day.year, language).get(day)
        if holiday is not None:
            return holiday
        if day in self._closed_dates or (day.month, day.day) in self._closed_every_year:
            return translations(language).pgettext("the workplace is closed", "closed day")
        if day.weekday() >= 5:
            return format_date(day, "EEEE", locale=language)  # CLDR's weekday name
        return None

    def next_working_day(self, day: date) -> date:
        """The first working day strictly after `day`."""
        return self._step(_plain_date(day), 1)

    def previous_working_day(self, day: date) -> date:
        """The last working day strictly before `day`."""
        return self._step(_plain_date(day), -1)

    def _step(self, day: date, direction: int) -> date:
        candidate = day
        while True:
            candidate += timedelta(days=direction)
            if self.is_working_day(candidate):
                return candidate
            if abs(candidate - day) > _SEARCH_LIMIT:
                raise ValueError(f"no working day within a year of {day.isoformat()}")

    def add_working_days(self, start: datetime, days: int) -> datetime:
        """The moment `days` working days after `start`, at the same local time of day, in UTC.

        A start on a closed day counts from the next working day at `workday_start`; with
        `days` 0 that moved start (or `start` itself, on a working day) is the answer.
        """
        _check_aware(start, "start")
        _check_count(days)
        local = start.astimezone(self.zone)
        day, time_of_day = local.date(), local.time()
        if not self.is_working_day(day):
            day, time_of_day = self.next_working_day(day), self.workday_start
        for _ in range(days):
            day = self.next_working_day(day)
        return self.at_local_time(day, time_of_day)

    def working_days_before(self, day: date, days: int) -> date:
        """The working day `days` working days before `day`.

        A closed `day` counts from the working day before it (the mirror of
        `add_working_days`), so `days` 0 gives `day` itself when it is a working day and
        the previous working day when it is not.
        """
        day = _plain_date(day)
        _check_count(days)
        if not self.is_working_day(day):
            day = self.previous_working_day(day)
        for _ in range(days):
            day = self.previous_working_day(day)
        return day

    def at_local_time(self, day: date, time_of_day: time) -> datetime:
        """The moment the workplace's clocks show `time_of_day` on `day`, in UTC."""
        return datetime.combine(_plain_date(day), time_of_day, tzinfo=self.zone).astimezone(UTC)


def _holidays_of(year: int, language: str) -> dict[date, str]:
    """The year's Danish public holidays by date, named in the language (Danish where the
    package has no names in it); built once per process."""
    named_in = _HOLIDAY_LANGUAGES.get(language, language)
    key = (year, named_in if named_in in _HOLIDAY_NAMES_KNOWN else "da")
    found = _HOLIDAYS.get(key)
    if found is not None:
        return found
    with _HOLIDAYS_LOCK:
        found = _HOLIDAYS.get(key)
        if found is None:
            table = holidays.country_holidays(
                "DK", years=year, language=key[1], categories=("public",)
            )
            # A plain copy: the package's object adds years to itself when asked about them.
            found = _HOLIDAYS[key] = dict(table.items())
    return found


def _plain_date(day: date) -> date:
    # A datetime is a date too, but its date may be UTC's rather than the workplace's.
    if isinstance(day, datetime):
        raise TypeError("pass a local date, not a datetime")
    return day


def _check_aware(moment: datetime, name: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {moment.isoformat()}")


def _check_count(days: int) -> None:
    if days < 0:
        raise ValueError(f"the number of working days must be 0 or more, got {days}")
