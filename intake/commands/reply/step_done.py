"""`trin 2 udført` / `step 2 done`: a step of the response plan is done.

The step is its number or key; after it comes one word for done (udført, færdig, ok, done,
complete, ...), optionally after "er"/"is". At most three words follow the command word.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from intake.commands.reply.command import (
    MAX_ARGUMENT_WORDS,
    Arguments,
    BadArgument,
    ReplyCommand,
    spoken,
)
from notifier.case_actions import ActionResult, CaseActions
from storage.models import Case

_DONE_WORDS = frozenset({
    "udført", "udfoert", "udfort", "færdig", "faerdig", "ok", "done", "complete", "completed",
})
_DONE_FILLERS = frozenset({"er", "is"})
_STEP_TOKEN = re.compile(r"[0-9a-zæøå][0-9a-zæøå_-]{0,39}")


@dataclass(frozen=True)
class StepDone:
    """A step of the response plan is done; step is the number or key as written."""

    step: str
    language: str = "da"


def _read(arguments: Arguments) -> StepDone | BadArgument | None:
    words = [word.strip(":.") for word in arguments.text.lower().split()]
    if len(words) > MAX_ARGUMENT_WORDS:
        return None
    if not words:
        return BadArgument("missing-argument", "no step given")
    step, rest = words[0], [word for word in words[1:] if word not in _DONE_FILLERS]
    if not _STEP_TOKEN.fullmatch(step):
        return BadArgument("bad-value", "not a step number or key")
    if not rest:
        return BadArgument("missing-argument", "no 'done' after the step")
    if len(rest) > 1 or rest[0] not in _DONE_WORDS:
        return BadArgument("bad-value", "a step can only be marked done")
    return StepDone(step=step, language=arguments.language)


def _act(actions: CaseActions, session: Session, case: Case, command: StepDone, *,
         actor: str, now: datetime) -> ActionResult:
    return actions.step_done(session, case, command.step, actor=actor, now=now)


# The word for done a person is shown (every word of _DONE_WORDS is read).
_DONE_SHOWN = {"da": "udført", "en": "done"}


def _name(command: StepDone, language: str) -> str:
    spoken_in = spoken(language)
    return f"{COMMAND.words[spoken_in][0]} {command.step} {_DONE_SHOWN[spoken_in]}"


COMMAND = ReplyCommand(
    kind=StepDone,
    words={"da": ("trin",), "en": ("step",)},
    help={"da": ("trin 2 udført", "markerer trin 2 i beredskabsplanen som udført"),
          "en": ("step 2 done", "marks step 2 of the response plan as done")},
    read=_read,
    act=_act,
    naming=_name,
)
