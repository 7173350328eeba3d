"""`hjælp` / `help`: the manager asks for the list of commands; the confirmation lists them."""

from __future__ import annotations

from dataclasses import dataclass

from intake.commands.reply.command import Arguments, ReplyCommand


@dataclass(frozen=True)
class Help:
    """The manager asks for the list of commands."""

    language: str = "da"


def _read(arguments: Arguments) -> Help | None:
    return Help(arguments.language) if arguments.alone else None


COMMAND = ReplyCommand(
    kind=Help,
    words={"da": ("hjælp",), "en": ("help",)},
    spellings={"da": ("hjaelp", "kommandoer"), "en": ("commands",)},
    help={"da": ("hjælp", "sender denne liste over kommandoer"),
          "en": ("help", "sends this list of commands")},
    read=_read,
    shows_help=True,
)
