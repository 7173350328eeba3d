"""`storage.time_text`: moments, dates and plan durations as people read them, in Danish
and English, in the zone given."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from storage.time_text import (
    due_rule_words,
    duration_words,
    long_date,
    long_datetime,
    short_datetime,
)

COPENHAGEN = ZoneInfo("Europe/Copenhagen")
MOMENT = datetime(2026, 12, 8, 7, 0, tzinfo=UTC)  # 08.00 in Copenhagen (winter time)


def test_long_forms() -> None:
    assert long_datetime(MOMENT, "da", COPENHAGEN) == "tirsdag 8. december 2026 kl. 08.00 (CET)"
    assert long_datetime(MOMENT, "en", COPENHAGEN) == "Tuesday 8 December 2026, 08:00 (CET)"
    assert long_datetime(MOMENT, "da", COPENHAGEN, with_zone=False) == \
        "tirsdag 8. december 2026 kl. 08.00"
    summer = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
    assert long_datetime(summer, "da", COPENHAGEN).endswith("kl. 12.00 (CEST)")
    assert long_date(date(2026, 11, 22), "da") == "søndag 22. november 2026"
    assert long_date(date(2026, 11, 22), "en") == "Sunday 22 November 2026"


def test_short_form_for_table_cells_adds_the_year_only_when_it_differs() -> None:
    evening = datetime(2026, 12, 6, 18, 24, tzinfo=UTC)
    assert short_datetime(evening, "da", COPENHAGEN, now=MOMENT) == "06.12 19:24"
    assert short_datetime(evening, "en", COPENHAGEN, now=MOMENT) == "6 Dec 19:24"
    next_year = MOMENT + timedelta(days=60)
    assert short_datetime(evening, "da", COPENHAGEN, now=next_year) == "06.12.2026 19:24"
    assert short_datetime(evening.replace(tzinfo=None), "da", COPENHAGEN, now=MOMENT) == \
        "06.12 19:24"  # naive values from SQLite are UTC


@pytest.mark.parametrize(("days", "rest", "working", "danish", "english"), [
    (14, timedelta(0), False, "14 dage", "14 days"),
    (1, timedelta(0), True, "1 arbejdsdag", "1 working day"),
    (1, timedelta(hours=12), False, "1 dag og 12 timer", "1 day and 12 hours"),
])
def test_durations_in_words(days: int, rest: timedelta, working: bool, danish: str,
                            english: str) -> None:
    assert duration_words(days, rest, working, "da") == danish
    assert duration_words(days, rest, working, "en") == english


def test_due_rules_in_words() -> None:
    assert due_rule_words(14, timedelta(0), False, "first_absence_day", "da") == \
        "14 dage efter første fraværsdag"
    assert due_rule_words(14, timedelta(0), False, "first_absence_day", "en") == \
        "14 days after the first day of absence"
    assert due_rule_words(3, timedelta(0), True, "intake", "en") == "3 working days after intake"
    with pytest.raises(ValueError):
        long_datetime(MOMENT, "sv", COPENHAGEN)
