"""Working days in Denmark and the plan's deadline lengths: holidays, closed days, DST."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import holidays
import pytest

from notifier import working_days
from notifier.durations import PlanDuration, add_duration, describe_duration, parse_duration
from notifier.working_days import WorkingCalendar

CPH = ZoneInfo("Europe/Copenhagen")


def local(year: int, month: int, day: int, hour: int = 10, minute: int = 0) -> datetime:
    """A Copenhagen wall-clock moment."""
    return datetime(year, month, day, hour, minute, tzinfo=CPH)


@pytest.fixture
def calendar() -> WorkingCalendar:
    return WorkingCalendar()


# --- which days are open ------------------------------------------------------------------


def test_default_zone_is_copenhagen(calendar: WorkingCalendar) -> None:
    assert str(calendar.zone) == "Europe/Copenhagen"


def test_weekdays_are_working_days_and_weekends_are_not(calendar: WorkingCalendar) -> None:
    assert calendar.is_working_day(date(2026, 11, 20))  # Friday
    assert not calendar.is_working_day(date(2026, 11, 21))  # Saturday
    assert not calendar.is_working_day(date(2026, 11, 22))  # Sunday
    assert calendar.is_working_day(date(2026, 11, 23))  # Monday


@pytest.mark.parametrize(
    ("day", "danish", "english"),
    [
        (date(2026, 4, 2), "Skærtorsdag", "Maundy Thursday"),
        (date(2026, 4, 3), "Langfredag", "Good Friday"),
        (date(2026, 4, 6), "Anden påskedag", "Easter Monday"),
        (date(2026, 5, 14), "Kristi himmelfartsdag", "Ascension Day"),
        (date(2026, 12, 25), "Juledag", "Christmas Day"),
        (date(2026, 12, 26), "Anden juledag", "Second Day of Christmas"),
        (date(2023, 5, 5), "Store bededag", "Great Prayer Day"),
    ],
)
def test_danish_public_holidays_are_closed_and_named(
    calendar: WorkingCalendar, day: date, danish: str, english: str
) -> None:
    assert not calendar.is_working_day(day)
    assert calendar.closed_reason(day) == danish
    assert calendar.closed_reason(day, "da") == danish
    assert calendar.closed_reason(day, "en") == english


def test_store_bededag_is_gone_from_2024(calendar: WorkingCalendar) -> None:
    # The fourth Friday after Easter: a holiday until 2023, a working day since.
    assert not calendar.is_working_day(date(2023, 5, 5))
    assert calendar.is_working_day(date(2024, 4, 26))
    assert calendar.closed_reason(date(2024, 4, 26)) is None


def test_christmas_eve_is_open_unless_the_admin_closes_it(calendar: WorkingCalendar) -> None:
    assert calendar.is_working_day(date(2026, 12, 24))  # not a public holiday


def test_weekend_reason_is_the_weekday_name(calendar: WorkingCalendar) -> None:
    assert calendar.closed_reason(date(2026, 11, 21)) == "lørdag"
    assert calendar.closed_reason(date(2026, 11, 22)) == "søndag"
    assert calendar.closed_reason(date(2026, 11, 21), "en") == "Saturday"
    assert calendar.closed_reason(date(2026, 11, 20)) is None
    assert calendar.closed_reason(date(2026, 11, 20), "en") is None


def test_a_holiday_on_a_weekend_is_named_by_the_holiday(calendar: WorkingCalendar) -> None:
    assert calendar.closed_reason(date(2026, 4, 5)) == "Påskedag"  # Easter Sunday


def test_unknown_language_is_refused(calendar: WorkingCalendar) -> None:
    with pytest.raises(ValueError, match="'de'"):
        calendar.closed_reason(date(2026, 11, 21), "de")


def test_a_datetime_is_not_taken_for_a_date(calendar: WorkingCalendar) -> None:
    with pytest.raises(TypeError, match="not a datetime"):
        calendar.is_working_day(datetime(2026, 11, 20, 23, 30, tzinfo=UTC))


@pytest.fixture
def holiday_lookups(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The years the `holidays` package is asked for, from an empty process-wide table."""
    real = holidays.country_holidays
    years: list[Any] = []

    def counting(*args: Any, **kwargs: Any) -> holidays.HolidayBase:
        years.append((kwargs["years"], kwargs["language"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(holidays, "country_holidays", counting)
    monkeypatch.setattr(working_days, "_HOLIDAYS", {})
    return years


def test_holidays_are_looked_up_once_per_year(holiday_lookups: list[Any]) -> None:
    calendar = WorkingCalendar()
    for offset in range(60):
        calendar.is_working_day(date(2026, 3, 1) + timedelta(days=offset))
    calendar.is_working_day(date(2027, 1, 4))
    assert holiday_lookups == [(2026, "da"), (2027, "da")]


def test_every_calendar_shares_the_holidays_built_once(holiday_lookups: list[Any]) -> None:
    """A calendar made later (another configuration, a plan check) builds no table again;
    each language of names is built once too."""
    first = WorkingCalendar()
    assert first.closed_reason(date(2026, 12, 25)) == "Juledag"
    assert first.closed_reason(date(2026, 12, 25), "en") == "Christmas Day"
    second = WorkingCalendar(extra_closed_days=["12-24"])
    assert second.add_working_days(local(2026, 12, 23), 1) == local(2026, 12, 28).astimezone(UTC)
    assert second.closed_reason(date(2026, 12, 26), "en") == "Second Day of Christmas"
    assert holiday_lookups == [(2026, "da"), (2026, "en_US")]


# --- the admin's extra closed days --------------------------------------------------------


def test_extra_closed_days_every_year_and_one_date() -> None:
    calendar = WorkingCalendar(extra_closed_days=["12-24", "12-31", "06-05", "2026-11-20"])
    for day in (date(2026, 12, 24), date(2027, 12, 24), date(2026, 12, 31), date(2030, 6, 5)):
        assert not calendar.is_working_day(day), day
    assert not calendar.is_working_day(date(2026, 11, 20))
    assert calendar.is_working_day(date(2027, 11, 19))  # the one date closes only that year
    assert calendar.closed_reason(date(2026, 12, 24)) == "lukkedag"
    assert calendar.closed_reason(date(2026, 12, 24), "en") == "closed day"


def test_extra_closed_days_move_deadlines() -> None:
    calendar = WorkingCalendar(extra_closed_days=["12-24", "12-31"])
    # Wednesday 23 December; 24 closed, 25 and 26 holidays, 27 Sunday.
    assert calendar.add_working_days(local(2026, 12, 23), 1) == local(2026, 12, 28)
    assert calendar.add_working_days(local(2026, 12, 23), 3) == local(2026, 12, 30)
    # 31 December closed, New Year's Day a holiday, then a weekend.
    assert calendar.add_working_days(local(2026, 12, 23), 4) == local(2027, 1, 4)


def test_february_29_is_a_valid_every_year_entry() -> None:
    calendar = WorkingCalendar(extra_closed_days=["02-29"])
    assert not calendar.is_working_day(date(2028, 2, 29))
    assert calendar.is_working_day(date(2028, 2, 28))


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("13-01", "not a real date"),
        ("02-30", "not a real date"),
        ("2026-02-29", "not a real date"),
        ("24-12", "not a real date"),
        ("12/24", "neither MM-DD"),
        ("1224", "neither MM-DD"),
        ("12-24 ", "neither MM-DD"),
        ("2026-1-5", "neither MM-DD"),
        ("", "neither MM-DD"),
    ],
)
def test_bad_extra_closed_day_is_named(entry: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as raised:
        WorkingCalendar(extra_closed_days=["12-31", entry])
    assert repr(entry) in str(raised.value)


def test_a_single_string_is_not_a_list_of_closed_days() -> None:
    with pytest.raises(ValueError, match="not one string"):
        WorkingCalendar(extra_closed_days="12-24")


def test_workday_start_must_be_wall_clock_time() -> None:
    with pytest.raises(ValueError, match="workday_start"):
        WorkingCalendar(workday_start=time(8, 0, tzinfo=UTC))


def test_closing_every_day_fails_instead_of_looping() -> None:
    every_day = [f"{day:%m-%d}" for day in (date(2028, 1, 1) + timedelta(n) for n in range(366))]
    calendar = WorkingCalendar(extra_closed_days=every_day)
    with pytest.raises(ValueError, match="no working day"):
        calendar.next_working_day(date(2026, 1, 1))


# --- counting working days ----------------------------------------------------------------


def test_next_working_day_is_strictly_after(calendar: WorkingCalendar) -> None:
    assert calendar.next_working_day(date(2026, 11, 19)) == date(2026, 11, 20)
    assert calendar.next_working_day(date(2026, 11, 20)) == date(2026, 11, 23)
    assert calendar.next_working_day(date(2026, 4, 1)) == date(2026, 4, 7)  # Easter


def test_friday_plus_one_is_monday_same_time(calendar: WorkingCalendar) -> None:
    result = calendar.add_working_days(local(2026, 11, 20, 14), 1)
    assert result == local(2026, 11, 23, 14)
    assert result.tzinfo is UTC


def test_ascension_day_is_skipped(calendar: WorkingCalendar) -> None:
    assert calendar.add_working_days(local(2026, 5, 13, 10), 1) == local(2026, 5, 15, 10)
    assert calendar.add_working_days(local(2026, 5, 13, 10), 2) == local(2026, 5, 18, 10)


def test_easter_is_skipped(calendar: WorkingCalendar) -> None:
    assert calendar.add_working_days(local(2026, 4, 1, 9, 30), 1) == local(2026, 4, 7, 9, 30)


def test_start_on_a_closed_day_moves_to_workday_start(calendar: WorkingCalendar) -> None:
    saturday = local(2026, 11, 21, 11)
    assert calendar.add_working_days(saturday, 0) == local(2026, 11, 23, 8)
    assert calendar.add_working_days(saturday, 1) == local(2026, 11, 24, 8)
    # Good Friday evening: the next working day is the Tuesday after Easter.
    assert calendar.add_working_days(local(2026, 4, 3, 20), 0) == local(2026, 4, 7, 8)


def test_zero_days_on_a_working_day_is_the_start(calendar: WorkingCalendar) -> None:
    start = local(2026, 11, 20, 14, 37)
    assert calendar.add_working_days(start, 0) == start


def test_the_day_is_the_local_day_not_the_utc_day(calendar: WorkingCalendar) -> None:
    # Friday 23:30 UTC is already Saturday 00:30 in Copenhagen.
    late = datetime(2026, 11, 20, 23, 30, tzinfo=UTC)
    assert calendar.add_working_days(late, 0) == local(2026, 11, 23, 8)


def test_workday_start_and_zone_can_be_chosen() -> None:
    calendar = WorkingCalendar(zone=UTC, workday_start=time(9, 30))
    saturday = datetime(2026, 11, 21, 11, tzinfo=UTC)
    assert calendar.add_working_days(saturday, 0) == datetime(2026, 11, 23, 9, 30, tzinfo=UTC)


def test_spring_forward_keeps_the_wall_clock(calendar: WorkingCalendar) -> None:
    # Summer time starts Sunday 29 March 2026: 10:00 is 09:00 UTC before, 08:00 UTC after.
    friday = local(2026, 3, 27, 10)
    assert friday.astimezone(UTC).hour == 9
    monday = calendar.add_working_days(friday, 1)
    assert monday == datetime(2026, 3, 30, 8, tzinfo=UTC)
    assert monday.astimezone(CPH).hour == 10


def test_fall_back_keeps_the_wall_clock(calendar: WorkingCalendar) -> None:
    # Summer time ends Sunday 25 October 2026: 10:00 is 08:00 UTC before, 09:00 UTC after.
    friday = local(2026, 10, 23, 10)
    assert friday.astimezone(UTC).hour == 8
    monday = calendar.add_working_days(friday, 1)
    assert monday == datetime(2026, 10, 26, 9, tzinfo=UTC)
    assert monday.astimezone(CPH).hour == 10


def test_start_on_the_dst_sunday_moves_to_monday_morning(calendar: WorkingCalendar) -> None:
    result = calendar.add_working_days(datetime(2026, 10, 25, 1, 30, tzinfo=UTC), 0)
    assert result == datetime(2026, 10, 26, 7, tzinfo=UTC)  # 08:00 CET


def test_naive_start_is_refused(calendar: WorkingCalendar) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        calendar.add_working_days(datetime(2026, 11, 20, 14), 1)


def test_negative_count_is_refused(calendar: WorkingCalendar) -> None:
    with pytest.raises(ValueError, match="0 or more"):
        calendar.add_working_days(local(2026, 11, 20), -1)
    with pytest.raises(ValueError, match="0 or more"):
        calendar.working_days_before(date(2026, 11, 20), -1)


def test_working_days_before(calendar: WorkingCalendar) -> None:
    monday = date(2026, 5, 18)
    assert calendar.working_days_before(monday, 0) == monday
    assert calendar.working_days_before(monday, 1) == date(2026, 5, 15)
    assert calendar.working_days_before(monday, 2) == date(2026, 5, 13)  # Ascension skipped
    assert calendar.working_days_before(date(2026, 4, 7), 1) == date(2026, 4, 1)  # Easter


def test_working_days_before_a_closed_day(calendar: WorkingCalendar) -> None:
    saturday = date(2026, 11, 21)
    assert calendar.working_days_before(saturday, 0) == date(2026, 11, 20)
    assert calendar.working_days_before(saturday, 1) == date(2026, 11, 19)
    assert calendar.working_days_before(date(2026, 4, 6), 0) == date(2026, 4, 1)


# --- parsing durations --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "days", "rest"),
    [
        ("P1D", 1, timedelta(0)),
        ("P0D", 0, timedelta(0)),
        ("P14D", 14, timedelta(0)),
        ("P2W", 14, timedelta(0)),
        ("PT4H", 0, timedelta(hours=4)),
        ("PT30M", 0, timedelta(minutes=30)),
        ("PT45S", 0, timedelta(seconds=45)),
        ("PT36H", 0, timedelta(hours=36)),
        ("P1DT12H", 1, timedelta(hours=12)),
        ("P1DT2H30M15S", 1, timedelta(hours=2, minutes=30, seconds=15)),
        ("PT1H30M", 0, timedelta(hours=1, minutes=30)),
    ],
)
def test_parse_accepts(text: str, days: int, rest: timedelta) -> None:
    assert parse_duration(text) == PlanDuration(text=text, days=days, rest=rest, working=False)


def test_a_working_week_is_five_days() -> None:
    assert parse_duration("P2W", working=True) == PlanDuration("P2W", 10, timedelta(0), True)
    assert parse_duration("P3D", working=True).days == 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("P1M", "months are ambiguous"),
        ("P1Y", "use days or weeks"),
        ("P1Y2D", "years and months"),
        ("-P1D", "negative"),
        ("P-1D", "negative"),
        ("P", "no amount"),
        ("PT", "no amount"),
        ("P1DT", "no amount"),
        ("P1.5D", "fractions"),
        ("PT1,5H", "fractions"),
        ("p1d", "capital letters"),
        ("P1dT4h", "capital letters"),
        ("", "empty"),
        (" P1D", "spaces"),
        ("P1W2D", "weeks cannot be combined"),
        ("1D", "ISO 8601"),
        ("P1H", "ISO 8601"),
        ("PT1H2D", "ISO 8601"),
        ("P\u0661D", "ISO 8601"),  # an Arabic-Indic one
        ("P99999999999999999999D", "longer than 3650 days"),
        ("PT99999999999999999999H", "longer than 3650 days"),
    ],
)
def test_parse_rejects_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as raised:
        parse_duration(text)
    assert repr(text) in str(raised.value)


# --- adding durations ---------------------------------------------------------------------


def test_add_working_duration(calendar: WorkingCalendar) -> None:
    friday = local(2026, 11, 20, 14)
    assert add_duration(calendar, friday, parse_duration("P1D", working=True)) == local(
        2026, 11, 23, 14
    )
    assert add_duration(
        calendar, local(2026, 5, 13, 10), parse_duration("P1DT12H", working=True)
    ) == local(2026, 5, 15, 22)
    assert add_duration(
        calendar, local(2026, 11, 16, 9), parse_duration("P1W", working=True)
    ) == local(2026, 11, 23, 9)


def test_add_working_hours_from_a_closed_day_start_at_workday_start(
    calendar: WorkingCalendar,
) -> None:
    saturday = local(2026, 11, 21, 11)
    result = add_duration(calendar, saturday, parse_duration("PT4H", working=True))
    assert result == local(2026, 11, 23, 12)
    assert result.tzinfo is UTC


def test_add_calendar_duration_ignores_closed_days(calendar: WorkingCalendar) -> None:
    saturday = local(2026, 11, 21, 11)
    assert add_duration(calendar, saturday, parse_duration("PT4H")) == local(2026, 11, 21, 15)
    assert add_duration(calendar, saturday, parse_duration("P14D")) == local(2026, 12, 5, 11)
    assert add_duration(calendar, saturday, parse_duration("P0D")) == saturday
    result = add_duration(calendar, saturday, parse_duration("P1DT12H"))
    assert result == local(2026, 11, 22, 23)
    assert result.tzinfo is UTC


def test_calendar_days_keep_the_wall_clock_across_dst(calendar: WorkingCalendar) -> None:
    saturday = local(2026, 3, 28, 12)  # 11:00 UTC, the day before summer time
    assert add_duration(calendar, saturday, parse_duration("P1D")) == local(2026, 3, 29, 12)
    assert add_duration(calendar, saturday, parse_duration("PT24H")) == local(2026, 3, 29, 13)


def test_add_duration_refuses_naive_start(calendar: WorkingCalendar) -> None:
    for working in (False, True):
        with pytest.raises(ValueError, match="timezone-aware"):
            add_duration(calendar, datetime(2026, 11, 20), parse_duration("P1D", working=working))


# --- describing durations -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "working", "danish", "english"),
    [
        ("P1D", True, "1 arbejdsdag", "1 working day"),
        ("P3D", True, "3 arbejdsdage", "3 working days"),
        ("P1W", True, "5 arbejdsdage", "5 working days"),
        ("P2W", False, "14 dage", "14 days"),
        ("P1D", False, "1 dag", "1 day"),
        ("PT1H", False, "1 time", "1 hour"),
        ("PT4H", False, "4 timer", "4 hours"),
        ("PT36H", False, "36 timer", "36 hours"),
        ("PT30M", False, "30 minutter", "30 minutes"),
        ("PT1M", False, "1 minut", "1 minute"),
        ("PT1S", False, "1 sekund", "1 second"),
        ("PT10S", False, "10 sekunder", "10 seconds"),
        ("P1DT12H", False, "1 dag og 12 timer", "1 day and 12 hours"),
        ("P1DT12H", True, "1 arbejdsdag og 12 timer", "1 working day and 12 hours"),
        ("PT2H30M", False, "2 timer og 30 minutter", "2 hours and 30 minutes"),
        ("P1DT2H30M", False, "1 dag, 2 timer og 30 minutter", "1 day, 2 hours and 30 minutes"),
        ("P0DT4H", False, "4 timer", "4 hours"),
        ("P0D", False, "0 dage", "0 days"),
        ("P0D", True, "0 arbejdsdage", "0 working days"),
    ],
)
def test_describe_duration(text: str, working: bool, danish: str, english: str) -> None:
    duration = parse_duration(text, working=working)
    assert describe_duration(duration, "da") == danish
    assert describe_duration(duration, "en") == english


def test_describe_refuses_unknown_language() -> None:
    with pytest.raises(ValueError, match="'sv'"):
        describe_duration(parse_duration("P1D"), "sv")
