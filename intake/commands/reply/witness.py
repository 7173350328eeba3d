"""`vidne Peter Jensen, lærer` / `witness ...`: a witness to add to the case.

The text comes after a colon (any length), or after a space when it is at most eight words;
a longer line without a colon is prose.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from intake.commands.reply.command import Arguments, BadArgument, ReplyCommand
from notifier.case_actions import ActionResult, CaseActions
from storage.models import Case

_MAX_WORDS = 8


@dataclass(frozen=True)
class Witness:
    """A witness to add to the case, as the manager described them."""

    text: str
    language: str = "da"


def _read(arguments: Arguments) -> Witness | BadArgument | None:
    if not arguments.colon and len(arguments.text.split()) > _MAX_WORDS:
        return None
    if arguments.alone:
        return BadArgument("missing-argument", "no witness given")
    return Witness(text=arguments.text, language=arguments.language)


def _act(actions: CaseActions, session: Session, case: Case, command: Witness, *,
         actor: str, now: datetime) -> ActionResult:
    return actions.witness(session, case, command.text, actor=actor, now=now)


COMMAND = ReplyCommand(
    kind=Witness,
    words={"da": ("vidne",), "en": ("witness",)},
    help={"da": ("vidne Peter Jensen, lærer", "tilføjer et vidne til sagen"),
          "en": ("witness Peter Jensen, teacher", "adds a witness to the case")},
    read=_read,
    act=_act,
)
