"""The reply commands are one module each: every module is listed in COMMANDS, shown in the
help mail in both languages, and every word it declares is read as that command."""

from __future__ import annotations

import html
import importlib
import pkgutil
import re
from datetime import date
from email import policy
from email.parser import BytesParser
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import intake.commands.reply as reply_package
from intake.commands.reply import COMMANDS, declaration
from intake.commands.reply.command import ReplyCommand
from intake.commands.reply.parser import parse_reply
from intake.service.daemon import composer_for, plan_mails_for
from storage.models import Case
from tests.support import MANAGER, make_config

TODAY = date(2026, 11, 24)
LANGUAGES = ("da", "en")
DASH = "\u2013"  # the en dash the help list puts between a syntax and its explanation
# The modules of the package that are not commands: the machinery the commands plug into.
MACHINERY = frozenset({"command", "parser", "actions"})


def command_modules() -> list[ModuleType]:
    """Every module of the reply package that is not its machinery, found on disk."""
    names = sorted(info.name for info in pkgutil.iter_modules(reply_package.__path__))
    return [importlib.import_module(f"{reply_package.__name__}.{name}")
            for name in names if name not in MACHINERY]


def test_every_command_module_is_listed_once_in_commands() -> None:
    modules = command_modules()
    assert len(modules) >= 8
    for module in modules:
        declared = getattr(module, "COMMAND", None)
        assert isinstance(declared, ReplyCommand), f"{module.__name__} declares no COMMAND"
        assert declared in COMMANDS, f"{module.__name__} is missing from COMMANDS"
        assert declared.kind.__module__ == module.__name__
    assert len(set(map(id, COMMANDS))) == len(COMMANDS) == len(modules)


def help_mail(tmp_path: Path, language: str) -> tuple[str, str]:
    """The text and the HTML of the confirmation a reply of only "help" gets, rendered by
    the mails the daemon builds from a config."""
    config = make_config(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}")
    mails = plan_mails_for(config, composer_for(config))
    case = Case(number="2026-0001", manager=MANAGER)
    mail = mails.confirmation(case, actor=MANAGER, language=language, results=[], steps=[],
                              implicit_ack=False, unknown=[], show_help=True,
                              note_saved=False, attachment_count=0, in_reply_to=None,
                              reply_to=None)
    message: Any = BytesParser(policy=policy.default).parsebytes(mail.raw)
    text = message.get_body(preferencelist=("plain",)).get_content()
    markup = message.get_body(preferencelist=("html",)).get_content()
    return text, html.unescape(re.sub(r"<[^>]+>", " ", markup))


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_command_is_in_the_help_mail(tmp_path: Path, language: str) -> None:
    text, markup = help_mail(tmp_path, language)
    flat_markup = " ".join(markup.split())
    for command in command_modules():
        syntax, explanation = command.COMMAND.help[language]
        assert command.COMMAND.words[language][0] in syntax, command.__name__
        assert f"{syntax} {DASH} {explanation}" in text, command.__name__
        assert syntax in flat_markup and explanation in flat_markup, command.__name__


def with_word(example: str, words: tuple[str, ...], word: str) -> str:
    """The help example with its command word (the longest of `words` it starts with)
    replaced by `word`."""
    start = max((listed for listed in words if example.startswith(listed)), key=len)
    return word + example[len(start):]


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("declared", COMMANDS, ids=lambda command: command.kind.__name__)
def test_every_declared_word_is_read_as_its_command(declared: ReplyCommand[Any],
                                                    language: str) -> None:
    example = declared.help[language][0].split(" / ")[0]
    for word in declared.all_words(language):
        for line in (word, word.upper(), f"*{word.capitalize()}*"):
            alone = parse_reply(line, today=TODAY)
            assert alone.language == language, line
            assert len(alone.commands) + len(alone.unknown) == 1, line
            assert alone.note == "", line
        line = with_word(example, declared.words[language], word)
        parsed = parse_reply(line, today=TODAY)
        assert len(parsed.commands) == 1 and not parsed.unknown, line
        assert declaration(parsed.commands[0]) is declared, line
        assert parsed.commands[0].language == language, line
