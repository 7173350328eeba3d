"""`medie sms` / `medium sms`: where the harassment happened (mail, sms, social media or
other). At most three words follow the command word."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType

from sqlalchemy.orm import Session

from intake.commands.reply.command import (
    MAX_ARGUMENT_WORDS,
    Arguments,
    BadArgument,
    ReplyCommand,
)
from notifier.case_actions import ActionResult, CaseActions
from storage.models import Case

_VALUES: Mapping[str, str] = MappingProxyType({
    "mail": "mail", "e-mail": "mail", "email": "mail",
    "sms": "sms",
    "sociale medier": "social-media", "social media": "social-media",
    "social": "social-media", "social-media": "social-media",
    "andet": "other", "other": "other",
})


@dataclass(frozen=True)
class Medium:
    """Where the harassment happened: "mail", "sms", "social-media" or "other"."""

    kind: str
    language: str = "da"


def _read(arguments: Arguments) -> Medium | BadArgument | None:
    if len(arguments.text.split()) > MAX_ARGUMENT_WORDS:
        return None
    if arguments.alone:
        return BadArgument("missing-argument", "no medium given")
    value = _VALUES.get(arguments.text.lower())
    if value is None:
        return BadArgument("bad-value", "not mail, sms, social media or other")
    return Medium(kind=value, language=arguments.language)


def _act(actions: CaseActions, session: Session, case: Case, command: Medium, *,
         actor: str, now: datetime) -> ActionResult:
    return actions.medium(session, case, command.kind, actor=actor, now=now)


COMMAND = ReplyCommand(
    kind=Medium,
    words={"da": ("medie",), "en": ("medium",)},
    help={"da": ("medie sms",
                 "noterer, hvor chikanen skete: mail, sms, sociale medier eller andet"),
          "en": ("medium sms",
                 "records where the harassment happened: mail, sms, social media, other")},
    read=_read,
    act=_act,
)
