"""A registration (issue 22) as people read it: each field's label, its value in words, what
is wrong with a field, the GDPR reminder, and the EASY deadline.

The CLI, the web form and the export read a registration through these tables, so a field
is called the same everywhere. Codes stay codes in JSON; people read the words.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from types import MappingProxyType

from storage.i18n.catalogs import N_, translations
from storage.registration_codes import GUIDANCE
from storage.registrations import CHOICES, DATE_FIELDS, FIELD_NAMES, RegistrationFields
from storage.time_text import long_date

# Each field of RegistrationFields, as the guidance's template names it.
FIELD_LABELS: Mapping[str, str] = MappingProxyType({
    "affected_employee": N_("Affected employee"),
    "harasser": N_("Harasser"),
    "relation": N_("The harasser's relation to the employee or the workplace"),
    "period_start": N_("When: first day"),
    "period_end": N_("When: last day (if it went on for a period)"),
    "medium": N_("Where it happened (medium)"),
    "harassment_type": N_("Type of harassment"),
    "description": N_("Short description of what happened"),
    "absence": N_("Sick leave or other absence"),
    "first_absence_day": N_("First day of absence"),
    "handler": N_("Responsible for handling the case"),
    "actions_taken": N_("Actions taken"),
})
assert tuple(FIELD_LABELS) == FIELD_NAMES, "a label for every field, in the form's order"

# What can be wrong with a field (storage.registrations' problem codes).
PROBLEMS: Mapping[str, str] = MappingProxyType({
    "required": N_("must be filled in"),
    "invalid-choice": N_("is not one of the choices"),
    "invalid-date": N_("is not a date (YYYY-MM-DD)"),
    "too-long": N_("is too long"),
    "period-order": N_("ends before the period starts"),
    "unknown-field": N_("is not a field of the registration"),
})

GDPR_REMINDER = N_(
    "Remember the GDPR: register only what the case needs, share it only with those who "
    "need it, and keep it no longer than necessary.")

# Arbejdstilsynet is told of a work injury with absence within 14 days of its first day
# (BEK nr. 941 of 2022, § 9).
EASY_DEADLINE_DAYS = 14


def easy_deadline(first_absence_day: date | None) -> date | None:
    """The last day to report the work injury through EASY; None without an absence."""
    if first_absence_day is None:
        return None
    return first_absence_day + timedelta(days=EASY_DEADLINE_DAYS)


def field_label(name: str, language: str) -> str:
    """A field's label in the language."""
    return translations(language).gettext(FIELD_LABELS.get(name, name))


def value_words(name: str, value: object, language: str) -> str:
    """A field's value as a person reads it: a code in words, a day written out; empty
    for nothing."""
    if value is None or value == "":
        return ""
    if name in CHOICES:
        msgid = CHOICES[name].get(str(value))
        return translations(language).gettext(msgid) if msgid else str(value)
    if name in DATE_FIELDS:
        day = value if isinstance(value, date) else date.fromisoformat(str(value))
        return long_date(day, language)
    return str(value)


def field_lines(registration: RegistrationFields,
                language: str) -> list[tuple[str, str, str]]:
    """Every field in the form's order as (name, label, value in words)."""
    values = registration.as_json()
    return [(name, field_label(name, language), value_words(name, values[name], language))
            for name in FIELD_NAMES]


def guidance_words(registration: RegistrationFields, language: str) -> str:
    """Which part of the guidance applies, by the harasser's relation."""
    return translations(language).gettext(GUIDANCE[registration.coarse_relation])


def problem_words(problem: str, language: str) -> str:
    """What is wrong with a field, in words."""
    msgid = PROBLEMS.get(problem)
    return translations(language).gettext(msgid) if msgid else problem
