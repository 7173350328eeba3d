"""What a health check is and what it finds: ok, warn, fail or skipped, a sentence for people
and values for machines.

A finding's sentence is kept as English msgids with their parameters (`Phrase`), so that each
reader gets it in their own language (`Phrase.render`), while `summary` (what `--json` and the
log give) stays the English source text, whatever the catalogs say.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from gettext import NullTranslations
from typing import Any, Union

from intake.service.config import AppConfig
from storage.database import Database
from storage.i18n.catalogs import translations

# A parameter of a phrase: printed as it is, a number with decimals written the reader's
# way, or a phrase of its own rendered in the same language (an age, a count of messages),
# or several, each after ", ".
Param = Union[str, int, "Decimals", "Phrase", tuple["Phrase", ...], None]


@dataclass(frozen=True)
class Decimals:
    """A number written with the reader's decimal sign: 60.0 in English, 60,0 in Danish."""

    value: float
    # A CLDR number pattern: "0.0" for one decimal, "0.###" for up to three (none for 7.0).
    pattern: str = "0.###"

    def written(self, language: str) -> str:
        """The number as a reader of `language` writes it."""
        from babel.numbers import format_decimal  # Babel, only when text is rendered

        return format_decimal(self.value, format=self.pattern, locale=language)

# The English source texts: what `summary` gives, never changed by an edit of a catalog.
_SOURCE = NullTranslations()


@dataclass(frozen=True)
class Phrase:
    """A sentence of a finding: an English msgid (or a singular and plural with their count,
    in a context when the words alone are ambiguous) with `{name}` parameters, and after it
    the system's own words (an OS error, a server's greeting), which are never translated."""

    msgid: str
    params: Mapping[str, Param] = field(default_factory=dict)
    plural: str | None = None
    count: int = 0
    context: str | None = None
    system: str | None = None
    # Further phrases that follow this one, each after "; " (one per mailbox, say).
    then: tuple[Phrase, ...] = ()

    # The constructors carry gettext's names so that `pybabel extract` marks their texts.
    @classmethod
    def gettext(cls, msgid: str, system: str | None = None, **params: Param) -> Phrase:
        """A sentence to be translated, with its parameters and the system's words."""
        return cls(msgid, params, system=system)

    @classmethod
    def ngettext(cls, singular: str, plural: str, count: int, system: str | None = None,
                 **params: Param) -> Phrase:
        """A sentence whose words depend on `count` (also its parameter `n`)."""
        return cls(singular, {"n": count, **params}, plural=plural, count=count,
                   system=system)

    @classmethod
    def npgettext(cls, context: str, singular: str, plural: str, count: int,
                  **params: Param) -> Phrase:
        """`ngettext` in a context, for words that read differently elsewhere."""
        return cls(singular, {"n": count, **params}, plural=plural, count=count,
                   context=context)

    @classmethod
    def system_words(cls, text: str) -> Phrase:
        """Only the system's own words (an error nothing else explains)."""
        return cls("", system=text)

    def followed_by(self, *phrases: Phrase) -> Phrase:
        """This phrase with `phrases` after it, each after "; "."""
        return Phrase(self.msgid, self.params, self.plural, self.count, self.context,
                      self.system, (*self.then, *phrases))

    def render(self, catalog: NullTranslations, language: str) -> str:
        """The phrase in `language`, whose catalog is `catalog`."""
        if not self.msgid:
            text = ""
        elif self.plural is not None and self.context is not None:
            text = catalog.npgettext(self.context, self.msgid, self.plural, self.count)
        elif self.plural is not None:
            text = catalog.ngettext(self.msgid, self.plural, self.count)
        else:
            text = catalog.gettext(self.msgid)
        values = {name: _rendered(value, catalog, language)
                  for name, value in self.params.items()}
        text = text.format(**values)
        if self.system is not None:
            text = f"{text}: {self.system}" if text else self.system
        return "; ".join([text, *(phrase.render(catalog, language) for phrase in self.then)])

    def in_language(self, language: str) -> str:
        """The phrase as a reader of `language` reads it."""
        return self.render(translations(language), language)

    @property
    def english(self) -> str:
        """The English source text, as the program has always written it."""
        return self.render(_SOURCE, "en")


def _rendered(value: Param, catalog: NullTranslations, language: str) -> Any:
    """A parameter as the sentence prints it."""
    if isinstance(value, Phrase):
        return value.render(catalog, language)
    if isinstance(value, Decimals):
        return value.written(language)
    if isinstance(value, tuple):
        return ", ".join(phrase.render(catalog, language) for phrase in value)
    return value


def joined(phrases: list[Phrase]) -> Phrase:
    """The phrases one after the other, each after "; " (there is at least one)."""
    return phrases[0].followed_by(*phrases[1:])


class CheckStatus(StrEnum):
    """How one health check came out."""

    OK = "ok"
    WARN = "warn"  # worth a look; still healthy
    FAIL = "fail"  # unhealthy: `health` exits non-zero
    SKIPPED = "skipped"  # not checked: an earlier check failed, or nothing to check


@dataclass(frozen=True)
class Finding:
    """What a check found: its status, a sentence for people, and values for machines."""

    status: CheckStatus
    text: Phrase
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        """The sentence in English, as `--json` and the log give it."""
        return self.text.english

    def in_language(self, language: str) -> str:
        """The sentence as a reader of `language` reads it."""
        return self.text.in_language(language)


@dataclass
class HealthInputs:
    """What the checks look at; the database check sets `database` when it can be used."""

    config: AppConfig
    now: datetime
    database: Database | None = None


@dataclass(frozen=True)
class HealthCheck:
    """One named check; those needing the database are skipped when it is not usable."""

    name: str
    run: Callable[[HealthInputs], Finding]
    needs_database: bool = True


@dataclass(frozen=True)
class CheckResult:
    """A check's name with its finding."""

    name: str
    finding: Finding

    def as_json(self) -> dict[str, Any]:
        """The result as plain JSON values."""
        return {"name": self.name, "status": self.finding.status.value,
                "summary": self.finding.summary, "details": self.finding.details}


MIB = 1024 * 1024


def format_age(age: timedelta) -> Phrase:
    """A duration the way people say it: 40 s, 12 min, 5 h, 3 d (in English)."""
    seconds = max(0, int(age.total_seconds()))
    if seconds >= 86400:
        return Phrase.npgettext("age", "{n} d", "{n} d", seconds // 86400)
    if seconds >= 3600:
        return Phrase.npgettext("age", "{n} h", "{n} h", seconds // 3600)
    if seconds >= 60:
        return Phrase.npgettext("age", "{n} min", "{n} min", seconds // 60)
    return Phrase.npgettext("age", "{n} s", "{n} s", seconds)
