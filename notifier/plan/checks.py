"""Checks of the [plan] table that its types cannot express; each names the bad key."""

from __future__ import annotations

import re
from datetime import time

from notifier.durations import parse_duration
from notifier.plan.settings import PlanSettings
from notifier.working_days import WorkingCalendar
from storage.errors import SettingsError

_STEP_KEY = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_ADDRESS = re.compile(r"[^@\s<>]+@[^@\s<>]+")
_CLOCK = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")
_OWNER_ADDRESS_KEYS = {"safety_rep": "plan.safety_rep", "hr": "plan.hr"}


def parse_clock(text: str) -> time:
    """`HH:MM` (24-hour) as a time of day; ValueError when it is not one."""
    match = _CLOCK.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a time of day written HH:MM (e.g. 08:00)")
    return time(int(match.group(1)), int(match.group(2)))


def check_plan(plan: PlanSettings, source: str) -> None:
    """Raise SettingsError for the first mistake in the plan settings read from `source`."""
    if not plan.steps:
        raise SettingsError(source, "plan.steps", "the plan needs at least one step")
    seen: set[str] = set()
    for number, step in enumerate(plan.steps, start=1):
        key = f"plan.steps[{number}]"
        if not _STEP_KEY.fullmatch(step.key):
            raise SettingsError(source, f"{key}.key", f"{step.key!r} must be lower-case "
                                "letters, digits and '-' (e.g. first-aid)")
        if step.key in seen:
            raise SettingsError(source, f"{key}.key", f"{step.key!r} is used by an earlier step")
        seen.add(step.key)
        for language in ("da", "en"):
            if not getattr(step.title, language).strip():
                raise SettingsError(source, f"{key}.title.{language}", "must not be empty")
        if step.due:
            try:
                duration = parse_duration(step.due, working=step.working_days)
            except ValueError as error:
                raise SettingsError(source, f"{key}.due", str(error)) from None
            if step.due_after != "intake" and duration.rest:
                raise SettingsError(source, f"{key}.due", "a deadline counted from a day is "
                                    f"whole days (e.g. P14D), not {step.due!r}")
        elif step.due_after != "intake":
            raise SettingsError(source, f"{key}.due",
                                f"needed when due_after is {step.due_after!r}")
        owner_key = _OWNER_ADDRESS_KEYS.get(step.owner)
        if owner_key and not getattr(plan, step.owner):
            raise SettingsError(source, owner_key, f"needed: {key} ({step.key}) is owned by "
                                f"{step.owner}")
    try:
        parse_duration(plan.acknowledge_within, working=plan.acknowledge_in_working_days)
    except ValueError as error:
        raise SettingsError(source, "plan.acknowledge_within", str(error)) from None
    for days in plan.remind_before_working_days:
        if not 0 <= days <= 60:
            raise SettingsError(source, "plan.remind_before_working_days",
                                f"each must be between 0 and 60 (got {days})")
    for name in ("reminder_time", "digest_time"):
        try:
            parse_clock(getattr(plan, name))
        except ValueError as error:
            raise SettingsError(source, f"plan.{name}", str(error)) from None
    for name in ("safety_rep", "hr"):
        value = getattr(plan, name)
        if value and not _ADDRESS.fullmatch(value):
            raise SettingsError(source, f"plan.{name}", f"{value!r} is not a mail address")
    for address in plan.admins:
        if not _ADDRESS.fullmatch(address):
            raise SettingsError(source, "plan.admins", f"{address!r} is not a mail address")
    try:
        WorkingCalendar(extra_closed_days=plan.extra_closed_days)
    except ValueError as error:
        raise SettingsError(source, "plan.extra_closed_days", str(error)) from None
    if plan.tick_seconds <= 0:
        raise SettingsError(source, "plan.tick_seconds", "must be greater than 0")
    if plan.pattern_window_days < 1:
        raise SettingsError(source, "plan.pattern_window_days", "must be at least 1")
    if not 0 <= plan.image_match_distance <= 32:
        raise SettingsError(source, "plan.image_match_distance", "must be between 0 and 32")
