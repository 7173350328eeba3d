"""The case list's query on SQLite and PostgreSQL: filters, search, counts, pages, order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import true

from intake.web.access import Viewer, visible_cases
from intake.web.pages.case_list import CaseFilters, list_cases, managed_by, parse_filters
from storage.cases import format_case_number
from storage.database import Database
from storage.models import Case, CaseLink, CaseStep, Message

NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)


def _case(session, sequence: int, *, manager: str = "leder@skole.example",
          status: str = "open", escalation: int = 0, deputy: str | None = None,
          reporter: str = "ansat@skole.example") -> Case:
    case = Case(number=format_case_number(2026, sequence), year=2026, sequence=sequence,
                status=status, reporter=reporter, reporter_name=None, manager=manager,
                deputy=deputy, language="da", routing_source="default",
                routing_reason="default", opened_at=NOW - timedelta(days=30 - sequence),
                escalation_level=escalation)
    session.add(case)
    session.flush()
    return case


def _build(database: Database) -> None:
    with database.write() as session:
        first = _case(session, 1)
        second = _case(session, 2, status="closed")
        third = _case(session, 3, manager="anden@skole.example", escalation=1,
                      deputy="leder@skole.example")
        fourth = _case(session, 4, manager="anden@skole.example",
                       reporter="lærer@skole.example")
        session.add(CaseStep(case_id=first.id, position=1, key="first", title_da="t",
                             title_en="t", description_da="d", description_en="d",
                             owner="manager", due_after="intake",
                             due_at=NOW - timedelta(hours=1)))
        session.add_all([
            CaseLink(case_id=first.id, other_case_id=fourth.id, reason="sender",
                     detail="x@y", created_at=NOW),
            CaseLink(case_id=fourth.id, other_case_id=first.id, reason="sender",
                     detail="x@y", created_at=NOW)])
        session.add(Message(sha256="a" * 64, size=1, source="smtp", rcpt_tos=[],
                            received_at=NOW, last_seen_at=NOW, state="processed",
                            case_id=second.id, original_rule="attached-message",
                            original_from_address="Plager@Example.COM"))
        del third


def _numbers(listing) -> list[str]:
    return [row.number for row in listing.rows]


def test_a_manager_sees_their_cases_newest_first_with_counts(database: Database) -> None:
    _build(database)
    viewer = Viewer(address="leder@skole.example", language="da")
    with database.read() as session:
        listing = list_cases(session, visible_cases(viewer), true(), CaseFilters(), NOW)
    # Case 3 is escalated to the manager as deputy; case 4 is another manager's alone.
    assert _numbers(listing) == ["2026-0003", "2026-0002", "2026-0001"]
    assert listing.counts["mine"] == 3 and listing.counts["all"] == 3
    assert listing.counts["open"] == 2 and listing.counts["closed"] == 1
    assert listing.counts["overdue"] == 1 and listing.counts["escalated"] == 1
    assert listing.counts["related"] == 1
    assert listing.rows[-1].overdue and not listing.rows[0].overdue


def test_filters_and_search(database: Database) -> None:
    _build(database)
    admin = visible_cases(Viewer(address="admin@skole.example", language="da", is_admin=True))

    def numbers(**params: str) -> list[str]:
        with database.read() as session:
            return _numbers(list_cases(session, admin, managed_by("admin@skole.example"),
                                       parse_filters({"scope": "all", **params}), NOW))

    assert numbers() == ["2026-0004", "2026-0003", "2026-0002", "2026-0001"]
    assert numbers(status="closed") == ["2026-0002"]
    assert numbers(overdue="1") == ["2026-0001"]
    assert numbers(escalated="1") == ["2026-0003"]
    assert numbers(related="1") == ["2026-0004", "2026-0001"]
    assert numbers(q="2026-0004") == ["2026-0004"]
    assert numbers(q="LÆRER@skole") == ["2026-0004"]
    assert numbers(q="plager@example.com") == ["2026-0002"]
    assert numbers(q="100%_") == []
    # An admin's own cases: none.
    with database.read() as session:
        assert list_cases(session, admin, managed_by("admin@skole.example"), CaseFilters(),
                          NOW).total == 0
        # The manager's own, as an admin would see them.
        own = list_cases(session, admin, managed_by("leder@skole.example"), CaseFilters(), NOW)
    assert _numbers(own) == ["2026-0003", "2026-0002", "2026-0001"]


def test_pages_hold_page_size_cases_and_clamp(database: Database) -> None:
    with database.write() as session:
        for sequence in range(1, 8):
            _case(session, sequence)
    with database.read() as session:
        second = list_cases(session, true(), true(),
                            parse_filters({"page": "2"}), NOW, page_size=3)
        beyond = list_cases(session, true(), true(),
                            parse_filters({"page": "99"}), NOW, page_size=3)
    assert _numbers(second) == ["2026-0004", "2026-0003", "2026-0002"]
    assert second.pages == 3 and second.total == 7
    assert beyond.filters.page == 3 and _numbers(beyond) == ["2026-0001"]


def test_unknown_filter_values_fall_back_to_the_default() -> None:
    filters = parse_filters({"scope": "everyone", "status": "x", "page": "-3",
                             "overdue": "yes", "q": "  a \n b  "})
    assert filters == CaseFilters(search="a b")
    assert CaseFilters(status="open").query(overdue=True) == {
        "scope": "mine", "status": "open", "overdue": "1"}
