"""The compiled catalogs and the translation functions of one language.

Source texts (msgids) are English; `da` holds the Danish texts. A language is one
`locale/<language>/LC_MESSAGES/chikanemail.po` (and its compiled `.mo`, committed) plus the
language's words for reply commands (`intake/commands/reply/`), durations and holidays.
"""

from __future__ import annotations

import gettext
from functools import cache
from pathlib import Path

DOMAIN = "chikanemail"
LOCALE_DIR = Path(__file__).parent / "locale"
# The languages a workplace or a manager may choose; each has a catalog under LOCALE_DIR.
LANGUAGES = ("da", "en")


class UnknownLanguageError(ValueError):
    """A language that has no catalog."""


def N_(text: str) -> str:
    """Mark a text for the catalogs; it is translated where it is shown."""
    return text


def check_language(language: str) -> str:
    """The language itself when it has a catalog; else UnknownLanguageError naming the choices."""
    if language not in LANGUAGES:
        raise UnknownLanguageError(f"{language!r} is not one of {', '.join(LANGUAGES)}")
    return language


@cache
def translations(language: str) -> gettext.GNUTranslations:
    """The compiled catalog of a language (read once per process)."""
    check_language(language)
    path = LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.mo"
    with open(path, "rb") as handle:
        return gettext.GNUTranslations(handle)
