"""The mail templates and how values look in them.

Built-in templates live in `notifier/templates/<language>/`; an admin overrides any one of
them by putting a file of the same name under `[notify] template_dir`.
"""

from __future__ import annotations

import re
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

from storage.time_text import long_date, long_datetime

BUILTIN_TEMPLATES = Path(__file__).parent / "templates"
LANGUAGES = ("da", "en")

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
        unit = "byte" if language == "da" or size == 1 else "bytes"
        return f"{size} {unit}"
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


def make_environment(template_dir: str = "") -> Environment:
    """The template environment: the admin's folder first (when set), then the built-ins."""
    loaders: list[BaseLoader] = []
    if template_dir:
        loaders.append(FileSystemLoader(template_dir))
    loaders.append(FileSystemLoader(BUILTIN_TEMPLATES))
    return Environment(
        loader=ChoiceLoader(loaders),
        undefined=StrictUndefined,
        autoescape=select_autoescape(enabled_extensions=("html.j2", "html"),
                                     default_for_string=False, default=False),
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
