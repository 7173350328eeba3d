"""`ekstern` / `kollega` / `ukendt` (external, colleague, unknown): who the harasser is to
the employee. Each word stands alone on its line."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType

from sqlalchemy.orm import Session

from intake.commands.reply.command import Arguments, ReplyCommand, spoken
from notifier.case_actions import ActionResult, CaseActions
from storage.models import Case

# The word of each relation, per language, in the order the help mail lists them.
_WORDS: Mapping[str, Mapping[str, str]] = MappingProxyType({
    "da": {"external": "ekstern", "colleague": "kollega", "unknown": "ukendt"},
    "en": {"external": "external", "colleague": "colleague", "unknown": "unknown"},
})
_KINDS = {word: kind for words in _WORDS.values() for kind, word in words.items()}


@dataclass(frozen=True)
class Relation:
    """Who the harasser is to the employee: "external", "colleague" or "unknown"."""

    kind: str
    language: str = "da"


def _read(arguments: Arguments) -> Relation | None:
    if not arguments.alone:
        return None
    return Relation(_KINDS[arguments.word], arguments.language)


def _act(actions: CaseActions, session: Session, case: Case, command: Relation, *,
         actor: str, now: datetime) -> ActionResult:
    return actions.relation(session, case, command.kind, actor=actor, now=now)


def _name(command: Relation, language: str) -> str:
    return _WORDS[spoken(language)].get(command.kind, command.kind)


COMMAND = ReplyCommand(
    kind=Relation,
    words={language: tuple(words.values()) for language, words in _WORDS.items()},
    help={"da": ("ekstern / kollega / ukendt",
                 "noterer, om krænkeren er ekstern, kollega eller ukendt"),
          "en": ("external / colleague / unknown",
                 "records whether the harasser is external, a colleague or unknown")},
    read=_read,
    act=_act,
    naming=_name,
)
