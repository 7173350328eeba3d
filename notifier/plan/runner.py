"""What the scheduler does on each tick: send the reminders, escalations and digests that
are due by now and have not been sent.

Nothing here remembers anything in memory: what is due follows from the cases, their
checklists and the `plan_notice` rows, so a tick after a downtime sends what fell due while
the daemon was down (the latest reminder of a step; earlier ones are recorded as skipped).
Each notice is written with its outbox row in one transaction, unique by (kind, key).
The clock decides what is due; the outbox rows themselves are due at once (the sender
runs on the machine's time).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from notifier.clock import Clock
from notifier.durations import add_duration
from notifier.outbox import enqueue
from notifier.plan.checklist import acknowledge_duration, case_steps
from notifier.plan.checks import parse_clock
from notifier.plan.mails import DigestCase, PlanMails
from notifier.plan.settings import WEEKDAYS, PlanSettings
from notifier.reply_addresses import secret_reply_address
from notifier.settings import NotifySettings
from notifier.working_days import WorkingCalendar
from storage.database import Database
from storage.models import Case, CaseLink, CaseStatus, CaseStep, Evidence, Message
from storage.plan_notices import notice_exists, notice_keys, record_notice

log = logging.getLogger("chikanemail.notifier.plan")

REMINDER = "reminder"
ESCALATION = "escalation"
DIGEST = "digest"


@dataclass(frozen=True)
class TickResult:
    """How many mails one tick queued."""

    reminders: int = 0
    escalations: int = 0
    digests: int = 0

    @property
    def total(self) -> int:
        """All mails queued."""
        return self.reminders + self.escalations + self.digests


@dataclass(frozen=True)
class ReminderPoint:
    """A moment a step's owner is to be reminded, and its key among the step's reminders."""

    key: str
    moment: datetime


class PlanRunner:
    """Finds due reminders, escalations and digests and queues them as outbox rows."""

    def __init__(self, database: Database, plan: PlanSettings, mails: PlanMails,
                 notify: NotifySettings, calendar: WorkingCalendar, *, default_manager: str,
                 clock: Clock, on_outbox: Callable[[], None] | None = None) -> None:
        self.database = database
        self.plan = plan
        self.mails = mails
        self.notify = notify
        self.calendar = calendar
        self.default_manager = default_manager.strip().lower()
        self.clock = clock
        self._on_outbox = on_outbox
        self._reminder_time = parse_clock(plan.reminder_time)
        self._digest_time = parse_clock(plan.digest_time)

    def run_due(self) -> TickResult:
        """Queue everything due at the clock's time; how many mails were queued."""
        now = self.clock.now()
        result = TickResult(
            reminders=self.send_due_reminders(now),
            escalations=self.send_due_escalations(now),
            digests=self.send_due_digests(now) if self.plan.digest else 0,
        )
        if result.total and self._on_outbox is not None:
            self._on_outbox()
        return result

    def wake_sender(self) -> None:
        """Tell the outbox sender there is mail to send."""
        if self._on_outbox is not None:
            self._on_outbox()

    # Reminders -------------------------------------------------------------------------

    def reminder_points(self, step: CaseStep, opened_at: datetime) -> list[ReminderPoint]:
        """When the step's owner is reminded: the configured working days before the
        deadline at the reminder time (never after the deadline, never before the case
        opened), and once at the deadline when it passes."""
        if step.due_at is None:
            return []
        due_at = step.due_at
        due_day = due_at.astimezone(self.calendar.zone).date()
        points = []
        for days in sorted(set(self.plan.remind_before_working_days), reverse=True):
            day = self.calendar.working_days_before(due_day, days)
            moment = min(self.calendar.at_local_time(day, self._reminder_time), due_at)
            if moment > opened_at:
                points.append(ReminderPoint(f"before-{days}", moment))
        if self.plan.remind_overdue:
            points.append(ReminderPoint("overdue", due_at))
        return points

    def send_due_reminders(self, now: datetime) -> int:
        """Queue the due reminders of every open case; how many."""
        sent = 0
        for case_id in self._open_case_ids(with_due_steps=True):
            try:
                with self.database.write() as session:
                    sent += self._remind_case(session, case_id, now)
            except IntegrityError:
                log.info("reminder already queued by another daemon case_id=%s", case_id)
        return sent

    def _remind_case(self, session: Session, case_id: int, now: datetime) -> int:
        case = session.get(Case, case_id, with_for_update=True)
        if case is None or case.status != CaseStatus.OPEN:
            return 0
        known = notice_keys(session, REMINDER, case_id=case.id)
        sent = 0
        for step in case_steps(session, case.id):
            if step.done_at is not None or step.due_at is None:
                continue
            prefix = f"{case.number}:{step.key}:{step.due_at.isoformat()}"
            due = [point for point in self.reminder_points(step, case.opened_at)
                   if point.moment <= now and f"{prefix}:{point.key}" not in known]
            if not due:
                continue
            latest = max(due, key=lambda point: point.moment)
            recipient, role = self._owner_address(case, step.owner)
            reply_to = secret_reply_address(session, self.mails.composer, case_id=case.id,
                                            recipient=recipient, kind="reminder", now=now)
            mail = self.mails.reminder(case, step, recipient=recipient, role=role, now=now,
                                       reply_to=reply_to)
            row = enqueue(session, mail, case_id=case.id, settings=self.notify)
            for point in due:
                record_notice(session, kind=REMINDER, key=f"{prefix}:{point.key}",
                              case_id=case.id, recipient=recipient, due_at=point.moment,
                              now=now, outbox_id=row.id if point is latest else None,
                              skipped=point is not latest)
            log.info("reminder queued case=%s step=%s point=%s skipped=%d", case.number,
                     step.key, latest.key, len(due) - 1)
            sent += 1
        return sent

    def _owner_address(self, case: Case, owner: str) -> tuple[str, str]:
        if owner == "reporter" and not case.sender_unverified:
            return case.reporter, "reporter"
        if owner == "safety_rep" and self.plan.safety_rep:
            return self.plan.safety_rep, "safety_rep"
        if owner == "hr" and self.plan.hr:
            return self.plan.hr, "hr"
        return case.manager, "manager"

    # Escalation ------------------------------------------------------------------------

    def escalation_chain(self, case: Case) -> list[tuple[int, str, datetime]]:
        """Who is told, at which level and when, if the case stays unacknowledged: the
        deputy one acknowledgement period after intake, then the default manager one more
        period later (or first, with no deputy)."""
        period = acknowledge_duration(self.plan)
        targets: list[tuple[int, str]] = []
        if case.deputy and case.deputy != case.manager:
            targets.append((1, case.deputy))
        if self.default_manager and self.default_manager not in (case.manager, case.deputy):
            targets.append((2, self.default_manager))
        chain = []
        moment = case.opened_at
        for level, address in targets:
            moment = add_duration(self.calendar, moment, period)
            chain.append((level, address, moment))
        return chain

    def send_due_escalations(self, now: datetime) -> int:
        """Queue the due escalations of every open, unacknowledged case; how many."""
        sent = 0
        for case_id in self._open_case_ids(unacknowledged=True):
            try:
                with self.database.write() as session:
                    sent += self._escalate_case(session, case_id, now)
            except IntegrityError:
                log.info("escalation already queued by another daemon case_id=%s", case_id)
        return sent

    def _escalate_case(self, session: Session, case_id: int, now: datetime) -> int:
        case = session.get(Case, case_id, with_for_update=True)
        if case is None or case.status != CaseStatus.OPEN or case.acknowledged_at is not None:
            return 0
        sent = 0
        told: list[str] = []
        item_count = None
        for level, address, moment in self.escalation_chain(case):
            key = f"{case.number}:{level}"
            if moment <= now and not notice_exists(session, ESCALATION, key):
                if item_count is None:
                    item_count = self._item_count(session, case.id)
                reply_to = secret_reply_address(session, self.mails.composer,
                                                case_id=case.id, recipient=address,
                                                kind="escalation", now=now)
                mail = self.mails.escalation(case, level=level, recipient=address,
                                             previous=told, item_count=item_count,
                                             reply_to=reply_to)
                row = enqueue(session, mail, case_id=case.id, settings=self.notify)
                record_notice(session, kind=ESCALATION, key=key, case_id=case.id,
                              recipient=address, due_at=moment, now=now, outbox_id=row.id)
                case.escalation_level = max(case.escalation_level, level)
                log.info("case %s escalated level=%d (not acknowledged)", case.number, level)
                sent += 1
            if moment <= now:
                told.append(address)
        return sent

    @staticmethod
    def _item_count(session: Session, case_id: int) -> int:
        return int(session.execute(
            select(func.count(Evidence.id)).join(Message, Evidence.message_pk == Message.id)
            .where(Message.case_id == case_id, Message.kind == "report")
        ).scalar_one())

    # Digest ----------------------------------------------------------------------------

    def digest_slot(self, now: datetime) -> datetime:
        """The latest weekly digest moment at or before `now`."""
        zone = self.calendar.zone
        local_day = now.astimezone(zone).date()
        weekday = WEEKDAYS.index(self.plan.digest_weekday)
        day = local_day - timedelta(days=(local_day.weekday() - weekday) % 7)
        slot = self.calendar.at_local_time(day, self._digest_time)
        if slot > now:
            slot = self.calendar.at_local_time(day - timedelta(days=7), self._digest_time)
        return slot

    def send_due_digests(self, now: datetime) -> int:
        """Queue this week's digest to each manager with open cases, once; how many."""
        slot = self.digest_slot(now)
        local = slot.astimezone(self.calendar.zone)
        year, week, _ = local.isocalendar()
        with self.database.read() as session:
            managers = sorted(set(session.execute(
                select(Case.manager).where(Case.status == CaseStatus.OPEN,
                                           Case.opened_at <= slot)
            ).scalars()))
        sent = 0
        for manager in managers:
            key = f"{manager}:{year}-W{week:02d}"
            try:
                with self.database.write() as session:
                    if notice_exists(session, DIGEST, key):
                        continue
                    entries = self._digest_entries(session, manager, slot, now)
                    if not entries:
                        continue
                    # The digest's token acts on no case: it only shows the reply is ours.
                    reply_to = secret_reply_address(session, self.mails.composer,
                                                    case_id=None, recipient=manager,
                                                    kind="digest", now=now)
                    mail = self.mails.digest(manager, entries, week=week, year=year, now=now,
                                             reply_to=reply_to)
                    row = enqueue(session, mail, case_id=None, settings=self.notify)
                    record_notice(session, kind=DIGEST, key=key, case_id=None,
                                  recipient=manager, due_at=slot, now=now, outbox_id=row.id)
                    log.info("weekly digest queued week=%d-W%02d cases=%d", year, week,
                             len(entries))
                    sent += 1
            except IntegrityError:
                log.info("digest already queued by another daemon week=%d-W%02d", year, week)
        return sent

    def _digest_entries(self, session: Session, manager: str, slot: datetime,
                        now: datetime) -> list[DigestCase]:
        cases = session.execute(
            select(Case).where(Case.status == CaseStatus.OPEN, Case.manager == manager,
                               Case.opened_at <= slot)
            .order_by(Case.year, Case.sequence)
        ).scalars()
        entries = []
        for case in cases:
            open_steps = [step for step in case_steps(session, case.id) if step.done_at is None]
            related = session.execute(
                select(func.count(func.distinct(CaseLink.other_case_id)))
                .where(CaseLink.case_id == case.id)
            ).scalar_one()
            entries.append(DigestCase(
                case=case, next_step=open_steps[0] if open_steps else None,
                overdue_count=sum(1 for step in open_steps
                                  if step.due_at is not None and step.due_at < now),
                related_count=int(related),
            ))
        return entries

    # Shared ----------------------------------------------------------------------------

    def _open_case_ids(self, *, with_due_steps: bool = False,
                       unacknowledged: bool = False) -> list[int]:
        statement = select(Case.id).where(Case.status == CaseStatus.OPEN)
        if unacknowledged:
            statement = statement.where(Case.acknowledged_at.is_(None))
        if with_due_steps:
            statement = statement.where(Case.id.in_(
                select(CaseStep.case_id).where(CaseStep.done_at.is_(None),
                                               CaseStep.due_at.is_not(None))))
        with self.database.read() as session:
            return list(session.execute(statement.order_by(Case.id)).scalars())
