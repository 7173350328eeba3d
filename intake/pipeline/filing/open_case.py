"""Filing step: a report opens a new case with the response plan's checklist."""

from __future__ import annotations

from typing import Self

from intake.pipeline.filing.step import Filing, NewCase
from intake.pipeline.parts import PipelineParts
from notifier.clock import Clock
from notifier.plan.checklist import add_checklist
from notifier.plan.settings import PlanSettings
from notifier.settings import NotifySettings
from notifier.working_days import WorkingCalendar
from storage import audit
from storage.cases import open_case
from storage.log_context import add_log_fields
from storage.models import Medium, MessageKind


class OpenCase:
    """Open the case of a routed report, give it its checklist, and record both the opening
    and the routing."""

    name = "open_case"
    in_transaction = True

    def __init__(self, notify: NotifySettings, plan: PlanSettings, calendar: WorkingCalendar,
                 clock: Clock) -> None:
        self.notify = notify
        self.plan = plan
        self.calendar = calendar
        self.clock = clock

    @classmethod
    def from_parts(cls, parts: PipelineParts) -> Self:
        """The step for a configuration: its language, plan, calendar and clock."""
        return cls(parts.notify, parts.plan, parts.calendar, parts.clock)

    def file(self, filing: Filing) -> None:
        """Open the case if the message was routed as a report; keep it in the filing."""
        decision = filing.routing
        if decision is None:
            return
        session, row, sender = filing.session, filing.row, filing.sender
        now = self.clock.now()
        case = open_case(
            session, reporter=sender.reporter, reporter_name=sender.name,
            manager=decision.manager, deputy=decision.deputy, language=self.notify.language,
            routing_source=decision.source, routing_reason=decision.reason,
            routing_params=dict(decision.params), now=now,
        )
        add_log_fields(case=case.number)
        row.case_id = case.id
        row.kind = MessageKind.REPORT
        if row.original_rule:
            case.medium = Medium.MAIL
        checklist = add_checklist(session, case, self.plan, self.calendar)
        session.flush()
        audit.record(session, "case-opened", case=case, message_sha256=row.sha256, now=now,
                     details={"steps": len(checklist), "language": case.language})
        audit.record(session, "routed", case=case, now=now,
                     details={"manager": case.manager, "deputy": case.deputy,
                              "source": decision.source})
        filing.case = case
        filing.new_case = NewCase(case, checklist, now)
        filing.decided = True
