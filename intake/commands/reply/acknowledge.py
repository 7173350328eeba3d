"""`kvitter` / `ack`: the manager has seen the case and takes it on (stops escalation)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from intake.commands.reply.command import Arguments, ReplyCommand
from notifier.case_actions import ActionResult, CaseActions
from storage.models import Case


@dataclass(frozen=True)
class Acknowledge:
    """The manager has seen the case and takes it on."""

    language: str = "da"


def _read(arguments: Arguments) -> Acknowledge | None:
    return Acknowledge(arguments.language) if arguments.alone else None


def _act(actions: CaseActions, session: Session, case: Case, command: Acknowledge, *,
         actor: str, now: datetime) -> ActionResult:
    return actions.acknowledge(session, case, actor=actor, now=now)


COMMAND = ReplyCommand(
    kind=Acknowledge,
    words={"da": ("kvitter",), "en": ("ack",)},
    spellings={"da": ("kvittér",), "en": ("acknowledge",)},
    help={"da": ("kvitter", "bekræfter, at du har set sagen og tager dig af den"),
          "en": ("ack", "confirms that you have seen the case and are handling it")},
    read=_read,
    act=_act,
    acknowledges=True,
)
