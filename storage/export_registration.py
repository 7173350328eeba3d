"""The registration of a case in its evidence bundle (issue 22): `registration.json` (every
saved version with its SHA-256, and the EASY record) and what `registration.html` and the
report's "Registration" section show.

The JSON keeps the codes and ISO 8601 times with their offset; the pages read the codes in
words (storage.registration_words) in the export's language and zone. A version's
`fields_sha256` is the one its `registration-saved` audit event holds, so a reader can tie
each version to the chain of custody.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any

from storage.audit import format_utc
from storage.models import Case, CaseRegistration
from storage.registration_words import easy_deadline, field_lines, guidance_words
from storage.registrations import stored_fields
from storage.time_text import evidence_datetime, long_date

REGISTRATION_JSON = "registration.json"
REGISTRATION_HTML = "registration.html"
REGISTRATION_FORMAT = "chikanemail-registration"
REGISTRATION_FORMAT_VERSION = 1


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def iso_local(moment: datetime | None, zone: tzinfo) -> str | None:
    """The moment as ISO 8601 in the workplace's zone, with its offset."""
    return _aware(moment).astimezone(zone).isoformat() if moment is not None else None


def easy_json(case: Case, zone: tzinfo) -> dict[str, Any]:
    """The EASY record of the case: the deadline its first day of absence sets, and what was
    recorded of the report (nulls until it is)."""
    deadline = easy_deadline(case.first_absence_day)
    return {
        "case": case.number,
        "first_absence_day": (case.first_absence_day.isoformat()
                              if case.first_absence_day else None),
        "deadline": deadline.isoformat() if deadline else None,
        "easy_case_number": case.easy_case_number,
        "reported_on": case.easy_reported_on.isoformat() if case.easy_reported_on else None,
        "recorded_at": iso_local(case.easy_recorded_at, zone),
        "recorded_by": case.easy_recorded_by,
    }


def registration_json(case: Case, versions: Sequence[CaseRegistration],
                      zone: tzinfo) -> dict[str, Any]:
    """registration.json: every version, oldest first, and the EASY record."""
    return {
        "format": REGISTRATION_FORMAT,
        "format_version": REGISTRATION_FORMAT_VERSION,
        "case": case.number,
        "versions": [{
            "version": row.version,
            "author": row.author,
            "created_at": iso_local(row.created_at, zone),
            "created_at_utc": format_utc(_aware(row.created_at)),
            "fields_sha256": row.fields_sha256,
            "fields": stored_fields(row).as_json(),
        } for row in versions],
        "easy": easy_json(case, zone),
    }


def _version_view(row: CaseRegistration, language: str, zone: tzinfo) -> dict[str, Any]:
    fields = stored_fields(row)
    return {
        "version": row.version,
        "author": row.author,
        "saved": evidence_datetime(row.created_at, language, zone),
        "fields_sha256": row.fields_sha256,
        "lines": [{"name": name, "label": label, "value": value}
                  for name, label, value in field_lines(fields, language)],
        "guidance": guidance_words(fields, language),
    }


def easy_view(case: Case, language: str, zone: tzinfo) -> dict[str, Any]:
    """The EASY record in words (None where nothing is known)."""
    deadline = easy_deadline(case.first_absence_day)
    return {
        "first_absence_day": (long_date(case.first_absence_day, language)
                              if case.first_absence_day else None),
        "deadline": long_date(deadline, language) if deadline else None,
        "easy_case_number": case.easy_case_number,
        "reported_on": (long_date(case.easy_reported_on, language)
                        if case.easy_reported_on else None),
        "recorded_at": (evidence_datetime(case.easy_recorded_at, language, zone)
                        if case.easy_recorded_at else None),
        "recorded_by": case.easy_recorded_by,
    }


def registration_view(case: Case, versions: Sequence[CaseRegistration], language: str,
                      zone: tzinfo) -> dict[str, Any]:
    """What registration.html and the report's section show: the versions newest first,
    each field labelled and in words, and the EASY record."""
    shown = [_version_view(row, language, zone) for row in reversed(versions)]
    return {
        "number": case.number,
        "count": len(shown),
        "versions": shown,
        "newest": shown[0] if shown else None,
        "easy": easy_view(case, language, zone),
        "file": REGISTRATION_HTML,
    }
