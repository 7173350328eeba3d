"""Links between cases that look related, and the groups they form."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from storage import audit
from storage.database import Database
from storage.models import Case, CaseLink

# The name of the lock that serialises linking new cases; its PostgreSQL advisory-lock key
# is `storage.leader.advisory_key(CASE_LINKING_LOCK, schema)`, so that installations in
# different schemas of one database do not wait for each other.
CASE_LINKING_LOCK = "chikanemail.case-linking"
# The same key, computed by the server in the one statement that takes the lock: the first
# 8 bytes of SHA-256(schema NUL name), read as a signed 64-bit integer.
_TAKE_LINKING_LOCK = text(
    "SELECT pg_advisory_xact_lock(('x' || encode(substring(sha256("
    "convert_to(current_schema(), 'UTF8') || '\\x00'::bytea || convert_to(:name, 'UTF8')"
    ") FROM 1 FOR 8), 'hex'))::bit(64)::bigint)")


def lock_case_linking(session: Session) -> None:
    """Wait until no other transaction is linking cases, and keep the others waiting until
    this one ends (commit or rollback), so that a transaction that links a new case sees
    every case opened (and committed) by the ones before it.

    On PostgreSQL a transaction-scoped advisory lock (CASE_LINKING_LOCK). On SQLite nothing
    is needed: write transactions begin with BEGIN IMMEDIATE (`storage.database`), so only
    one writes at a time and it sees everything committed before it began.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_TAKE_LINKING_LOCK, {"name": CASE_LINKING_LOCK})


@dataclass(frozen=True)
class RelatedCase:
    """Another case linked to one case, and why (each reason once)."""

    number: str
    manager: str
    status: str
    reasons: tuple[tuple[str, str], ...]  # (reason, detail)


@dataclass(frozen=True)
class NewLink:
    """A link to make from one case: the other case, why, and the detail (address, domain,
    image distance)."""

    other_case_id: int
    reason: str
    detail: str


def link_cases(session: Session, case_id: int, links: Iterable[NewLink], *,
               now: datetime) -> int:
    """Link a case to others both ways, in the caller's transaction, each link recorded in
    the audit log; how many were new (a link made before is left as it is)."""
    wanted: dict[tuple[int, str], NewLink] = {}
    for link in links:
        wanted.setdefault((link.other_case_id, link.reason), link)
    if not wanted:
        return 0
    existing = {(row.other_case_id, row.reason) for row in session.execute(
        select(CaseLink.other_case_id, CaseLink.reason)
        .where(CaseLink.case_id == case_id,
               CaseLink.other_case_id.in_(sorted({other for other, _ in wanted}))))}
    new = [link for key, link in wanted.items() if key not in existing]
    numbers = dict(session.execute(select(Case.id, Case.number).where(
        Case.id.in_(sorted({case_id, *(link.other_case_id for link in new)})))).all())
    number = numbers.get(case_id)
    for link in new:
        session.add(CaseLink(case_id=case_id, other_case_id=link.other_case_id,
                             reason=link.reason, detail=link.detail, created_at=now))
        session.add(CaseLink(case_id=link.other_case_id, other_case_id=case_id,
                             reason=link.reason, detail=link.detail, created_at=now))
    session.flush()
    for link in new:
        other = numbers.get(link.other_case_id)
        audit.record(session, "case-linked", case_number=number, now=now,
                     details={"other": other, "reason": link.reason})
        audit.record(session, "case-linked", case_number=other, now=now,
                     details={"other": number, "reason": link.reason})
    return len(new)


def related_cases(session: Session, case_id: int) -> list[RelatedCase]:
    """The cases linked to this one, oldest first."""
    rows = session.execute(
        select(CaseLink, Case).join(Case, Case.id == CaseLink.other_case_id)
        .where(CaseLink.case_id == case_id).order_by(Case.id, CaseLink.id)
    ).all()
    grouped: dict[int, tuple[Case, list[tuple[str, str]]]] = {}
    for link, other in rows:
        grouped.setdefault(other.id, (other, []))[1].append((link.reason, link.detail))
    return [RelatedCase(other.number, other.manager, other.status, tuple(reasons))
            for other, reasons in grouped.values()]


@dataclass(frozen=True)
class PatternGroup:
    """Cases connected by links (directly or through each other), with every reason."""

    cases: tuple[Case, ...]
    reasons: tuple[tuple[str, str], ...]  # (reason, detail), each once


def pattern_groups(database: Database) -> list[PatternGroup]:
    """Every group of two or more linked cases, the group with the newest case first
    (cases detached)."""
    with database.read() as session:
        links = list(session.execute(select(CaseLink).order_by(CaseLink.id)).scalars())
        parent: dict[int, int] = {}

        def root(case_id: int) -> int:
            while parent.setdefault(case_id, case_id) != case_id:
                parent[case_id] = parent[parent[case_id]]
                case_id = parent[case_id]
            return case_id

        for link in links:
            parent[root(link.case_id)] = root(link.other_case_id)
        members: dict[int, set[int]] = {}
        for case_id in list(parent):
            members.setdefault(root(case_id), set()).add(case_id)
        reasons: dict[int, list[tuple[str, str]]] = {}
        for link in links:
            group = reasons.setdefault(root(link.case_id), [])
            if (link.reason, link.detail) not in group:
                group.append((link.reason, link.detail))
        cases = {case.id: case for case in session.execute(
            select(Case).where(Case.id.in_(list(parent)))).scalars()}
        session.expunge_all()
    groups = [
        PatternGroup(tuple(sorted((cases[member] for member in ids), key=lambda c: c.id)),
                     tuple(reasons.get(key, ())))
        for key, ids in members.items() if len(ids) > 1
    ]
    groups.sort(key=lambda group: -max(case.id for case in group.cases))
    return groups
