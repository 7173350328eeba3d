"""`fravær D` / `første fraværsdag D` / `absence D` / `first absence D`: the employee's first
day of absence, which starts the EASY deadline.

D is 2026-11-22, 22-11-2026, 22.11.2026, 22/11/2026 (also with a two-digit year), 22.11 or
22/11 (the year of today, or the year before if that lands more than 31 days ahead), "i dag",
"today", "i går", "igår" or "yesterday". At most three words follow the command word.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy.orm import Session

from intake.commands.reply.command import (
    MAX_ARGUMENT_WORDS,
    Arguments,
    BadArgument,
    ReplyCommand,
)
from notifier.case_actions import ActionResult, CaseActions
from storage.models import Case

_TODAY_WORDS = frozenset({"i dag", "idag", "today"})
_YESTERDAY_WORDS = frozenset({"i går", "igår", "i gaar", "igaar", "yesterday"})
_FUTURE_DAYS = 31
_YMD = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})")
_DMY = re.compile(r"(\d{1,2})([-./])(\d{1,2})\2(\d{4}|\d{2})")
_DM = re.compile(r"(\d{1,2})[./](\d{1,2})")


@dataclass(frozen=True)
class Absence:
    """The employee's first day of absence."""

    day: date
    language: str = "da"


def _read(arguments: Arguments) -> Absence | BadArgument | None:
    if len(arguments.text.split()) > MAX_ARGUMENT_WORDS:
        return None
    if arguments.alone:
        return BadArgument("missing-argument", "no date given")
    day = _parse_day(arguments.text.lower(), arguments.today)
    if isinstance(day, str):
        return BadArgument("bad-date", day)
    return Absence(day=day, language=arguments.language)


def _act(actions: CaseActions, session: Session, case: Case, command: Absence, *,
         actor: str, now: datetime) -> ActionResult:
    return actions.absence(session, case, command.day, actor=actor, now=now)


def _parse_day(text: str, today: date) -> date | str:
    """The day a manager wrote (in lower case), or a short English reason why it is not one."""
    words = " ".join(text.split())
    if words in _TODAY_WORDS:
        return today
    if words in _YESTERDAY_WORDS:
        return today - timedelta(days=1)
    if match := _YMD.fullmatch(words):
        year, month, day = (int(part) for part in match.groups())
        return _make_day(year, month, day)
    if match := _DMY.fullmatch(words):
        day, month = int(match.group(1)), int(match.group(3))
        year_text = match.group(4)
        year = int(year_text) + (2000 if len(year_text) == 2 else 0)
        return _make_day(year, month, day)
    if match := _DM.fullmatch(words):
        day, month = int(match.group(1)), int(match.group(2))
        this_year = _make_day(today.year, month, day)
        if isinstance(this_year, date) and (this_year - today).days > _FUTURE_DAYS:
            return _make_day(today.year - 1, month, day)
        return this_year
    return "not a date"


def _make_day(year: int, month: int, day: int) -> date | str:
    try:
        return date(year, month, day)
    except ValueError:
        return "no such date"


COMMAND = ReplyCommand(
    kind=Absence,
    words={"da": ("fravær", "første fraværsdag"), "en": ("absence", "first absence")},
    spellings={"da": ("fravaer", "første fravaersdag", "første fravær", "første fravaer",
                      "foerste fraværsdag", "foerste fravaersdag", "foerste fravær",
                      "foerste fravaer")},
    help={"da": ("fravær 22.11.2026",
                 "noterer første fraværsdag (også: fravær i dag, fravær i går)"),
          "en": ("absence 2026-11-22",
                 "records the first day of absence (also: today, yesterday)")},
    read=_read,
    act=_act,
)
