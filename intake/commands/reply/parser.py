"""Commands a manager writes at the top of a reply to a case's notification mail.

`parse_reply` first keeps only what the manager wrote (`new_text_of_reply`), then reads
command lines from the top, in Danish or English, case-insensitively:

    kvitter | kvittér | ack | acknowledge                   Acknowledge
    trin 2 udført | færdig | ok, step 2 done | complete      StepDone(step="2")
    fravær | absence | første fraværsdag | first absence D   Absence(day)
    ekstern | external, kollega | colleague, ukendt | unknown Relation
    medie | medium  mail | sms | sociale medier | andet      Medium
    vidne | witness <text>                                   Witness
    luk | close [: reason]                                   Close
    hjælp | help | kommandoer | commands                     Help

D is 2026-11-22, 22-11-2026, 22.11.2026, 22/11/2026 (also with a two-digit year), 22.11 or
22/11 (the year of today, or the year before if that lands more than 31 days ahead), "i dag",
"today", "i går", "igår" or "yesterday". A command line may carry surrounding "*" or "_" (bold
and italics from HTML), a trailing "." or "!", no-break spaces, and a ":" after the command
word. Blank lines between command lines are allowed; the first other line ends the commands,
and it and everything after it is the note.

Prose often begins with a command word ("Luk ikke sagen endnu, ..."), so a line counts as a
command only in the command's own shape; any other line is the note:

- commands without an argument (kvitter, ekstern, hjælp, ...) stand alone on their line;
- luk/close stands alone ("luk", "luk sagen", "close the case") or gives its reason after a
  colon ("luk: mødet er holdt"); "Luk ikke sagen endnu" is prose;
- trin/step, fravær/absence and medie/medium take at most three words after the command
  word; a longer line is prose, a short one whose arguments do not parse is an
  `UnknownCommand` ("fravær 30.02.2026": bad-date; "fravær": missing-argument);
- vidne/witness takes its text after a colon (any length), or after a space when that text is
  at most eight words;
- no line over 80 characters is a command;
- a line of one word that is not a command word but close to one ("lukk", "kviter") is an
  `UnknownCommand` with code "unknown-word", so that a typo is answered rather than filed
  as a note.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from types import MappingProxyType
from typing import TypeAlias

from intake.parse.reply_text import ODD_CHARACTERS, new_text_of_reply


@dataclass(frozen=True)
class Acknowledge:
    """The manager has seen the case and takes it on."""

    language: str = "da"


@dataclass(frozen=True)
class StepDone:
    """A step of the response plan is done; step is the number or key as written."""

    step: str
    language: str = "da"


@dataclass(frozen=True)
class Absence:
    """The employee's first day of absence."""

    day: date
    language: str = "da"


@dataclass(frozen=True)
class Relation:
    """Who the harasser is to the employee: "external", "colleague" or "unknown"."""

    kind: str
    language: str = "da"


@dataclass(frozen=True)
class Medium:
    """Where the harassment happened: "mail", "sms", "social-media" or "other"."""

    kind: str
    language: str = "da"


@dataclass(frozen=True)
class Witness:
    """A witness to add to the case, as the manager described them."""

    text: str
    language: str = "da"


@dataclass(frozen=True)
class Close:
    """Close the case, with the manager's reason if they gave one."""

    reason: str | None = None
    language: str = "da"


@dataclass(frozen=True)
class Help:
    """The manager asks for the list of commands."""

    language: str = "da"


Command: TypeAlias = (
    Acknowledge | StepDone | Absence | Relation | Medium | Witness | Close | Help
)


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


# -- command words -----------------------------------------------------------------------

# Commands that stand alone on their line.
_ALONE: Mapping[str, Command] = MappingProxyType({
    "kvitter": Acknowledge("da"), "kvittér": Acknowledge("da"),
    "ack": Acknowledge("en"), "acknowledge": Acknowledge("en"),
    "ekstern": Relation("external", "da"), "external": Relation("external", "en"),
    "kollega": Relation("colleague", "da"), "colleague": Relation("colleague", "en"),
    "ukendt": Relation("unknown", "da"), "unknown": Relation("unknown", "en"),
    "hjælp": Help("da"), "hjaelp": Help("da"), "kommandoer": Help("da"),
    "help": Help("en"), "commands": Help("en"),
})
# Commands with arguments: word -> (kind, language).
_WITH_ARGUMENTS: Mapping[str, tuple[str, str]] = MappingProxyType({
    "trin": ("step", "da"), "step": ("step", "en"),
    "fravær": ("absence", "da"), "fravaer": ("absence", "da"), "absence": ("absence", "en"),
    "medie": ("medium", "da"), "medium": ("medium", "en"),
    "vidne": ("witness", "da"), "witness": ("witness", "en"),
    "luk": ("close", "da"), "close": ("close", "en"),
})
# Two-word starts of the absence command: first word -> (second words, language).
_TWO_WORD_ABSENCE: Mapping[str, tuple[frozenset[str], str]] = MappingProxyType({
    "første": (frozenset({"fraværsdag", "fravaersdag", "fravær", "fravaer"}), "da"),
    "foerste": (frozenset({"fraværsdag", "fravaersdag", "fravær", "fravaer"}), "da"),
    "first": (frozenset({"absence"}), "en"),
})

COMMAND_WORDS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "da": ("kvitter", "trin", "fravær", "første fraværsdag", "ekstern", "kollega", "ukendt",
           "medie", "vidne", "luk", "hjælp"),
    "en": ("ack", "step", "absence", "first absence", "external", "colleague", "unknown",
           "medium", "witness", "close", "help"),
})
"""The command words of each language ("da", "en"), in the order a help reply lists them."""

_HELP: Mapping[str, tuple[tuple[str, str], ...]] = MappingProxyType({
    "da": (
        ("kvitter", "bekræfter, at du har set sagen og tager dig af den"),
        ("trin 2 udført", "markerer trin 2 i beredskabsplanen som udført"),
        ("fravær 22.11.2026", "noterer første fraværsdag (også: fravær i dag, fravær i går)"),
        ("ekstern / kollega / ukendt", "noterer, hvem krænkeren er for medarbejderen"),
        ("medie sms", "noterer, hvor chikanen skete: mail, sms, sociale medier eller andet"),
        ("vidne Peter Jensen, lærer", "tilføjer et vidne til sagen"),
        ("luk: begrundelse", "lukker sagen; begrundelsen efter kolon kan udelades"),
        ("hjælp", "sender denne liste over kommandoer"),
    ),
    "en": (
        ("ack", "confirms that you have seen the case and are handling it"),
        ("step 2 done", "marks step 2 of the response plan as done"),
        ("absence 2026-11-22", "records the first day of absence (also: today, yesterday)"),
        ("external / colleague / unknown", "records who the harasser is to the employee"),
        ("medium sms", "records where the harassment happened: mail, sms, social media, other"),
        ("witness Peter Jensen, teacher", "adds a witness to the case"),
        ("close: reason", "closes the case; the reason after the colon is optional"),
        ("help", "sends this list of commands"),
    ),
})

_DONE_WORDS = frozenset({
    "udført", "udfoert", "udfort", "færdig", "faerdig", "ok", "done", "complete", "completed",
})
_DONE_FILLERS = frozenset({"er", "is"})
_STEP_TOKEN = re.compile(r"[0-9a-zæøå][0-9a-zæøå_-]{0,39}")
_MEDIUM_VALUES: Mapping[str, str] = MappingProxyType({
    "mail": "mail", "e-mail": "mail", "email": "mail",
    "sms": "sms",
    "sociale medier": "social-media", "social media": "social-media",
    "social": "social-media", "social-media": "social-media",
    "andet": "other", "other": "other",
})
_CLOSE_OBJECTS = frozenset({"sagen", "case", "the case"})
_TODAY_WORDS = frozenset({"i dag", "idag", "today"})
_YESTERDAY_WORDS = frozenset({"i går", "igår", "i gaar", "igaar", "yesterday"})

_MAX_COMMAND_CHARS = 80
_MAX_ARGUMENT_WORDS = 3
_MAX_WITNESS_WORDS = 8
_TYPO_CUTOFF = 0.8
_FUTURE_DAYS = 31

_WORD_AND_REST = re.compile(r"(?P<word>[^\W\d_]+)(?P<rest>(?:[\s:].*)?)")
_YMD = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})")
_DMY = re.compile(r"(\d{1,2})([-./])(\d{1,2})\2(\d{4}|\d{2})")
_DM = re.compile(r"(\d{1,2})[./](\d{1,2})")


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


_RELATION_WORDS: Mapping[str, Mapping[str, str]] = MappingProxyType({
    "da": {"external": "ekstern", "colleague": "kollega", "unknown": "ukendt"},
    "en": {"external": "external", "colleague": "colleague", "unknown": "unknown"},
})


def command_name(command: Command, language: str) -> str:
    """The command's word as a person writes it, in "da" or "en" (without its argument,
    except a step's number): what a warning may name without quoting a mail."""
    english = language == "en"
    if isinstance(command, StepDone):
        return f"step {command.step} done" if english else f"trin {command.step} udført"
    if isinstance(command, Relation):
        return _RELATION_WORDS["en" if english else "da"].get(command.kind, command.kind)
    words = {Acknowledge: ("kvitter", "ack"), Absence: ("fravær", "absence"),
             Medium: ("medie", "medium"), Witness: ("vidne", "witness"),
             Close: ("luk", "close"), Help: ("hjælp", "help")}
    danish, english_word = words[type(command)]
    return english_word if english else danish


def command_help(language: str) -> tuple[tuple[str, str], ...]:
    """(syntax, explanation) pairs for a help reply, in "da" or "en"; Danish otherwise."""
    return _HELP.get(language, _HELP["da"])


# -- one line ------------------------------------------------------------------------------

_Outcome: TypeAlias = tuple[Command | UnknownCommand, str | None]


def _read_line(line: str, today: date) -> _Outcome | None:
    """The command or failed command on a line with its language; None if it is prose."""
    written = line.strip()
    if len(written) > _MAX_COMMAND_CHARS:
        return None
    match = _WORD_AND_REST.fullmatch(_normalise(written))
    if match is None:
        return None
    word, rest = match.group("word").lower(), match.group("rest").strip()
    if word in _TWO_WORD_ABSENCE:
        seconds, language = _TWO_WORD_ABSENCE[word]
        second = _WORD_AND_REST.fullmatch(rest)
        if second is None or second.group("word").lower() not in seconds:
            return None
        return _with_arguments("absence", second.group("rest").strip(), written, today, language)
    if word in _ALONE:
        return (_ALONE[word], _ALONE[word].language) if rest in ("", ":") else None
    if word in _WITH_ARGUMENTS:
        kind, language = _WITH_ARGUMENTS[word]
        return _with_arguments(kind, rest, written, today, language)
    if not rest:
        return _typo(word, written)
    return None


def _normalise(line: str) -> str:
    """The line as a command: odd spaces, bold and italic marks, trailing "." and "!" gone."""
    line = unicodedata.normalize("NFC", line.translate(ODD_CHARACTERS)).replace("*", "")
    words = [word.strip("_") for word in line.split()]
    return " ".join(word for word in words if word).rstrip(".! ")


def _typo(word: str, written: str) -> _Outcome | None:
    """An unknown-word failure if a single word is close to a command word, else None."""
    candidates = [*_ALONE, *_WITH_ARGUMENTS]
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=_TYPO_CUTOFF)
    if not close:
        return None
    meant = close[0]
    language = _ALONE[meant].language if meant in _ALONE else _WITH_ARGUMENTS[meant][1]
    failure = UnknownCommand(line=written, reason=f"did you mean {meant!r}?",
                             code="unknown-word")
    return failure, language


def _with_arguments(
    kind: str, rest: str, written: str, today: date, language: str
) -> _Outcome | None:
    """The command of a word that takes arguments; None if the line is prose."""
    colon = rest.startswith(":")
    arguments = rest.removeprefix(":").strip()
    result = _ARGUMENT_READERS[kind](arguments, colon, today, language)
    if result is None:
        return None
    if isinstance(result, tuple):
        code, reason = result
        return UnknownCommand(line=written, reason=reason, code=code), language
    return result, language


# A reader returns the command, (code, reason) when its arguments fail, or None for prose.
_Reading: TypeAlias = Command | tuple[str, str] | None


def _read_step(arguments: str, colon: bool, today: date, language: str) -> _Reading:
    words = [word.strip(":.") for word in arguments.lower().split()]
    if len(words) > _MAX_ARGUMENT_WORDS:
        return None
    if not words:
        return "missing-argument", "no step given"
    step, rest = words[0], [word for word in words[1:] if word not in _DONE_FILLERS]
    if not _STEP_TOKEN.fullmatch(step):
        return "bad-value", "not a step number or key"
    if not rest:
        return "missing-argument", "no 'done' after the step"
    if len(rest) > 1 or rest[0] not in _DONE_WORDS:
        return "bad-value", "a step can only be marked done"
    return StepDone(step=step, language=language)


def _read_absence(arguments: str, colon: bool, today: date, language: str) -> _Reading:
    if len(arguments.split()) > _MAX_ARGUMENT_WORDS:
        return None
    if not arguments:
        return "missing-argument", "no date given"
    day = _parse_day(arguments.lower(), today)
    if isinstance(day, str):
        return "bad-date", day
    return Absence(day=day, language=language)


def _read_medium(arguments: str, colon: bool, today: date, language: str) -> _Reading:
    if len(arguments.split()) > _MAX_ARGUMENT_WORDS:
        return None
    if not arguments:
        return "missing-argument", "no medium given"
    value = _MEDIUM_VALUES.get(arguments.lower())
    if value is None:
        return "bad-value", "not mail, sms, social media or other"
    return Medium(kind=value, language=language)


def _read_witness(arguments: str, colon: bool, today: date, language: str) -> _Reading:
    if not colon and len(arguments.split()) > _MAX_WITNESS_WORDS:
        return None
    if not arguments:
        return "missing-argument", "no witness given"
    return Witness(text=arguments, language=language)


def _read_close(arguments: str, colon: bool, today: date, language: str) -> _Reading:
    if colon:
        return Close(reason=arguments or None, language=language)
    # "luk", "luk sagen", "luk sagen: reason"; anything else after the word is prose.
    target, _, reason = arguments.partition(":")
    if " ".join(target.lower().split()) not in ("", *_CLOSE_OBJECTS):
        return None
    return Close(reason=reason.strip() or None, language=language)


_ARGUMENT_READERS: Mapping[str, Callable[[str, bool, date, str], _Reading]] = MappingProxyType({
    "step": _read_step,
    "absence": _read_absence,
    "medium": _read_medium,
    "witness": _read_witness,
    "close": _read_close,
})


# -- dates -----------------------------------------------------------------------------------


def _parse_day(text: str, today: date) -> date | str:
    """The day a manager wrote, or a short English reason why it is not one."""
    words = " ".join(text.split())
    if words in _TODAY_WORDS:
        return today
    if words in _YESTERDAY_WORDS:
        return today - timedelta(days=1)
    if match := _YMD.fullmatch(words):
        year, month, day = (int(part) for part in match.groups())
        return _make_day(year, month, day)
    if match := _DMY.fullmatch(words):
        day, month = int(match.group(1)), int(match.group(3))
        year_text = match.group(4)
        year = int(year_text) + (2000 if len(year_text) == 2 else 0)
        return _make_day(year, month, day)
    if match := _DM.fullmatch(words):
        day, month = int(match.group(1)), int(match.group(2))
        this_year = _make_day(today.year, month, day)
        if isinstance(this_year, date) and (this_year - today).days > _FUTURE_DAYS:
            return _make_day(today.year - 1, month, day)
        return this_year
    return "not a date"


def _make_day(year: int, month: int, day: int) -> date | str:
    try:
        return date(year, month, day)
    except ValueError:
        return "no such date"
