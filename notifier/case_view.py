"""What the mails of a case show of it: the CaseMailView of a case and one of its messages,
and what its manager may know of related cases."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from notifier.durations import parse_duration
from notifier.mails import CaseMailView, EvidenceLine, PlanStepLine, RelatedLine
from notifier.plan.checklist import AFTER_FIRST_ABSENCE_DAY, acknowledge_duration
from notifier.plan.settings import PlanSettings, PlanText
from storage.forwarded_original import original_of
from storage.models import Case, CaseStep, Evidence, Message


def plan_lines(steps: list[CaseStep]) -> tuple[PlanStepLine, ...]:
    """The checklist as a notification lists it."""
    return tuple(
        PlanStepLine(
            number=step.position,
            title=PlanText(da=step.title_da, en=step.title_en),
            description=PlanText(da=step.description_da, en=step.description_en),
            owner=step.owner, due_at=step.due_at,
            after_absence=(parse_duration(step.due, working=step.working_days)
                           if step.due and step.due_after == AFTER_FIRST_ABSENCE_DAY
                           else None),
        )
        for step in steps
    )


class RelatedMatch(Protocol):
    """Another case found to resemble this one, and why (sender, domain, image)."""

    @property
    def other_case_id(self) -> int:
        """The id of the other case."""
        ...

    @property
    def reason(self) -> str:
        """Why it looks related."""
        ...


def related_lines(session: Session, case: Case,
                  matches: Iterable[RelatedMatch]) -> tuple[RelatedLine, ...]:
    """What the case's manager may know of related cases: the number only of their own
    cases; of another manager's case only that it exists and why."""
    reasons: dict[int, list[str]] = {}
    for match in matches:
        found = reasons.setdefault(match.other_case_id, [])
        if match.reason not in found:
            found.append(match.reason)
    lines = []
    for other_id, why in sorted(reasons.items()):
        other = session.get(Case, other_id)
        if other is None:
            continue
        same_manager = other.manager == case.manager
        lines.append(RelatedLine(other.number if same_manager else None, tuple(why)))
    return tuple(lines)


def case_mail_view(session: Session, row: Message, case: Case, steps: list[CaseStep],
                   plan: PlanSettings,
                   related: tuple[RelatedLine, ...] = ()) -> CaseMailView:
    """The receipt's and notification's view of a case opened by the message `row`."""
    evidence = list(session.execute(
        select(Evidence).where(Evidence.message_pk == row.id).order_by(Evidence.position)
    ).scalars())
    items = tuple(
        EvidenceLine(filename=item.filename, content_type=item.declared_type,
                     size=item.size, sha256=item.sha256, role=item.role,
                     is_image=item.image is not None)
        for item in evidence
    )
    return CaseMailView(
        case_number=case.number, reporter=case.reporter, reporter_name=case.reporter_name,
        manager=case.manager, manager_name=None, deputy=case.deputy,
        received_at=row.received_at, report_subject=row.subject,
        report_message_id=row.message_id, raw_sha256=row.sha256, raw_size=row.size,
        items=items, original=original_of(row),
        plan_steps=plan_lines(steps), routing_reason=case.routing_reason,
        acknowledge_within=acknowledge_duration(plan), related=related,
        sender_unverified=case.sender_unverified, routing_source=case.routing_source,
        routing_params=case.routing_params,
    )
