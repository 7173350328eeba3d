"""The response plan on the clock: checklists, deadlines in working days, the EASY deadline,
reminders, escalation and the weekly digest as outbox rows, also after a downtime; and the
APScheduler job that runs it at start. Time comes from a ManualClock; nothing sleeps."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from email import policy
from email.parser import BytesParser
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from intake.commands.reply.parser import command_help, reply_lines
from notifier.case_actions import CaseActions
from notifier.clock import ManualClock
from notifier.mails import MailComposer
from notifier.plan.checklist import add_checklist, calendar_for, case_steps
from notifier.plan.mails import PlanMails
from notifier.plan.runner import PlanRunner
from notifier.plan.scheduler import PlanScheduler
from notifier.plan.settings import PlanSettings
from notifier.settings import NotifySettings
from storage.cases import lock_case, open_case
from storage.database import Database
from storage.models import OutboxMail, PlanNotice, ReplyToken
from storage.reply_tokens import token_sha256
from storage.ui_settings import UiSettings
from tests.support import wait_until

COPENHAGEN = ZoneInfo("Europe/Copenhagen")
MANAGER = "leder@kommune.example"
DEPUTY = "stedfortraeder@kommune.example"
DEFAULT_MANAGER = "direktion@kommune.example"
REPORTER = "ansat@kommune.example"


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A Danish wall-clock time as an aware datetime."""
    return datetime(year, month, day, hour, minute, tzinfo=COPENHAGEN)


class Plan:
    """A database, the plan's runner on a manual clock, and cases opened at chosen times."""

    def __init__(self, database: Database, start: datetime, **settings: Any) -> None:
        self.database = database
        self.settings = replace(PlanSettings(), **settings)
        self.calendar = calendar_for(self.settings, UiSettings().zone)
        self.clock = ManualClock(start)
        composer = MailComposer(NotifySettings(), intake_address="chikanemail@kommune.example",
                                hostname="test",
                                command_help={"da": command_help("da"),
                                              "en": command_help("en")})
        self.mails = PlanMails(composer, self.settings, composer.command_help, reply_lines())
        self.runner = self.new_runner()

    def new_runner(self) -> PlanRunner:
        """A runner as a freshly started daemon has it (no memory of its own)."""
        return PlanRunner(self.database, self.settings, self.mails, NotifySettings(),
                          self.calendar, default_manager=DEFAULT_MANAGER, clock=self.clock)

    def open(self, at: datetime, *, deputy: str | None = DEPUTY,
             manager: str = MANAGER) -> str:
        """Open a case at `at` with its checklist; its number."""
        with self.database.write() as session:
            case = open_case(session, reporter=REPORTER, reporter_name="Ansat", manager=manager,
                             deputy=deputy, language="da", routing_source="default",
                             routing_reason="default manager", now=at.astimezone(UTC))
            add_checklist(session, case, self.settings, self.calendar)
            return case.number

    def at(self, moment: datetime) -> dict[str, int]:
        """Move the clock to `moment` and run one tick; what it queued."""
        self.clock.set(moment)
        result = self.runner.run_due()
        return {"reminders": result.reminders, "escalations": result.escalations,
                "digests": result.digests}

    def due_dates(self, number: str) -> dict[str, datetime | None]:
        with self.database.read() as session:
            case = lock_case(session, number)
            return {step.key: (step.due_at.astimezone(COPENHAGEN) if step.due_at else None)
                    for step in case_steps(session, case.id)}

    def outbox(self) -> list[tuple[str, list[str], str]]:
        """(kind, recipients, subject) of every queued mail, in order."""
        with self.database.read() as session:
            return [(row.kind, list(row.rcpt_tos), row.subject) for row in session.execute(
                select(OutboxMail).order_by(OutboxMail.id)).scalars()]

    def act(self, number: str, action: str, *args: Any) -> None:
        with self.database.write() as session:
            case = lock_case(session, number)
            getattr(CaseActions(self.calendar), action)(
                session, case, *args, actor=MANAGER, now=self.clock.now())


@pytest.fixture
def plan(database: Database) -> Iterator[Plan]:
    yield Plan(database, local(2026, 11, 16, 10, 0))


# -- deadlines ------------------------------------------------------------------------


def test_working_day_deadlines_skip_a_weekend_and_a_danish_holiday(database: Database) -> None:
    plan = Plan(database, local(2026, 5, 13, 10, 0))
    # Wednesday before Ascension Day (Thursday 14 May 2026, a public holiday).
    number = plan.open(local(2026, 5, 13, 10, 0))
    due = plan.due_dates(number)
    assert due["first-aid"] == local(2026, 5, 15, 10, 0)  # Friday: Thursday is a holiday
    assert due["documentation"] == local(2026, 5, 18, 10, 0)  # Monday, over the weekend
    assert due["stop"] == local(2026, 5, 19, 10, 0)
    # Christmas: Wednesday 23 Dec + 2 working days = Thursday 24, then Monday 28.
    number = plan.open(local(2026, 12, 23, 10, 0))
    assert plan.due_dates(number)["documentation"] == local(2026, 12, 28, 10, 0)


def test_a_report_on_a_saturday_counts_from_monday_morning(database: Database) -> None:
    plan = Plan(database, local(2026, 11, 21, 11, 0))
    number = plan.open(local(2026, 11, 21, 11, 0))
    assert plan.due_dates(number)["first-aid"] == local(2026, 11, 24, 8, 0)


def test_extra_closed_days_are_no_working_days(database: Database) -> None:
    plan = Plan(database, local(2026, 12, 23, 10, 0), extra_closed_days=("12-24", "12-31"))
    number = plan.open(local(2026, 12, 23, 10, 0))
    assert plan.due_dates(number)["first-aid"] == local(2026, 12, 28, 10, 0)


def test_easy_deadline_is_14_calendar_days_after_the_first_day_of_absence(plan: Plan) -> None:
    number = plan.open(local(2026, 11, 16, 10, 0))
    assert plan.due_dates(number)["registration"] is None  # no absence known yet
    plan.act(number, "absence", date(2026, 11, 22))
    # Sunday 22 Nov + 14 days = Sunday 6 Dec, to the end of that day (not moved to a
    # working day: the rule counts calendar days).
    assert plan.due_dates(number)["registration"] == datetime(
        2026, 12, 6, 23, 59, 59, tzinfo=COPENHAGEN)
    plan.act(number, "absence", date(2026, 11, 20))  # corrected: the deadline follows
    assert plan.due_dates(number)["registration"] == datetime(
        2026, 12, 4, 23, 59, 59, tzinfo=COPENHAGEN)


def test_a_changed_plan_affects_new_cases_only(database: Database) -> None:
    plan = Plan(database, local(2026, 11, 16, 10, 0))
    old = plan.open(local(2026, 11, 16, 10, 0))
    changed = Plan(database, local(2026, 11, 16, 10, 0),
                   steps=PlanSettings().steps[:2])
    new = changed.open(local(2026, 11, 16, 10, 0))
    assert len(plan.due_dates(old)) == 5
    assert list(plan.due_dates(new)) == ["first-aid", "documentation"]


# -- reminders and escalation ---------------------------------------------------------


def test_reminders_and_escalation_at_the_right_moments(plan: Plan) -> None:
    # Monday 16 Nov 10:00: first aid due Tue 10:00, documentation Wed 10:00, stop Thu 10:00.
    number = plan.open(local(2026, 11, 16, 10, 0))
    assert plan.at(local(2026, 11, 16, 12, 0)) == {"reminders": 0, "escalations": 0,
                                                   "digests": 0}
    # Tuesday 08:00: first aid is due today, documentation tomorrow.
    assert plan.at(local(2026, 11, 17, 8, 0))["reminders"] == 2
    assert plan.at(local(2026, 11, 17, 8, 0))["reminders"] == 0  # once only
    # Tuesday 10:00: first aid overdue; not acknowledged within 1 working day: the deputy.
    assert plan.at(local(2026, 11, 17, 10, 0)) == {"reminders": 1, "escalations": 1,
                                                   "digests": 0}
    # Wednesday 10:00: one more working day without acknowledgement: the default manager.
    # Documentation passed both its 08:00 reminder and its deadline: one mail, not two;
    # stop (due Thursday) had its day-before reminder at 08:00.
    assert plan.at(local(2026, 11, 18, 10, 0)) == {"reminders": 2, "escalations": 1,
                                                   "digests": 0}
    mails = plan.outbox()
    assert [(kind, to) for kind, to, _ in mails] == [
        ("reminder", [MANAGER]), ("reminder", [MANAGER]),
        ("reminder", [MANAGER]), ("escalation", [DEPUTY]),
        ("reminder", [MANAGER]), ("reminder", [MANAGER]), ("escalation", [DEFAULT_MANAGER]),
    ]
    assert all(subject.startswith(f"[Sag {number}]") for _, _, subject in mails)
    assert "Frist i dag" in mails[0][2] and "Psykisk førstehjælp" in mails[0][2]
    assert "Overskredet" in mails[2][2]
    with plan.database.read() as session:
        skipped = session.execute(select(PlanNotice.key).where(PlanNotice.skipped)).scalars()
        assert [key.rsplit(":", 1)[1] for key in skipped] == ["before-0"]


def test_acknowledged_done_and_closed_stop_their_mails(plan: Plan) -> None:
    acknowledged = plan.open(local(2026, 11, 16, 10, 0))
    plan.act(acknowledged, "acknowledge")
    plan.act(acknowledged, "step_done", "1")
    closed = plan.open(local(2026, 11, 16, 10, 0))
    plan.act(closed, "close", "resolved")
    assert plan.at(local(2026, 11, 17, 10, 0)) == {"reminders": 1, "escalations": 0,
                                                   "digests": 0}
    ((kind, to, subject),) = plan.outbox()
    assert (kind, to) == ("reminder", [MANAGER])
    assert "trin 2 Dokumentation" in subject and acknowledged in subject


def test_without_a_deputy_the_default_manager_is_told_first(plan: Plan) -> None:
    plan.open(local(2026, 11, 16, 10, 0), deputy=None)
    assert plan.at(local(2026, 11, 17, 10, 0))["escalations"] == 1
    assert [to for kind, to, _ in plan.outbox() if kind == "escalation"] == [[DEFAULT_MANAGER]]


def test_after_a_downtime_what_fell_due_goes_out_at_the_next_start(plan: Plan) -> None:
    number = plan.open(local(2026, 11, 16, 10, 0))
    # The daemon was down from Monday noon until the next Monday at 09:00.
    plan.runner = plan.new_runner()
    queued = plan.at(local(2026, 11, 23, 9, 0))
    # first aid, documentation, stop: one (overdue) reminder each, not one per missed
    # moment; both escalation levels; this week's digest.
    assert queued == {"reminders": 3, "escalations": 2, "digests": 1}
    mails = plan.outbox()
    assert [kind for kind, _, _ in mails].count("reminder") == 3
    assert all("Overskredet" in subject for kind, _, subject in mails if kind == "reminder")
    digest = next(subject for kind, _, subject in mails if kind == "digest")
    assert "uge 48" in digest and number not in digest
    assert plan.new_runner().run_due().total == 0  # a second restart sends nothing again


def test_reminders_go_to_the_steps_owner(database: Database) -> None:
    steps = tuple(replace(step, owner="safety_rep") if step.key == "documentation" else step
                  for step in PlanSettings().steps)
    plan = Plan(database, local(2026, 11, 16, 10, 0), steps=steps,
                safety_rep="amr@kommune.example")
    plan.open(local(2026, 11, 16, 10, 0))
    plan.at(local(2026, 11, 17, 8, 0))
    assert sorted(to[0] for kind, to, _ in plan.outbox()) == ["amr@kommune.example", MANAGER]


def test_weekly_digest_once_a_week_to_each_manager_with_open_cases(plan: Plan) -> None:
    plan.open(local(2026, 11, 16, 10, 0))
    plan.open(local(2026, 11, 16, 11, 0), manager="anden.leder@kommune.example")
    plan.act(plan.open(local(2026, 11, 16, 12, 0)), "close", "done")
    assert plan.at(local(2026, 11, 23, 7, 59))["digests"] == 0  # before Monday 08:00
    assert plan.at(local(2026, 11, 23, 8, 0))["digests"] == 2
    assert plan.at(local(2026, 11, 25, 8, 0))["digests"] == 0
    assert plan.at(local(2026, 11, 30, 8, 0))["digests"] == 2
    digests = sorted((to, subject) for kind, to, subject in plan.outbox()
                     if kind == "digest" and "uge 48" in subject)
    assert digests == [(["anden.leder@kommune.example"],
                            "Ugeoversigt: 1 åben chikanesag, 3 overskredne frister (uge 48)"),
                           ([MANAGER], "Ugeoversigt: 1 åben chikanesag, 3 overskredne "
                                       "frister (uge 48)")]
    raw = _digest_raw(plan.database, MANAGER)
    assert "2026-0001" in raw and "2026-0003" not in raw  # the closed case is not listed


def _digest_raw(database: Database, manager: str) -> str:
    with database.read() as session:
        rows = session.execute(select(OutboxMail).where(OutboxMail.kind == "digest")
                               .order_by(OutboxMail.id)).scalars()
        row = next(row for row in rows if row.rcpt_tos == [manager])
        message = BytesParser(policy=policy.default).parsebytes(row.raw)
        body = message.get_body(("plain",))
        assert body is not None
        return str(body.get_content())


# -- the scheduler ----------------------------------------------------------------------


def test_the_scheduler_runs_what_fell_due_at_start(plan: Plan) -> None:
    plan.open(local(2026, 11, 16, 10, 0))
    plan.clock.set(local(2026, 11, 18, 12, 0))  # two days later, the daemon starts
    woken: list[int] = []
    runner = PlanRunner(plan.database, plan.settings, plan.mails, NotifySettings(),
                        plan.calendar, default_manager=DEFAULT_MANAGER, clock=plan.clock,
                        on_outbox=lambda: woken.append(1))
    scheduler = PlanScheduler(runner, tick_seconds=3600)
    scheduler.start()
    try:
        wait_until(lambda: len(plan.outbox()) == 5, message="the missed mails at start")
        wait_until(lambda: woken, message="the sender woken")
    finally:
        scheduler.stop()
    assert sorted(kind for kind, _, _ in plan.outbox()) == [
        "escalation", "escalation", "reminder", "reminder", "reminder"]


def test_the_scheduler_ticks_while_the_clock_moves(plan: Plan) -> None:
    plan.open(local(2026, 11, 16, 10, 0))
    plan.clock.set(local(2026, 11, 16, 12, 0))
    runner = plan.new_runner()
    scheduler = PlanScheduler(runner, tick_seconds=0.05)
    scheduler.start()
    try:
        plan.clock.advance(timedelta(hours=20))  # Tuesday 08:00
        wait_until(lambda: len(plan.outbox()) == 2, message="Tuesday's reminders")
    finally:
        scheduler.stop()


# -- secret reply addresses -------------------------------------------------------------


def test_every_plan_mail_carries_a_token_of_its_case_and_recipient(plan: Plan) -> None:
    """Reminders and escalations carry a token for that case and person; a digest's acts
    on no case (issue 15)."""
    number = plan.open(local(2026, 11, 16, 10, 0))
    plan.at(local(2026, 11, 18, 10, 0))  # reminders and both escalations
    plan.at(local(2026, 11, 23, 8, 0))  # the digest
    with plan.database.read() as session:
        case_id = lock_case(session, number).id
        rows = session.execute(select(OutboxMail).order_by(OutboxMail.id)).scalars().all()
        assert {row.kind for row in rows} == {"reminder", "escalation", "digest"}
        for row in rows:
            message = BytesParser(policy=policy.default).parsebytes(row.raw)
            local_part, _, _ = message["Reply-To"].addresses[0].addr_spec.partition("@")
            base, _, token = local_part.partition("+")
            assert base == "chikanemail" and len(token) == 32
            assert token.encode() not in message.get_body(("plain",)).get_content().encode()
            stored = session.execute(select(ReplyToken).where(
                ReplyToken.token_sha256 == token_sha256(token))).scalar_one()
            assert stored.address == row.rcpt_tos[0] and stored.kind == row.kind
            assert stored.case_id == (None if row.kind == "digest" else case_id)


def test_a_step_of_an_unverified_reporter_is_reminded_to_the_manager(
        database: Database) -> None:
    """No mail to an address we cannot vouch for: the reporter's step goes to the manager."""
    steps = tuple(replace(step, owner="reporter") if step.key == "first-aid" else step
                  for step in PlanSettings().steps)
    plan = Plan(database, local(2026, 11, 16, 10, 0), steps=steps)
    for unverified in (False, True):
        number = plan.open(local(2026, 11, 16, 10, 0))
        with plan.database.write() as session:
            lock_case(session, number).sender_unverified = unverified
    plan.at(local(2026, 11, 17, 8, 0))
    first_aid = [to[0] for kind, to, subject in plan.outbox() if "Psykisk" in subject]
    assert sorted(first_aid) == sorted([REPORTER, MANAGER])
