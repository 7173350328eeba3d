"""`luk` / `close`: close the case, with the manager's reason if they gave one.

The word stands alone ("luk", "luk sagen", "close the case") or gives its reason after a
colon ("luk: mødet er holdt", "luk sagen: ..."); "Luk ikke sagen endnu" is prose.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from intake.commands.reply.command import Arguments, ReplyCommand
from notifier.case_actions import ActionResult, CaseActions
from storage.models import Case

_OBJECTS = frozenset({"sagen", "case", "the case"})


@dataclass(frozen=True)
class Close:
    """Close the case, with the manager's reason if they gave one."""

    reason: str | None = None
    language: str = "da"


def _read(arguments: Arguments) -> Close | None:
    if arguments.colon:
        return Close(reason=arguments.text or None, language=arguments.language)
    target, _, reason = arguments.text.partition(":")
    if " ".join(target.lower().split()) not in ("", *_OBJECTS):
        return None
    return Close(reason=reason.strip() or None, language=arguments.language)


def _act(actions: CaseActions, session: Session, case: Case, command: Close, *,
         actor: str, now: datetime) -> ActionResult:
    return actions.close(session, case, command.reason, actor=actor, now=now)


COMMAND = ReplyCommand(
    kind=Close,
    words={"da": ("luk",), "en": ("close",)},
    help={"da": ("luk: begrundelse", "lukker sagen; begrundelsen efter kolon kan udelades"),
          "en": ("close: reason", "closes the case; the reason after the colon is optional")},
    read=_read,
    act=_act,
)
