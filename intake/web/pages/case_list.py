"""The case list's query: which cases a viewer sees under the chosen filters, one page of
them newest first, and how many cases each filter would show."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, exists, func, or_, select, true
from sqlalchemy.orm import Session

from storage.models import Case, CaseLink, CaseStatus, CaseStep, Message

PAGE_SIZE = 25
SCOPES = ("mine", "all")
STATUSES = ("open", "closed")
# The yes/no filters, in the order the page offers them.
FLAGS = ("overdue", "escalated", "related")
# A search longer than this is cut: nobody types more, and LIKE patterns stay cheap.
MAX_SEARCH = 200
_CASE_NUMBER_PART = re.compile(r"^\d{1,4}(-\d{0,6})?$")


@dataclass(frozen=True)
class CaseFilters:
    """What the viewer asked the list for (from the query string, always valid)."""

    scope: str = "mine"
    status: str = ""
    overdue: bool = False
    escalated: bool = False
    related: bool = False
    search: str = ""
    page: int = 1

    def query(self, **changes: Any) -> dict[str, str]:
        """The query string of these filters with `changes` applied (page 1 unless given),
        leaving out what is at its default."""
        changed = replace(self, **{"page": 1, **changes})
        values: dict[str, str] = {"scope": changed.scope}
        if changed.status:
            values["status"] = changed.status
        for flag in FLAGS:
            if getattr(changed, flag):
                values[flag] = "1"
        if changed.search:
            values["q"] = changed.search
        if changed.page > 1:
            values["page"] = str(changed.page)
        return values


def parse_filters(params: Mapping[str, str]) -> CaseFilters:
    """The filters a query string asks for; anything unknown falls back to the default."""
    scope = params.get("scope", "mine")
    status = params.get("status", "")
    try:
        page = max(1, min(int(params.get("page", "1")), 1_000_000))
    except ValueError:
        page = 1
    return CaseFilters(
        scope=scope if scope in SCOPES else "mine",
        status=status if status in STATUSES else "",
        overdue=params.get("overdue") == "1",
        escalated=params.get("escalated") == "1",
        related=params.get("related") == "1",
        search=" ".join(params.get("q", "").split())[:MAX_SEARCH],
        page=page,
    )


@dataclass(frozen=True)
class CaseRow:
    """One case as the list shows it."""

    number: str
    status: str
    reporter: str
    reporter_name: str | None
    manager: str
    deputy: str | None
    opened_at: datetime
    escalation_level: int
    overdue: bool


@dataclass(frozen=True)
class CaseListing:
    """One page of the list, how many cases match in all, and the count of each filter."""

    filters: CaseFilters
    rows: tuple[CaseRow, ...]
    total: int
    pages: int
    counts: Mapping[str, int] = field(default_factory=dict)


def overdue_condition(now: datetime) -> ColumnElement[bool]:
    """An open case with a step not done whose deadline has passed."""
    # Correlated, so each open case probes its own few steps by the case_id index instead
    # of the database collecting every late step of every case first.
    late_step = exists().where(CaseStep.case_id == Case.id, CaseStep.done_at.is_(None),
                               CaseStep.due_at < now)
    return and_(Case.status == CaseStatus.OPEN, late_step)


def escalated_condition() -> ColumnElement[bool]:
    """A case that went past its manager to the deputy or the default manager."""
    return Case.escalation_level > 0


def related_condition() -> ColumnElement[bool]:
    """A case linked to at least one other."""
    # Not correlated: the linked cases are few, gathered once, then looked up per case.
    return Case.id.in_(select(CaseLink.case_id))


def search_condition(text: str) -> ColumnElement[bool]:
    """Cases whose number, reporter or harasser (the forwarded original's sender) matches.

    A case number (or its start, "2026-00") matches numbers from the start; anything else
    matches a part of the reporter's address or name and of the harasser's address, case
    folded.
    """
    if _CASE_NUMBER_PART.match(text):
        return Case.number.like(_escape_like(text) + "%", escape="\\")
    pattern = "%" + _escape_like(text.lower()) + "%"
    harassed_by = select(Message.case_id).where(
        func.lower(Message.original_from_address).like(pattern, escape="\\"),
        Message.case_id.is_not(None))
    return or_(func.lower(Case.reporter).like(pattern, escape="\\"),
               func.lower(Case.reporter_name).like(pattern, escape="\\"),
               Case.id.in_(harassed_by))


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def managed_by(address: str) -> ColumnElement[bool]:
    """Cases the address manages, or holds as deputy while escalated: an admin's own."""
    return or_(func.lower(Case.manager) == address,
               and_(func.lower(Case.deputy) == address, escalated_condition()))


def list_cases(session: Session, visible: ColumnElement[bool], mine: ColumnElement[bool],
               filters: CaseFilters, now: datetime, *,
               page_size: int = PAGE_SIZE) -> CaseListing:
    """One page of the cases `visible` lets the viewer see, under `filters`, newest first,
    with the number of cases each filter choice would show; `mine` is what the scope
    "mine" keeps of them."""
    conditions = {
        "overdue": overdue_condition(now),
        "escalated": escalated_condition(),
        "related": related_condition(),
    }
    base = [visible]
    if filters.search:
        base.append(search_condition(filters.search))
    scoped = [*base, mine if filters.scope == "mine" else true()]
    chosen = list(scoped)
    if filters.status:
        chosen.append(Case.status == filters.status)
    chosen += [conditions[flag] for flag in FLAGS if getattr(filters, flag)]

    counts = _counts(session, base, scoped, chosen, conditions, mine)
    total = counts["shown"]
    pages = max(1, -(-total // page_size))
    page = min(filters.page, pages)
    # The page's ids first (a narrow sort), then their rows: the sort never carries every
    # matching case's columns.
    page_ids = list(session.execute(
        select(Case.id).where(*chosen)
        .order_by(Case.year.desc(), Case.sequence.desc())
        .limit(page_size).offset((page - 1) * page_size)).scalars())
    by_id = {row.id: row for row in session.execute(
        select(Case.id, Case.number, Case.status, Case.reporter, Case.reporter_name,
               Case.manager, Case.deputy, Case.opened_at, Case.escalation_level)
        .where(Case.id.in_(page_ids)))} if page_ids else {}
    rows = [by_id[case_id] for case_id in page_ids]
    # Asked of the page's cases alone, through the index of steps not done.
    late = set(session.execute(select(CaseStep.case_id).where(
        CaseStep.case_id.in_([row.id for row in rows if row.status == CaseStatus.OPEN]),
        CaseStep.done_at.is_(None), CaseStep.due_at < now).distinct()).scalars()) \
        if rows else set()
    return CaseListing(
        filters=replace(filters, page=page),
        rows=tuple(CaseRow(number=row.number, status=row.status, reporter=row.reporter,
                           reporter_name=row.reporter_name, manager=row.manager,
                           deputy=row.deputy, opened_at=row.opened_at,
                           escalation_level=row.escalation_level,
                           overdue=row.id in late) for row in rows),
        total=total, pages=pages, counts=counts)


def _counts(session: Session, base: list[ColumnElement[bool]],
            scoped: list[ColumnElement[bool]], chosen: list[ColumnElement[bool]],
            conditions: Mapping[str, ColumnElement[bool]],
            mine: ColumnElement[bool]) -> dict[str, int]:
    """How many cases each choice shows, in one pass over the visible cases: `mine` and
    `all` under the search; each status and flag within the chosen scope; `shown` under
    every filter chosen."""

    def counted(*where: ColumnElement[bool]) -> Any:
        return func.coalesce(func.sum(case((and_(*where), 1), else_=0)), 0)

    columns = {
        "mine": counted(mine),
        "all": func.count(),
        "shown": counted(*chosen[len(base):]) if len(chosen) > len(base) else func.count(),
        "open": counted(*scoped[len(base):], Case.status == CaseStatus.OPEN),
        "closed": counted(*scoped[len(base):], Case.status == CaseStatus.CLOSED),
        **{flag: counted(*scoped[len(base):], condition)
           for flag, condition in conditions.items()},
    }
    row = session.execute(
        select(*(column.label(name) for name, column in columns.items())).select_from(Case)
        .where(*base)).one()
    return {name: int(row._mapping[name]) for name in columns}
