"""The message catalogs against the sources (issue 19).

Every text the sources mark for translation (`_()`, `ngettext()`, `pgettext()`, `{% trans %}`)
is in every catalog, translated and not fuzzy; no catalog keeps a text the sources dropped; and
each committed `.mo` is exactly what `pybabel compile` makes of its `.po`, so an install needs
no build step and never runs stale translations.
"""

from __future__ import annotations

import io
import re
from functools import cache, lru_cache

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from storage.i18n.catalogs import DOMAIN, LANGUAGES, LOCALE_DIR, translations
from tests.support import REPO_ROOT

MessageKey = tuple[str | None, str | tuple[str, ...]]


def po_path(language: str) -> str:
    """The catalog file of a language."""
    return str(LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po")


@cache
def catalog(language: str) -> Catalog:
    """A language's .po as Babel reads it."""
    with open(po_path(language), "rb") as handle:
        return read_po(handle, locale=language)


@lru_cache(maxsize=1)
def extracted() -> dict[MessageKey, str]:
    """Every (context, msgid) the sources mark for translation, with where it was found."""
    with open(REPO_ROOT / "babel.cfg", encoding="utf-8") as handle:
        method_map, options_map = parse_mapping_cfg(handle, "babel.cfg")
    found: dict[MessageKey, str] = {}
    for filename, lineno, message, _comments, context in extract_from_dir(
            str(REPO_ROOT), method_map, options_map):
        key: MessageKey = (context, tuple(message) if isinstance(message, (list, tuple))
                           else message)
        found.setdefault(key, f"{filename}:{lineno}")
    return found


def catalog_keys(language: str) -> dict[MessageKey, object]:
    """The catalog's entries by (context, msgid), without the header."""
    return {(message.context, message.id): message for message in catalog(language)
            if message.id}


def test_the_sources_mark_texts_for_translation() -> None:
    assert len(extracted()) > 300  # a broken babel.cfg would find none and pass the rest


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_text_of_the_sources_is_in_the_catalog(language: str) -> None:
    keys = catalog_keys(language)
    missing = [f"{where}: {key[1]!r}" for key, where in extracted().items() if key not in keys]
    assert not missing, (f"{len(missing)} texts missing in {po_path(language)} (run pybabel "
                         "extract and update, see the README):\n" + "\n".join(missing[:20]))


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_catalog_keeps_no_text_the_sources_dropped(language: str) -> None:
    stale = [key[1] for key in catalog_keys(language) if key not in extracted()]
    assert not stale, f"{po_path(language)} has texts no source uses: {stale[:20]}"
    assert not catalog(language).obsolete


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_text_is_translated_and_none_is_fuzzy(language: str) -> None:
    untranslated, fuzzy = [], []
    for message in catalog(language):
        if not message.id:
            continue
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if not all(strings):
            untranslated.append(message.id)
        if message.fuzzy:
            fuzzy.append(message.id)
    assert not untranslated, f"untranslated in {po_path(language)}: {untranslated[:20]}"
    assert not fuzzy, f"fuzzy in {po_path(language)}: {fuzzy[:20]}"
    assert not catalog(language).fuzzy, "the catalog's header is marked fuzzy"


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_committed_mo_is_the_compiled_po(language: str) -> None:
    compiled = io.BytesIO()
    write_mo(compiled, catalog(language))
    committed = (LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.mo").read_bytes()
    assert committed == compiled.getvalue(), (
        f"{language}: the .mo is stale; run `pybabel compile -d storage/i18n/locale "
        f"-D {DOMAIN}`")


@pytest.mark.parametrize("language", LANGUAGES)
def test_placeholders_survive_translation(language: str) -> None:
    """A translation that drops or renames a %(name)s would fail at the first mail."""
    placeholder = re.compile(r"%\((\w+)\)[sd]")
    wrong = []
    for message in catalog(language):
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        wanted = {name for text in ids for name in placeholder.findall(text)}
        if len(ids) > 1:
            wanted.add("num")
        wrong.extend((message.id, string) for string in strings
                     if not set(placeholder.findall(string)) <= wanted)
    assert not wrong, wrong[:10]


def test_danish_is_danish_and_english_is_english() -> None:
    assert translations("da").gettext("[Case %(number)s]") == "[Sag %(number)s]"
    assert translations("en").gettext("[Case %(number)s]") == "[Case %(number)s]"
    assert translations("da").ngettext("%(num)d item", "%(num)d items", 2) == "%(num)d elementer"
