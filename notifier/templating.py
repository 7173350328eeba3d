"""The mail templates and how values look in them.

Built-in templates live in `notifier/templates/`, one per mail part for every language: their
words are `{% trans %}` blocks and `_()` calls, translated by the catalogs of `storage.i18n`.
An admin overrides any one of them by putting a file of the same name directly under
`[notify] template_dir`; files in `<template_dir>/<language>/` (the layout before one template
served every language) are refused at start, see `old_style_overrides`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime, tzinfo
from pathlib import Path

from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    select_autoescape,
)

from storage.i18n.catalogs import LANGUAGES as LANGUAGES  # re-exported: callers import it here
from storage.i18n.catalogs import translations
from storage.i18n.jinja import install_translations
from storage.time_text import long_date, long_datetime

BUILTIN_TEMPLATES = Path(__file__).parent / "templates"

# Everything str.splitlines() breaks on, and the other C0/C1 controls: none of it belongs in
# a header, and in a body it would only let a file name or subject fake extra lines.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def one_line(text: str) -> str:
    """The text on one line: line breaks and control characters become single spaces."""
    return " ".join(_CONTROLS.sub(" ", text).split())


def clip(text: str, limit: int) -> str:
    """The text cut to at most `limit` characters, with an ellipsis when it was cut."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def local_time(moment: datetime, language: str, zone: tzinfo) -> str:
    """The moment in the workplace's zone, with the zone's name, written the language's way
    (`storage.time_text.long_datetime`, as the CLI writes it too)."""
    return long_datetime(moment, language, zone)


def local_date(day: date, language: str) -> str:
    """A calendar day written the language's way: `søndag 22. november 2026` (da),
    `Sunday 22 November 2026` (en)."""
    return long_date(day, language)


def human_size(size: int, language: str) -> str:
    """A byte count as a reader says it: `512 byte`, `245,3 kB` (da) / `245.3 kB` (en)."""
    if size < 1000:
        ngettext = translations(language).ngettext
        return ngettext("%(num)d byte", "%(num)d bytes", size) % {"num": size}
    value = float(size)
    for unit in ("kB", "MB", "GB", "TB"):
        value /= 1000
        if value < 1000 or unit == "TB":
            break
    number = f"{value:.1f}"
    return f"{number.replace('.', ',') if language == 'da' else number} {unit}"


def _finalize(value: object) -> object:
    # Every printed string goes through here, so no value can break a line of a template.
    # Markup (already safe HTML from the template itself) is left alone.
    if type(value) is str:
        return one_line(value)
    return value


def old_style_overrides(template_dir: str) -> list[Path]:
    """The admin's template files written for the old per-language layout
    (`<template_dir>/<language>/<name>.j2`), which no longer take effect."""
    if not template_dir:
        return []
    folder = Path(template_dir)
    return sorted(path for language in LANGUAGES if (folder / language).is_dir()
                  for path in (folder / language).rglob("*.j2"))


def old_style_problem(files: Sequence[Path]) -> str:
    """What to tell the admin whose template_dir still has per-language files (`files`)."""
    listed = ", ".join(str(path) for path in files[:3]) + (" …" if len(files) > 3 else "")
    return (f"{listed} {'is' if len(files) == 1 else 'are'} written for the old "
            "per-language layout (<template_dir>/<language>/<name>.j2) and would no longer "
            "be used. One template now serves every language: merge the copies into "
            "<template_dir>/<name>.j2 with {% trans %} blocks, then remove the language "
            "folders (README: 'Your own mail templates'; docs/release-notes.md)")


def make_environment(template_dir: str = "", language: str = "da") -> Environment:
    """The template environment of one language: the admin's folder first (when set), then
    the built-ins; `{% trans %}` and `_()` speak `language`."""
    loaders: list[BaseLoader] = []
    if template_dir:
        loaders.append(FileSystemLoader(template_dir))
    loaders.append(FileSystemLoader(BUILTIN_TEMPLATES))
    environment = Environment(
        loader=ChoiceLoader(loaders),
        undefined=StrictUndefined,
        autoescape=select_autoescape(enabled_extensions=("html.j2", "html"),
                                     default_for_string=False, default=False),
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    install_translations(environment, language, clean_value=_finalize)
    return environment
