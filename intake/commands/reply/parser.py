"""The commands at the top of a reply, read with the words of `COMMANDS`.

`parse_reply` first keeps only what the manager wrote (`new_text_of_reply`), then reads
command lines from the top, in Danish or English, case-insensitively. A line is a command
when it starts with a command word (or two, as "første fraværsdag") and the command reads
the rest of it (each command's module says what it takes). A command line may carry
surrounding "*" or "_" (bold and italics from HTML), a trailing "." or "!", no-break spaces,
and a ":" after the command word. Blank lines between command lines are allowed; the first
other line ends the commands, and it and everything after it is the note.

Prose often begins with a command word ("Luk ikke sagen endnu, ..."), so a line counts as a
command only in the command's own shape; any other line is the note:

- commands without an argument (kvitter, ekstern, hjælp, ...) stand alone on their line;
- a short line in a command's shape whose arguments do not parse is an `UnknownCommand`
  ("fravær 30.02.2026": bad-date; "fravær": missing-argument);
- no line over 80 characters is a command;
- a line of one word that is not a command word but close to one ("lukk", "kviter") is an
  `UnknownCommand` with code "unknown-word", so that a typo is answered rather than filed
  as a note.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from types import MappingProxyType
from typing import Any, TypeAlias

from intake.commands.reply import COMMANDS, declaration
from intake.commands.reply.acknowledge import Acknowledge
from intake.commands.reply.command import (
    Arguments,
    BadArgument,
    Command,
    ReplyCommand,
    spoken,
)
from intake.commands.reply.step_done import StepDone
from intake.parse.reply_text import ODD_CHARACTERS, new_text_of_reply
from notifier.plan.mails import ReplyLines
from notifier.templating import LANGUAGES


@dataclass(frozen=True)
class UnknownCommand:
    """A line that looks like a command but cannot be carried out."""

    line: str  # as written (stripped)
    reason: str | None  # short, English, for logs and tests; callers localise by code
    code: str  # "unknown-word", "bad-date", "missing-argument" or "bad-value"


@dataclass(frozen=True)
class ParsedReply:
    """The commands at the top of a reply, the lines that failed, and the note below them."""

    commands: tuple[Command, ...]
    unknown: tuple[UnknownCommand, ...]
    note: str
    language: str | None  # of the first command; of the first failed one if none worked


# -- the words, from COMMANDS --------------------------------------------------------------


@dataclass(frozen=True)
class _Word:
    """A command word as the parser meets it: the words it is made of, and whose it is."""

    words: tuple[str, ...]
    command: ReplyCommand[Any]
    language: str


def _word_table() -> Mapping[str, tuple[_Word, ...]]:
    """Every command word by its first word, the longest first; a word used twice raises."""
    table: dict[str, list[_Word]] = {}
    seen: set[str] = set()
    for command in COMMANDS:
        for language in LANGUAGES:
            for written in command.all_words(language):
                if written in seen:
                    raise ValueError(f"reply command word {written!r} is declared twice")
                seen.add(written)
                words = tuple(written.split())
                table.setdefault(words[0], []).append(_Word(words, command, language))
    return MappingProxyType({
        first: tuple(sorted(entries, key=lambda entry: -len(entry.words)))
        for first, entries in table.items()})


_WORDS = _word_table()
# A one-word line close to one of these is a typo; two-word starts ("første") are not.
_TYPO_CANDIDATES = tuple(first for first, entries in _WORDS.items()
                         if any(len(entry.words) == 1 for entry in entries))

COMMAND_WORDS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    language: tuple(word for command in COMMANDS for word in command.words[language])
    for language in LANGUAGES})
"""The command words of each language ("da", "en"), in the order a help reply lists them."""

_MAX_COMMAND_CHARS = 80
_TYPO_CUTOFF = 0.8

_WORD_AND_REST = re.compile(r"(?P<word>[^\W\d_]+)(?P<rest>(?:[\s:].*)?)")


# -- the public functions ----------------------------------------------------------------


def parse_reply(text: str, *, today: date) -> ParsedReply:
    """The commands at the top of a reply's plain-text body and the note that follows them.

    Quoted history and the signature are removed first. `today` is the day the reply is read,
    for "i dag", "i går" and dates written without a year.
    """
    lines = new_text_of_reply(text).splitlines()
    commands: list[Command] = []
    unknown: list[UnknownCommand] = []
    failed_language: str | None = None
    note_start = len(lines)
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        outcome = _read_line(line, today)
        if outcome is None:
            note_start = index
            break
        result, language = outcome
        if isinstance(result, UnknownCommand):
            unknown.append(result)
            failed_language = failed_language or language
        else:
            commands.append(result)
    return ParsedReply(
        commands=tuple(commands),
        unknown=tuple(unknown),
        note="\n".join(lines[note_start:]).strip(),
        language=commands[0].language if commands else failed_language,
    )


def reply_lines() -> ReplyLines:
    """The lines the plan's mails suggest replying with, as these commands read them."""
    return ReplyLines(
        acknowledge=lambda language: command_name(Acknowledge(language=language), language),
        step_done=lambda number, language: command_name(
            StepDone(step=str(number), language=language), language))


def command_name(command: Command, language: str) -> str:
    """The command's word as a person writes it, in "da" or "en" (without its argument,
    except a step's number): what a warning may name without quoting a mail."""
    return declaration(command).name_in(command, language)


def command_help(language: str) -> tuple[tuple[str, str], ...]:
    """(syntax, explanation) pairs for a help reply, in "da" or "en"; Danish otherwise."""
    return tuple(command.help[spoken(language)] for command in COMMANDS)


# -- one line ------------------------------------------------------------------------------

_Outcome: TypeAlias = tuple[Command | UnknownCommand, str | None]


def _read_line(line: str, today: date) -> _Outcome | None:
    """The command or failed command on a line with its language; None if it is prose."""
    written = line.strip()
    if len(written) > _MAX_COMMAND_CHARS:
        return None
    normal = _normalise(written)
    match = _WORD_AND_REST.fullmatch(normal)
    if match is None:
        return None
    first, rest = match.group("word").lower(), match.group("rest").strip()
    if first not in _WORDS:
        return _typo(first, written) if not rest else None
    for word in _WORDS[first]:
        after = _after(word.words, normal)
        if after is not None:
            return _read_command(word, after, written, today)
    return None


def _after(words: tuple[str, ...], line: str) -> str | None:
    """The rest of the line after these words, stripped; None if it does not start so."""
    rest = line
    for expected in words:
        match = _WORD_AND_REST.fullmatch(rest)
        if match is None or match.group("word").lower() != expected:
            return None
        rest = match.group("rest").strip()
    return rest


def _normalise(line: str) -> str:
    """The line as a command: odd spaces, bold and italic marks, trailing "." and "!" gone."""
    line = unicodedata.normalize("NFC", line.translate(ODD_CHARACTERS)).replace("*", "")
    words = [word.strip("_") for word in line.split()]
    return " ".join(word for word in words if word).rstrip(".! ")


def _typo(word: str, written: str) -> _Outcome | None:
    """An unknown-word failure if a single word is close to a command word, else None."""
    close = difflib.get_close_matches(word, _TYPO_CANDIDATES, n=1, cutoff=_TYPO_CUTOFF)
    if not close:
        return None
    meant = close[0]
    language = next(entry.language for entry in _WORDS[meant] if len(entry.words) == 1)
    failure = UnknownCommand(line=written, reason=f"did you mean {meant!r}?",
                             code="unknown-word")
    return failure, language


def _read_command(word: _Word, rest: str, written: str, today: date) -> _Outcome | None:
    """The command a command word starts, its failure, or None if the line is prose."""
    colon = rest.startswith(":")
    arguments = Arguments(word=" ".join(word.words), text=rest.removeprefix(":").strip(),
                          colon=colon, language=word.language, today=today)
    result = word.command.read(arguments)
    if result is None:
        return None
    if isinstance(result, BadArgument):
        return UnknownCommand(line=written, reason=result.reason, code=result.code), word.language
    return result, word.language
