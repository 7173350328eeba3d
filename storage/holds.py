"""Legal holds: a held case outlives its retention period until the hold is lifted.

A hold can be set on an open or a closed case; it stays when the case closes. Each change is
an audit event (`hold-set`, `hold-lifted`) whose details carry the admin's short reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from storage import audit
from storage.cases import lock_case
from storage.database import Database
from storage.models import Case

# A hold's reason is a short admin note ("police case 1234/2031"), not a document.
MAX_REASON_LENGTH = 500

HOLD_SET = "set"
HOLD_LIFTED = "lifted"
HOLD_ALREADY = "already"  # nothing to change: held with this reason, or not held


@dataclass(frozen=True)
class HoldResult:
    """How setting or lifting a hold went, and the hold as it is now."""

    number: str
    outcome: str  # set, lifted, already
    legal_hold: bool
    reason: str | None


def clean_reason(reason: str) -> str:
    """The reason as stored: trimmed; ValueError when empty or longer than allowed."""
    text = " ".join(reason.split())
    if not text:
        raise ValueError("a legal hold needs a reason")
    if len(text) > MAX_REASON_LENGTH:
        raise ValueError(f"the reason is longer than {MAX_REASON_LENGTH} characters")
    return text


def set_hold(database: Database, number: str, reason: str, actor: str,
             now: datetime) -> HoldResult:
    """Put the case on legal hold (or give its hold a new reason); committed with a
    `hold-set` event. CaseError if there is no such case, ValueError for a bad reason."""
    text = clean_reason(reason)
    with database.write() as session:
        return hold_case(session, lock_case(session, number), text, actor, now)


def hold_case(session: Session, case: Case, reason: str, actor: str,
              now: datetime) -> HoldResult:
    """Put a case the caller has locked on legal hold (or give its hold a new reason), in
    the caller's transaction, with its `hold-set` event. ValueError for a bad reason."""
    text = clean_reason(reason)
    if case.legal_hold and case.hold_reason == text:
        return HoldResult(case.number, HOLD_ALREADY, True, text)
    previous = case.hold_reason if case.legal_hold else None
    case.legal_hold = True
    case.hold_reason = text
    case.held_at = now
    case.held_by = actor
    details: dict[str, str] = {"reason": text}
    if previous is not None:
        details["previous_reason"] = previous
    audit.record(session, "hold-set", actor=actor, case=case, now=now, details=details)
    return HoldResult(case.number, HOLD_SET, True, text)


def lift_hold(database: Database, number: str, actor: str, now: datetime) -> HoldResult:
    """Lift the case's legal hold; committed with a `hold-lifted` event naming the hold's
    reason, who set it and when. CaseError if there is no such case."""
    with database.write() as session:
        return lift_case_hold(session, lock_case(session, number), actor, now)


def lift_case_hold(session: Session, case: Case, actor: str, now: datetime) -> HoldResult:
    """Lift the legal hold of a case the caller has locked, in the caller's transaction,
    with its `hold-lifted` event."""
    if not case.legal_hold:
        return HoldResult(case.number, HOLD_ALREADY, False, None)
    details = {"reason": case.hold_reason,
               "held_at": audit.format_utc(case.held_at) if case.held_at else None,
               "held_by": case.held_by}
    case.legal_hold = False
    case.hold_reason = None
    case.held_at = None
    case.held_by = None
    audit.record(session, "hold-lifted", actor=actor, case=case, now=now, details=details)
    return HoldResult(case.number, HOLD_LIFTED, False, None)
