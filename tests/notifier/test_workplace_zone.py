"""`[ui] timezone`: plan deadlines count in the configured zone, across a change of summer
time, and the time a person reads is written in that zone."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from intake.service.config import load_config
from notifier.plan.checklist import AFTER_FIRST_ABSENCE_DAY, AFTER_INTAKE, calendar_for, step_due_at
from notifier.templating import local_time
from storage.errors import SettingsError
from storage.forwarded_original import ForwardedOriginal
from storage.models import CaseStep
from storage.time_text import long_datetime, short_datetime


def config_with(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(body, encoding="utf-8")
    return path


def easy_step() -> CaseStep:
    """The EASY report: 14 calendar days after the first day of absence."""
    return CaseStep(key="registration", due="P14D", working_days=False,
                    due_after=AFTER_FIRST_ABSENCE_DAY)


@pytest.mark.parametrize("timezone", ["Europe/Copenhagen", "Europe/Oslo"])
def test_easy_deadline_across_the_end_of_summer_time(tmp_path: Path, timezone: str) -> None:
    config = load_config(config_with(tmp_path, f'[ui]\ntimezone = "{timezone}"\n'))
    calendar = calendar_for(config.plan, config.ui.zone)
    # Absent from Sunday 11 October (summer time, +02:00); 14 days later is Sunday 25
    # October 2026, the last Sunday of October, when the clocks go back to +01:00.
    due = step_due_at(easy_step(), opened_at=datetime(2026, 10, 9, 8, 0, tzinfo=UTC),
                      first_absence_day=date(2026, 10, 11), calendar=calendar)
    assert due == datetime(2026, 10, 25, 22, 59, 59, tzinfo=UTC)  # 23:59:59 winter time
    assert due is not None
    assert long_datetime(due, "da", config.ui.zone) == \
        "søndag 25. oktober 2026 kl. 23.59 (CET)"
    assert long_datetime(due, "en", config.ui.zone) == "Sunday 25 October 2026, 23:59 (CET)"
    assert short_datetime(due, "da", config.ui.zone, now=due) == "25.10 23:59"
    # The mails write it the same way as the CLI.
    assert local_time(due, "da", config.ui.zone) == long_datetime(due, "da", config.ui.zone)


@pytest.mark.parametrize("timezone", ["Europe/Copenhagen", "Europe/Oslo"])
def test_intake_deadline_keeps_the_wall_clock_across_the_change(tmp_path: Path,
                                                                timezone: str) -> None:
    config = load_config(config_with(tmp_path, f'[ui]\ntimezone = "{timezone}"\n'))
    step = CaseStep(key="follow-up", due="P14D", working_days=False, due_after=AFTER_INTAKE)
    opened = datetime(2026, 10, 20, 8, 0, tzinfo=UTC)  # Tuesday 10.00 summer time
    due = step_due_at(step, opened_at=opened, first_absence_day=None,
                      calendar=calendar_for(config.plan, config.ui.zone))
    assert due == datetime(2026, 11, 3, 9, 0, tzinfo=UTC)  # Tuesday 10.00 winter time
    assert due is not None
    assert long_datetime(due, "da", config.ui.zone) == "tirsdag 3. november 2026 kl. 10.00 (CET)"


def test_another_zone_moves_the_deadline(tmp_path: Path) -> None:
    config = load_config(config_with(tmp_path, '[ui]\ntimezone = "Atlantic/Reykjavik"\n'))
    due = step_due_at(easy_step(), opened_at=datetime(2026, 10, 9, 8, 0, tzinfo=UTC),
                      first_absence_day=date(2026, 10, 11),
                      calendar=calendar_for(config.plan, config.ui.zone))
    assert due == datetime(2026, 10, 25, 23, 59, 59, tzinfo=UTC)  # Iceland keeps UTC


def test_the_default_zone_is_copenhagen() -> None:
    assert load_config(None).ui.timezone == "Europe/Copenhagen"


@pytest.mark.parametrize("value", ["Europe/Copenhagn", "", "../etc/passwd"])
def test_an_unknown_zone_is_a_configuration_error(tmp_path: Path, value: str) -> None:
    path = config_with(tmp_path, f'[ui]\ntimezone = "{value}"\n')
    with pytest.raises(SettingsError) as raised:
        load_config(path)
    assert raised.value.key == "ui.timezone"
    assert str(path) in str(raised.value)


def test_a_forward_without_a_zone_is_read_in_the_configured_zone() -> None:
    original = ForwardedOriginal(rule="outlook-da", date=datetime(2026, 11, 19, 21, 14),
                                 date_raw="19. november 2026 21:14")
    assert original.stored_date(ZoneInfo("Europe/Oslo")) == (
        datetime(2026, 11, 19, 20, 14, tzinfo=UTC), True)
    assert original.stored_date(ZoneInfo("Atlantic/Reykjavik")) == (
        datetime(2026, 11, 19, 21, 14, tzinfo=UTC), True)
    # 02:30 on the last Sunday of October happens twice in Oslo: kept as text only.
    repeated = ForwardedOriginal(rule="outlook-da", date=datetime(2026, 10, 25, 2, 30))
    assert repeated.stored_date(ZoneInfo("Europe/Oslo")) == (None, False)
