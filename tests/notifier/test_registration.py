"""The registration of a case (issue 22) as the case actions keep it, on SQLite and
PostgreSQL: versions kept and chained in the audit log, the case's coded fields derived from
the newest version, the first day of absence with its deadline, the `registration` step
refused until a registration is saved, and the EASY report recorded."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select

from notifier.case_actions import ALREADY, CASE_CLOSED, DONE, NEEDS_REGISTRATION, CaseActions
from notifier.plan.checklist import add_checklist, calendar_for, case_steps, find_step
from notifier.plan.settings import PlanSettings
from storage.audit import check_chain
from storage.cases import lock_case, open_case
from storage.database import Database
from storage.models import AuditEvent, Case, CaseNote, CaseRegistration
from storage.note_words import render_note
from storage.registration_prefill import prefilled_fields, starting_fields
from storage.registrations import (
    BAD_CHOICE,
    BAD_DATE,
    MISSING,
    PERIOD_ORDER,
    FieldProblem,
    RegistrationFields,
    fields_sha256,
    read_fields,
    registration_versions,
)
from storage.ui_settings import UiSettings

MANAGER = "leder@kommune.example"
REPORTER = "ansat@kommune.example"
OPENED = datetime(2026, 11, 16, 9, 30, tzinfo=UTC)
ZONE = UiSettings().zone
FILLED = RegistrationFields(
    affected_employee="Ansat <ansat@kommune.example>", harasser="vred.borger@example.com",
    relation="parent", period_start=date(2026, 11, 10), period_end=date(2026, 11, 14),
    medium="mail", harassment_type="threats", description="Tre mails med trusler.",
    absence="sick-leave", first_absence_day=date(2026, 11, 17), handler=MANAGER,
    actions_taken="Samtale med medarbejderen.")


def _open(database: Database, *, require: bool = True) -> tuple[str, CaseActions]:
    plan = PlanSettings()
    calendar = calendar_for(plan, ZONE)
    with database.write() as session:
        case = open_case(session, reporter=REPORTER, reporter_name="Ansat", manager=MANAGER,
                         deputy=None, language="da", routing_source="default",
                         routing_reason="default manager", now=OPENED)
        add_checklist(session, case, plan, calendar)
        number = case.number
    return number, CaseActions(calendar, registration_before_step=require)


def test_versions_are_kept_chained_and_the_case_follows_the_newest(database: Database) -> None:
    number, actions = _open(database)
    with database.write() as session:
        case = lock_case(session, number)
        refused = actions.step_done(session, case, "registration", actor=MANAGER, now=OPENED)
        first = actions.register(session, case, FILLED, actor=MANAGER, now=OPENED)
        same = actions.register(session, case, FILLED, actor=MANAGER, now=OPENED)
    later = OPENED + timedelta(days=2)
    changed = replace(FILLED, relation="colleague", harassment_type="insults")
    with database.write() as session:
        case = lock_case(session, number)
        second = actions.register(session, case, changed, actor="web:" + MANAGER, now=later)
        step = actions.step_done(session, case, "4", actor=MANAGER, now=later)
    assert (refused.outcome, first.outcome, same.outcome, second.outcome, step.outcome) == (
        NEEDS_REGISTRATION, DONE, ALREADY, DONE, DONE)
    assert (first.value, second.value) == ("1", "2")

    with database.read() as session:
        case = session.execute(select(Case).where(Case.number == number)).scalar_one()
        versions = registration_versions(session, case.id)
        assert [(row.version, row.author) for row in versions] == [
            (1, MANAGER), (2, "web:" + MANAGER)]
        assert versions[0].fields["relation"] == "parent"  # the first version is kept as saved
        assert (case.registration_version, case.relation_detail, case.relation,
                case.harassment_type, case.absence, case.medium) == (
            2, "colleague", "colleague", "insults", "sick-leave", "mail")
        # The first absence day came with the registration, and with it the EASY deadline.
        assert case.first_absence_day == date(2026, 11, 17)
        registration_step = find_step(case_steps(session, case.id), "registration")
        assert registration_step is not None and registration_step.due_at == datetime(
            2026, 12, 1, 22, 59, 59, tzinfo=UTC)  # 14 days later, end of the Danish day
        events = list(session.execute(
            select(AuditEvent).where(AuditEvent.case_number == number,
                                     AuditEvent.action == "registration-saved")
            .order_by(AuditEvent.seq)).scalars())
        assert [(event.details["version"], event.details["fields_sha256"])
                for event in events] == [(1, fields_sha256(FILLED)), (2, fields_sha256(changed))]
        assert [row.fields_sha256 for row in versions] == [fields_sha256(FILLED),
                                                            fields_sha256(changed)]
        assert starting_fields(session, case, language="da", zone=ZONE) == changed
    assert check_chain(database).ok


def test_without_the_setting_the_step_needs_no_registration(database: Database) -> None:
    number, actions = _open(database, require=False)
    with database.write() as session:
        result = actions.step_done(session, lock_case(session, number), "registration",
                                   actor=MANAGER, now=OPENED)
    assert result.outcome == DONE


def test_the_easy_report_is_recorded_once_and_a_closed_case_changes_no_more(
        database: Database) -> None:
    number, actions = _open(database)
    with database.write() as session:
        case = lock_case(session, number)
        first = actions.easy_reported(session, case, " 2026-123 456 ", date(2026, 11, 20),
                                      actor=MANAGER, now=OPENED)
        again = actions.easy_reported(session, case, "2026-123 456", date(2026, 11, 20),
                                      actor=MANAGER, now=OPENED)
        actions.close(session, case, "afsluttet", actor=MANAGER, now=OPENED)
        closed = actions.register(session, case, FILLED, actor=MANAGER, now=OPENED)
    assert (first.outcome, again.outcome, closed.outcome) == (DONE, ALREADY, CASE_CLOSED)
    with database.read() as session:
        case = session.execute(select(Case).where(Case.number == number)).scalar_one()
        assert (case.easy_case_number, case.easy_reported_on, case.easy_recorded_by) == (
            "2026-123 456", date(2026, 11, 20), MANAGER)
        assert session.execute(select(CaseRegistration)).first() is None
        events = list(session.execute(
            select(AuditEvent).where(AuditEvent.action == "easy-reported")).scalars())
        assert [event.details["day"] for event in events] == ["2026-11-20"]
        note = session.get(CaseNote, events[0].details["note"])
        assert note is not None and note.code == "easy-reported"
        assert render_note(note, "da") == (
            "Anmeldt til Arbejdstilsynet via EASY fredag 20. november 2026, "
            "EASY-sagsnummer 2026-123 456.")


def test_the_prefill_of_a_case_with_nothing_forwarded(database: Database) -> None:
    number, actions = _open(database)
    with database.write() as session:
        case = lock_case(session, number)
        actions.step_done(session, case, "1", actor=MANAGER, now=OPENED)
        actions.relation(session, case, "colleague", actor=MANAGER, now=OPENED)
        prefilled = prefilled_fields(session, case, language="da", zone=ZONE)
    assert prefilled == RegistrationFields(
        affected_employee="Ansat <ansat@kommune.example>", harasser="", relation="colleague",
        period_start=date(2026, 11, 16), period_end=None, medium="", harassment_type="",
        description="", absence="unknown", first_absence_day=None, handler=MANAGER,
        actions_taken="Trin 1 (Psykisk førstehjælp) udført mandag 16. november 2026.")


def test_read_fields_names_every_problem() -> None:
    registration, problems = read_fields(
        {"relation": "nabo", "period_start": "2026-11-12", "period_end": "2026-11-10",
         "first_absence_day": "i går", "description": "  "}, base=FILLED)
    assert registration.relation == "nabo" and registration.first_absence_day is None
    assert problems == [FieldProblem("first_absence_day", BAD_DATE),
                        FieldProblem("relation", BAD_CHOICE),
                        FieldProblem("description", MISSING),
                        FieldProblem("period_end", PERIOD_ORDER)]
    fine, none = read_fields({"harassment_type": "hate"}, base=FILLED)
    assert none == [] and fine == replace(FILLED, harassment_type="hate")
