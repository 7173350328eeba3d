"""What a reply command declares: its words and help line in each language, how it reads
the rest of its line, and what it does to the case.

Each command is one module beside this one with a `COMMAND`; `intake.commands.reply.COMMANDS`
lists them in the order the help mail shows them, and the parser is built from that list.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Generic, Protocol, TypeAlias, TypeVar

from sqlalchemy.orm import Session

from notifier.case_actions import ActionResult, CaseActions
from notifier.templating import LANGUAGES
from storage.models import Case

# Commands with a short argument (trin, fravær, medie) take at most this many words after
# the command word; a longer line is prose.
MAX_ARGUMENT_WORDS = 3
# A command word: letters, one space between words (as the parser splits a line).
_WORD = re.compile(r"[^\W\d_]+(?: [^\W\d_]+)*")


class Command(Protocol):
    """A command as read from a reply: each kind is a frozen dataclass in its own module."""

    @property
    def language(self) -> str:
        """The language of the word the manager wrote: "da" or "en"."""
        ...


C = TypeVar("C", bound=Command)
C_contra = TypeVar("C_contra", bound=Command, contravariant=True)


@dataclass(frozen=True)
class Arguments:
    """What follows a command word on its line, and what the command needs to read it."""

    word: str  # the command word as matched, in lower case ("første fraværsdag" for two)
    text: str  # the rest of the line, without a leading ":", stripped
    colon: bool  # whether a ":" followed the command word
    language: str  # of the command word
    today: date  # the day the reply is read, for "i dag" and dates without a year

    @property
    def alone(self) -> bool:
        """Whether the command word stands alone on its line (a bare ":" after it allowed)."""
        return not self.text


@dataclass(frozen=True)
class BadArgument:
    """A line in a command's shape whose arguments do not make the command."""

    code: str  # "bad-date", "missing-argument" or "bad-value": the mails explain each
    reason: str  # short, English, for logs and tests


class Action(Protocol[C_contra]):
    """What a command does to a case: one of the case actions, in the caller's transaction."""

    def __call__(self, actions: CaseActions, session: Session, case: Case, command: C_contra,
                 *, actor: str, now: datetime) -> ActionResult:
        """Run the command on the case as `actor` at `now`; how it went."""
        ...


Reader: TypeAlias = Callable[[Arguments], C | BadArgument | None]


@dataclass(frozen=True)
class ReplyCommand(Generic[C]):
    """One reply command, as its module declares it.

    `words` are the words a manager is told, per language ("da", "en"), the first one being
    how the command is named; `spellings` are further words read as the same command
    (without accents, synonyms). A word may be two words ("første fraværsdag"). `help` is
    the (syntax, explanation) line of the help mail, per language. `read` turns the rest of
    the line into the command, a `BadArgument`, or None when the line is prose after all.
    `act` is what the command does to the case; None for a command that changes nothing.
    """

    kind: type[C]
    words: Mapping[str, tuple[str, ...]]
    help: Mapping[str, tuple[str, str]]
    read: Reader[C]
    act: Action[C] | None = None
    spellings: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # How a warning names one command ("trin 2 udført"); the first word if not given.
    naming: Callable[[C, str], str] | None = None
    # The command acknowledges the case itself: the reply does not acknowledge it besides.
    acknowledges: bool = False
    # The command asks for the list of commands in the confirmation.
    shows_help: bool = False

    def __post_init__(self) -> None:
        for name, table in (("words", self.words), ("help", self.help)):
            if set(table) != set(LANGUAGES):
                raise ValueError(f"{self.kind.__name__}: {name} must be given for exactly "
                                 f"{', '.join(LANGUAGES)}")
        if not set(self.spellings) <= set(LANGUAGES):
            raise ValueError(f"{self.kind.__name__}: spellings of an unknown language")
        for language in LANGUAGES:
            if not self.words[language]:
                raise ValueError(f"{self.kind.__name__}: no {language} word")
            for word in self.all_words(language):
                if not _WORD.fullmatch(word) or word != unicodedata.normalize("NFC", word.lower()):
                    raise ValueError(f"{self.kind.__name__}: {word!r} is not a command word "
                                     "(lower-case letters, one space between words)")

    def all_words(self, language: str) -> tuple[str, ...]:
        """Every word read as this command in `language`: the listed words, then spellings."""
        return self.words[language] + self.spellings.get(language, ())

    def name_in(self, command: C, language: str) -> str:
        """The command as a person writes it in `language` (Danish unless "en"), without
        its argument unless `naming` says otherwise: what a warning may name without
        quoting a mail."""
        if self.naming is not None:
            return self.naming(command, language)
        return self.words[spoken(language)][0]


def spoken(language: str) -> str:
    """`language` if the commands are written in it, else Danish."""
    return language if language in LANGUAGES else "da"

