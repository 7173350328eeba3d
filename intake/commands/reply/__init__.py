"""The commands a manager writes at the top of a reply, one module each.

To add a command, write its module (a dataclass for the command as read, and a `COMMAND`:
see `command.py`) and name it here; the parser, the help mail and the confirmation follow.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from intake.commands.reply import (
    absence,
    acknowledge,
    close,
    help,
    medium,
    relation,
    step_done,
    witness,
)
from intake.commands.reply.command import Command, ReplyCommand

COMMANDS: tuple[ReplyCommand[Any], ...] = (
    acknowledge.COMMAND,
    step_done.COMMAND,
    absence.COMMAND,
    relation.COMMAND,
    medium.COMMAND,
    witness.COMMAND,
    close.COMMAND,
    help.COMMAND,
)
"""Every reply command, in the order the help mail lists them."""

_BY_KIND: Mapping[type[Any], ReplyCommand[Any]] = MappingProxyType(
    {command.kind: command for command in COMMANDS})


def declaration(command: Command) -> ReplyCommand[Any]:
    """The declaration (`COMMAND`) of the module a command as read comes from."""
    return _BY_KIND[type(command)]
