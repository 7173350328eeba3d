"""A case's registration (issue 22): the fields of the Danish guidance's registration
template, saved as versions.

The guidance ("Sådan registreres og anmeldes digital chikane", digitalchikane.dk) asks for
the affected employee, the harasser's relation, the time or period, the medium, the type of
harassment, a short description of the course, whether it led to sick leave or other
absence, the person responsible for handling, and the actions taken. Every save is a new
version with its author and time; earlier versions are kept, and each version's SHA-256 is
in its audit event, so the chain proves what was registered when.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storage.cases import add_system_note
from storage.models import Case, CaseRegistration
from storage.note_words import REGISTRATION_SAVED
from storage.registration_codes import (
    ABSENCES,
    COARSE_RELATION,
    HARASSMENT_TYPES,
    MEDIA,
    RELATION_DETAILS,
)

# How long the free-text fields may be.
NAME_MAX_CHARS = 500
TEXT_MAX_CHARS = 10_000

_MAX_CHARS = {name: NAME_MAX_CHARS for name in ("affected_employee", "harasser", "handler")}

# The coded fields and their choices.
CHOICES: Mapping[str, Mapping[str, str]] = {
    "relation": RELATION_DETAILS,
    "medium": MEDIA,
    "harassment_type": HARASSMENT_TYPES,
    "absence": ABSENCES,
}
DATE_FIELDS = ("period_start", "period_end", "first_absence_day")
# Short texts (a name, an address) and long ones (the course, the actions).
NAME_FIELDS = ("affected_employee", "harasser", "handler")
TEXT_FIELDS = ("description", "actions_taken")
# What a registration must say before it is saved.
REQUIRED = ("affected_employee", "relation", "period_start", "medium", "harassment_type",
            "description", "absence", "handler")

# Problems a field can have (codes; the front doors word them).
MISSING = "required"
BAD_CHOICE = "invalid-choice"
BAD_DATE = "invalid-date"
TOO_LONG = "too-long"
PERIOD_ORDER = "period-order"
UNKNOWN_FIELD = "unknown-field"


@dataclass(frozen=True)
class RegistrationFields:
    """One registration: the template's fields, the coded ones as codes."""

    affected_employee: str = ""
    harasser: str = ""
    relation: str = "unknown"  # RELATION_DETAILS
    period_start: date | None = None
    period_end: date | None = None
    medium: str = ""  # MEDIA
    harassment_type: str = ""  # HARASSMENT_TYPES
    description: str = ""
    absence: str = "unknown"  # ABSENCES
    first_absence_day: date | None = None
    handler: str = ""
    actions_taken: str = ""

    def as_json(self) -> dict[str, Any]:
        """The fields as JSON values (dates as ISO 8601 days)."""
        values = asdict(self)
        for name in DATE_FIELDS:
            day = values[name]
            values[name] = day.isoformat() if day is not None else None
        return values

    @classmethod
    def from_json(cls, values: Mapping[str, Any]) -> RegistrationFields:
        """The fields as stored (unknown keys ignored, missing ones at their defaults)."""
        known = {item.name for item in fields(cls)}
        given: dict[str, Any] = {key: value for key, value in values.items() if key in known}
        for name in DATE_FIELDS:
            if given.get(name):
                given[name] = date.fromisoformat(str(given[name]))
            else:
                given[name] = None
        return cls(**given)

    @property
    def coarse_relation(self) -> str:
        """external, colleague or unknown: the case's `relation`, derived from this one."""
        return COARSE_RELATION.get(self.relation, "unknown")


FIELD_NAMES: tuple[str, ...] = tuple(item.name for item in fields(RegistrationFields))


@dataclass(frozen=True)
class FieldProblem:
    """Why one field cannot be saved as given."""

    field: str
    problem: str  # MISSING, BAD_CHOICE, BAD_DATE, TOO_LONG, PERIOD_ORDER, UNKNOWN_FIELD


def read_fields(given: Mapping[str, str], *,
                base: RegistrationFields | None = None
                ) -> tuple[RegistrationFields, list[FieldProblem]]:
    """The registration the given texts say (a form's fields, the CLI's options), over
    `base` for the fields not given; and what is wrong with it (empty: it can be saved)."""
    values: dict[str, Any] = (base or RegistrationFields()).as_json()
    problems: list[FieldProblem] = []
    for name, raw in given.items():
        text = raw.strip()
        if name not in FIELD_NAMES:
            problems.append(FieldProblem(name, UNKNOWN_FIELD))
        elif name in DATE_FIELDS:
            values[name] = _iso_day(text)
            if text and values[name] is None:
                problems.append(FieldProblem(name, BAD_DATE))
        elif name in NAME_FIELDS:
            values[name] = " ".join(text.split())
        else:
            values[name] = text.replace("\r\n", "\n")
    registration = RegistrationFields.from_json(values)
    return registration, problems + check_fields(registration,
                                                 skip={item.field for item in problems})


def _iso_day(text: str) -> str | None:
    try:
        return date.fromisoformat(text).isoformat() if text else None
    except ValueError:
        return None


def check_fields(registration: RegistrationFields, *,
                 skip: set[str] | frozenset[str] = frozenset()) -> list[FieldProblem]:
    """What keeps this registration from being saved (empty: nothing)."""
    problems: list[FieldProblem] = []
    for name in FIELD_NAMES:
        if name in skip:
            continue
        value = getattr(registration, name)
        if name in CHOICES and value and value not in CHOICES[name]:
            problems.append(FieldProblem(name, BAD_CHOICE))
        elif name in REQUIRED and (value is None or value == ""):
            problems.append(FieldProblem(name, MISSING))
        elif len(str(value or "")) > _MAX_CHARS.get(name, TEXT_MAX_CHARS):
            problems.append(FieldProblem(name, TOO_LONG))
    start, end = registration.period_start, registration.period_end
    if start is not None and end is not None and end < start and "period_end" not in skip:
        problems.append(FieldProblem("period_end", PERIOD_ORDER))
    return problems


def fields_sha256(registration: RegistrationFields) -> str:
    """SHA-256 of the registration's canonical JSON (sorted keys, UTF-8, no spaces)."""
    canonical = json.dumps(registration.as_json(), sort_keys=True, ensure_ascii=False,
                           separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def latest_registration(session: Session, case_id: int) -> CaseRegistration | None:
    """The case's newest saved registration, if it has one."""
    return session.execute(
        select(CaseRegistration).where(CaseRegistration.case_id == case_id)
        .order_by(CaseRegistration.version.desc()).limit(1)).scalar_one_or_none()


def registration_versions(session: Session, case_id: int) -> list[CaseRegistration]:
    """Every saved version of the case's registration, oldest first."""
    return list(session.execute(
        select(CaseRegistration).where(CaseRegistration.case_id == case_id)
        .order_by(CaseRegistration.version)).scalars())


def save_registration(session: Session, case: Case, registration: RegistrationFields, *,
                      author: str, now: datetime) -> CaseRegistration:
    """Save the registration as the case's next version, in the caller's transaction: the
    row, the case's copies of its coded fields, and a note whose audit event holds the
    version and its SHA-256. The caller has checked it (check_fields) and locked the case."""
    problems = check_fields(registration)
    if problems:
        raise ValueError(f"registration not saveable: {problems}")
    last = session.execute(select(func.max(CaseRegistration.version))
                           .where(CaseRegistration.case_id == case.id)).scalar_one_or_none()
    digest = fields_sha256(registration)
    row = CaseRegistration(case_id=case.id, version=(last or 0) + 1,
                           fields=registration.as_json(), fields_sha256=digest,
                           author=author, created_at=now)
    session.add(row)
    case.registration_version = row.version
    case.relation_detail = registration.relation
    case.harassment_type = registration.harassment_type
    case.absence = registration.absence
    session.flush()
    add_system_note(session, case, REGISTRATION_SAVED, {"version": row.version},
                    author=author, now=now, action=REGISTRATION_SAVED,
                    details={"version": row.version, "fields_sha256": digest})
    return row


def stored_fields(row: CaseRegistration) -> RegistrationFields:
    """A saved version's fields."""
    return RegistrationFields.from_json(row.fields)
