"""Who sees which case (issue 20, point 4), on SQLite and PostgreSQL: the list's WHERE
clause and the check of one case agree, and both read the case as it is now."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import select

from intake.cases.routing import RoutingSettings
from intake.service.config import AppConfig
from intake.web.access import can_see, case_for_viewer, viewer_for, visible_cases
from notifier.plan.settings import PlanSettings
from notifier.settings import NotifySettings
from storage.cases import open_case
from storage.database import Database
from storage.models import Case

MANAGER = "Leder@Skole.example"
DEPUTY = "viceleder@skole.example"
OTHER_MANAGER = "leder@andenskole.example"
DEFAULT_MANAGER = "chef@kommune.example"
ADMIN = "it@kommune.example"

CONFIG = replace(AppConfig(), routing=RoutingSettings(default_manager=DEFAULT_MANAGER),
                 plan=PlanSettings(admins=(ADMIN,)),
                 notify=NotifySettings(manager_languages={"leder@skole.example": "en"}))


def _open(database: Database, manager: str, deputy: str | None) -> str:
    with database.write() as session:
        case = open_case(session, reporter="ansat@skole.example", reporter_name=None,
                         manager=manager, deputy=deputy, language="da",
                         routing_source="default", routing_reason="default manager")
        return case.number


def _visible(database: Database, address: str) -> set[str]:
    viewer = viewer_for(CONFIG, address)
    with database.read() as session:
        listed = set(session.execute(
            select(Case.number).where(visible_cases(viewer))).scalars())
        checked = {case.number for case in session.execute(select(Case)).scalars()
                   if can_see(session, viewer, case)}
        found = {number for number in listed | checked
                 if case_for_viewer(session, viewer, number) is not None}
    assert listed == checked == found, "the list, the check and the page must agree"
    return listed


def _escalate(database: Database, number: str, level: int) -> None:
    with database.write() as session:
        case = session.execute(select(Case).where(Case.number == number)).scalar_one()
        case.escalation_level = level


def test_a_manager_sees_their_own_cases_only(database: Database) -> None:
    mine = _open(database, MANAGER, DEPUTY)
    theirs = _open(database, OTHER_MANAGER, None)
    assert _visible(database, "leder@skole.example") == {mine}
    assert _visible(database, OTHER_MANAGER) == {theirs}


def test_a_deputy_sees_a_case_only_once_it_is_escalated_to_them(database: Database) -> None:
    number = _open(database, MANAGER, DEPUTY)
    assert _visible(database, DEPUTY) == set()
    _escalate(database, number, 1)
    assert _visible(database, DEPUTY) == {number}


def test_the_default_manager_sees_a_case_only_at_the_second_escalation(
        database: Database) -> None:
    number = _open(database, MANAGER, DEPUTY)
    _escalate(database, number, 1)
    assert _visible(database, DEFAULT_MANAGER) == set()
    _escalate(database, number, 2)
    assert _visible(database, DEFAULT_MANAGER) == {number}


def test_an_admin_sees_every_case_and_anyone_else_none(database: Database) -> None:
    numbers = {_open(database, MANAGER, DEPUTY), _open(database, OTHER_MANAGER, None)}
    assert _visible(database, ADMIN.upper()) == numbers
    assert _visible(database, "ansat@skole.example") == set()
    assert _visible(database, "") == set()


def test_a_reassignment_takes_effect_at_the_next_check(database: Database) -> None:
    number = _open(database, MANAGER, None)
    assert _visible(database, MANAGER) == {number}
    with database.write() as session:
        case = session.execute(select(Case).where(Case.number == number)).scalar_one()
        case.manager = OTHER_MANAGER
    assert _visible(database, MANAGER) == set()
    assert _visible(database, OTHER_MANAGER) == {number}


def test_the_viewer_reads_in_their_own_language() -> None:
    assert viewer_for(CONFIG, MANAGER).language == "en"
    assert viewer_for(CONFIG, DEPUTY).language == "da"
    assert viewer_for(CONFIG, " IT@kommune.example ").is_admin
    assert not viewer_for(CONFIG, DEPUTY).is_admin
