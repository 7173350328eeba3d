"""A case's registration as the pages show it (issue 22): the form's fields with their
labels, choices and problems in the reader's language, a saved version in words, and the
list of versions.

The fields are exactly those of `storage.registrations.RegistrationFields`; the coded ones
are worded from `storage.registration_codes`, so no code reaches a reader.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import tzinfo

from babel.numbers import format_number

from storage.i18n.catalogs import N_, translations
from storage.models import CaseRegistration
from storage.registration_words import FIELD_LABELS, field_lines
from storage.registrations import (
    BAD_CHOICE,
    BAD_DATE,
    CHOICES,
    DATE_FIELDS,
    FIELD_NAMES,
    MISSING,
    NAME_FIELDS,
    NAME_MAX_CHARS,
    PERIOD_ORDER,
    REQUIRED,
    TEXT_MAX_CHARS,
    TOO_LONG,
    FieldProblem,
    RegistrationFields,
)
from storage.time_text import long_datetime

# A hint under some fields.
HINTS: Mapping[str, str] = {
    "affected_employee": N_("Name and work address of the employee who was harassed."),
    "harasser": N_("Name, address, profile or number, as far as it is known."),
    "description": N_("Briefly, how it happened: what was written or done, how often."),
    "first_absence_day": N_("Only if the employee was away from work because of it."),
    "actions_taken": N_("What the workplace has done, for example conversations, contact "
                        "with the harasser, takedown requests, a police report."),
}

PROBLEMS: Mapping[str, str] = {
    MISSING: N_("Fill in this field."),
    BAD_CHOICE: N_("Choose one of the listed options."),
    BAD_DATE: N_("Write a date, for example 2026-11-22."),
    PERIOD_ORDER: N_("The last day is before the first day."),
}
TOO_LONG_WORDS = N_("Too long: write at most %(count)s characters.")


@dataclass(frozen=True)
class Choice:
    """One option of a coded field: its code (the form's value) and its words."""

    value: str
    words: str
    selected: bool


@dataclass(frozen=True)
class FormField:
    """One field of the form: what it is called, what it holds now, and what is wrong."""

    name: str
    kind: str  # "choice", "date", "name" (one line) or "text" (several lines)
    label: str
    hint: str | None
    value: str
    choices: tuple[Choice, ...]
    required: bool
    max_chars: int | None
    problem: str | None

    @property
    def element_id(self) -> str:
        """The id of the field's input."""
        return "registration-" + self.name.replace("_", "-")


@dataclass(frozen=True)
class ShownField:
    """A field of a saved (or prefilled) registration, in words."""

    name: str
    label: str
    words: str


@dataclass(frozen=True)
class VersionView:
    """A saved version: its number, author and time."""

    version: int
    author: str
    saved_at: str


def max_chars(name: str) -> int | None:
    """How long a text field may be (None for codes and dates)."""
    if name in CHOICES or name in DATE_FIELDS:
        return None
    return NAME_MAX_CHARS if name in NAME_FIELDS else TEXT_MAX_CHARS


def field_kind(name: str) -> str:
    """How the form asks for the field: a choice, a date, a one-line name or a text."""
    if name in CHOICES:
        return "choice"
    if name in DATE_FIELDS:
        return "date"
    return "name" if name in NAME_FIELDS else "text"


def form_values(registration: RegistrationFields) -> dict[str, str]:
    """The registration's fields as the form's texts (dates as ISO days, none as '')."""
    return {name: "" if value is None else str(value)
            for name, value in registration.as_json().items()}


def problem_words(problem: FieldProblem, language: str) -> str:
    """What is wrong with one field, in the reader's language."""
    words = translations(language)
    if problem.problem == TOO_LONG:
        count = format_number(max_chars(problem.field) or 0, locale=language)
        return words.gettext(TOO_LONG_WORDS) % {"count": count}
    msgid = PROBLEMS.get(problem.problem, PROBLEMS[BAD_CHOICE])
    return words.gettext(msgid)


def form_fields(values: Mapping[str, str], problems: Sequence[FieldProblem],
                language: str) -> tuple[FormField, ...]:
    """The form's fields holding `values` (the form's texts), each with its problem."""
    gettext = translations(language).gettext
    wrong: dict[str, str] = {}
    for problem in problems:
        wrong.setdefault(problem.field, problem_words(problem, language))
    shown = []
    for name in FIELD_NAMES:
        value = values.get(name, "")
        choices = tuple(Choice(code, gettext(msgid), code == value)
                        for code, msgid in CHOICES.get(name, {}).items())
        hint = HINTS.get(name)
        shown.append(FormField(
            name=name, kind=field_kind(name), label=gettext(FIELD_LABELS[name]),
            hint=gettext(hint) if hint else None, value=value, choices=choices,
            required=name in REQUIRED, max_chars=max_chars(name), problem=wrong.get(name)))
    return tuple(shown)


def shown_fields(registration: RegistrationFields, language: str) -> tuple[ShownField, ...]:
    """Every field of the registration in words, for reading (not for changing)."""
    return tuple(ShownField(*line) for line in field_lines(registration, language))


def version_view(row: CaseRegistration, language: str, zone: tzinfo) -> VersionView:
    """A saved version's number, author and time in the reader's words."""
    return VersionView(row.version, row.author, long_datetime(row.created_at, language, zone))
