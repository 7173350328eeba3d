"""The notes the system writes, in the reader's language.

A note the system writes (the case acknowledged, a step done, the case closed, …) is stored
as a code with parameters (`case_note.code`, `case_note.params`) and read through
`render_note()` in the language of whoever reads it: an English export of a Danish case
reads English. Its `text` column keeps the English words, whose SHA-256 the note's audit
event holds. A person's own words, and every note written before codes existed (code NULL),
are shown as their text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from storage.audit_words import MEDIUMS, RELATIONS
from storage.i18n.catalogs import translations
from storage.models import CaseNote
from storage.time_text import long_datetime, stored_day_words
from storage.ui_settings import UiSettings

# The language of the `text` column, read by anything that predates the codes.
TEXT_LANGUAGE = "en"

ACKNOWLEDGED = "acknowledged"
STEP_DONE = "step-done"
ABSENCE = "absence-recorded"
RELATION = "relation-set"
MEDIUM = "medium-set"
WITNESS = "witness-added"
CLOSED = "closed"
ASSIGNED = "assigned"
NO_TEXT = "no-text"
REGISTRATION_SAVED = "registration-saved"
EASY_REPORTED = "easy-reported"


def step_param(position: int, key: str, titles: Mapping[str, str]) -> dict[str, Any]:
    """How a note's parameters name a step: its number, key and title per language."""
    return {"step": position, "key": key, "titles": dict(titles)}


def render_note(note: CaseNote, language: str, zone: tzinfo | None = None) -> str:
    """The note as a reader of `language` reads it (a person's words as they wrote them),
    its times in `zone` ([ui] timezone; the default zone when not given)."""
    if note.code is None:
        return note.text
    return note_text(note.code, note.params or {}, language, fallback=note.text, zone=zone)


def note_text(code: str, params: Mapping[str, Any], language: str, *,
              fallback: str | None = None, zone: tzinfo | None = None) -> str:
    """A coded note in `language`, its times in `zone`; an unknown code shows `fallback`
    (else the code)."""
    words = _SENTENCES.get(code)
    if words is None:
        return fallback if fallback is not None else code
    reader = _Reader(translations(language).gettext, language,
                     zone if zone is not None else UiSettings().zone)
    return words(reader.gettext, params, reader)


_Gettext = Callable[[str], str]


@dataclass(frozen=True)
class _Reader:
    """Who a note is written for: the catalog's gettext, the language and the zone."""

    gettext: _Gettext
    language: str
    zone: tzinfo


def _title(step: Mapping[str, Any], language: str) -> str:
    titles = step.get("titles") or {}
    return str(titles.get(language) or step.get("key") or "")


def _acknowledged(_: _Gettext, params: Mapping[str, Any], reader: _Reader) -> str:
    return _("Acknowledged the case.")


def _step_done(_: _Gettext, params: Mapping[str, Any], reader: _Reader) -> str:
    return _("Step %(step)s (%(title)s) done.") % {"step": params.get("step"),
                                                    "title": _title(params, reader.language)}



def _absence(_: _Gettext, params: Mapping[str, Any], reader: _Reader) -> str:
    values = {"day": stored_day_words(params.get("day"), reader.language),
              "previous": stored_day_words(params.get("previous"), reader.language)}
    text = (_("First day of absence: %(day)s (was %(previous)s).") if params.get("previous")
            else _("First day of absence: %(day)s.")) % values
    for step in params.get("deadlines") or []:
        due = step.get("due")
        shown = (long_datetime(datetime.fromisoformat(due), reader.language, reader.zone)
                 if due else "—")
        text += " " + _("Step %(step)s (%(title)s) is due %(due)s.") % {
            "step": step.get("step"), "title": _title(step, reader.language), "due": shown}
    return text


def _relation(_: _Gettext, params: Mapping[str, Any], reader: _Reader) -> str:
    code = str(params.get("relation"))
    return _("The harasser is: %(relation)s.") % {
        "relation": _(RELATIONS[code]) if code in RELATIONS else code}


def _medium(_: _Gettext, params: Mapping[str, Any], reader: _Reader) -> str:
    code = str(params.get("medium"))
    return _("Medium: %(medium)s.") % {"medium": _(MEDIUMS[code]) if code in MEDIUMS else code}


def _witness(_: _Gettext, params: Mapping[str, Any], reader: _Reader) -> str:
    return _("Witness: %(witness)s") % {"witness": params.get("witness")}


def _closed(_: _Gettext, params: Mapping[str, Any], reader: _Reader) -> str:
    reason = params.get("reason") or _("closed by reply")
    text = _("Closed: %(reason)s.") % {"reason": reason}
    steps = params.get("open_steps") or []
    if steps:
        text += " " + _("Steps not done: %(steps)s.") % {"steps": ", ".join(
            f"{step.get('step')} ({_title(step, reader.language)})" for step in steps)}
    return text


def _assigned(_: _Gettext, params: Mapping[str, Any], reader: _Reader) -> str:
    manager, previous = params.get("manager"), params.get("previous")
    text = (_("Assigned to %(manager)s (was %(previous)s).") if manager != previous
            else _("Manager stays %(manager)s.")) % {"manager": manager, "previous": previous}
    deputy, previous_deputy = params.get("deputy"), params.get("previous_deputy")
    if deputy != previous_deputy:
        text += " " + _("Deputy %(deputy)s (was %(previous)s).") % {
            "deputy": deputy or _("nobody"), "previous": previous_deputy or _("nobody")}
    return text


def _no_text(_: _Gettext, params: Mapping[str, Any], reader: _Reader) -> str:
    return _("(no text)")


def _registration_saved(_: _Gettext, params: Mapping[str, Any], reader: _Reader) -> str:
    return _("Registration saved (version %(version)s).") % {"version": params.get("version")}


def _easy_reported(_: _Gettext, params: Mapping[str, Any], reader: _Reader) -> str:
    return _("Reported to Arbejdstilsynet through EASY on %(day)s, EASY case number "
             "%(number)s.") % {"day": stored_day_words(params.get("day"), reader.language),
                               "number": params.get("number")}


_SENTENCES: Mapping[str, Callable[[_Gettext, Mapping[str, Any], _Reader], str]] = {
    ACKNOWLEDGED: _acknowledged, STEP_DONE: _step_done, ABSENCE: _absence,
    RELATION: _relation, MEDIUM: _medium, WITNESS: _witness, CLOSED: _closed,
    ASSIGNED: _assigned, NO_TEXT: _no_text, REGISTRATION_SAVED: _registration_saved,
    EASY_REPORTED: _easy_reported,
}
