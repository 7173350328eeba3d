"""Reassigning a case: a new responsible manager and deputy, in the caller's transaction.

Whoever loses their role on the case loses their secret reply addresses for it (the tokens
are retired); the new manager, and a newly named deputy, get the case's notification with a
reply address of their own; the previous manager gets a short mail saying who has the case
now. A person who keeps a role (the deputy who becomes the manager) keeps their tokens.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import datetime
from email.errors import HeaderParseError
from email.headerregistry import Address
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from notifier.case_view import case_mail_view
from notifier.mails import CaseMailView, MailComposer
from notifier.outbox import enqueue
from notifier.plan.checklist import case_steps
from notifier.plan.settings import PlanSettings
from notifier.reply_addresses import secret_reply_address
from notifier.settings import NotifySettings
from storage.cases import CaseError, assign_case
from storage.models import Case, CaseStatus, Message, MessageKind
from storage.reply_tokens import retire_tokens

DONE = "done"
ALREADY = "already"
CASE_CLOSED = "case-closed"

# Why a person's tokens were retired (ReplyToken.retired_reason).
RETIRED_REASSIGNED = "reassigned"
RETIRED_DEPUTY_REMOVED = "deputy-removed"


class Keep(enum.Enum):
    """The deputy argument that leaves the case's deputy as it is."""

    KEEP = "keep"


KEEP: Final = Keep.KEEP


@dataclass(frozen=True)
class AssignmentResult:
    """How a reassignment went, and who was told.

    `outcome` is `done`, `already` (nobody changes) or `case-closed` (nothing changed).
    `notified` got the notification with a secret reply address of their own; `told` got
    the short mail that the case has moved; `retired_tokens` counts the reply addresses
    that stopped working. `report_missing`: the case has no report message, so no
    notification could be made.
    """

    outcome: str
    manager: str
    previous_manager: str
    deputy: str | None
    previous_deputy: str | None
    notified: tuple[str, ...] = ()
    told: tuple[str, ...] = ()
    retired_tokens: int = 0
    report_missing: bool = False

    @property
    def manager_changed(self) -> bool:
        """Whether the responsible manager changed."""
        return _folded(self.manager) != _folded(self.previous_manager)

    @property
    def deputy_changed(self) -> bool:
        """Whether the deputy changed (named, replaced or removed)."""
        return _folded(self.deputy) != _folded(self.previous_deputy)


def mail_address(value: str) -> str:
    """The plain mail address `name@domain`, case-folded; ValueError saying why when the
    value is not one (a display name, several addresses, no domain, …)."""
    text = value.strip()
    if not text or "@" not in text:
        raise ValueError(f"{value!r} is not a mail address (write it as name@domain)")
    try:
        parsed = Address(addr_spec=text)
    except (ValueError, IndexError, HeaderParseError):
        raise ValueError(f"{value!r} is not a mail address (write it as name@domain)") from None
    if not parsed.username or not parsed.domain:
        raise ValueError(f"{value!r} is not a mail address (write it as name@domain)")
    return text.casefold()


def reassign(session: Session, case: Case, *, manager: str, deputy: str | Keep | None = KEEP,
             actor: str, now: datetime, composer: MailComposer, plan: PlanSettings,
             notify: NotifySettings) -> AssignmentResult:
    """Make `manager` the case's responsible manager and set its deputy (`KEEP`: as it is;
    None: no deputy), in the caller's transaction with the case locked.

    Retires the reply tokens of whoever leaves the case, records the `assigned` note and
    audit event, and queues the notification to the new manager (and a newly named
    deputy) and the short `reassigned` mail to the previous manager. A closed case and an
    unchanged assignment change nothing. CaseError when the deputy named is the manager;
    ValueError when an address is not a mail address.
    """
    new_manager = mail_address(manager)
    previous_manager, previous_deputy = case.manager, case.deputy
    if deputy is KEEP:
        new_deputy = previous_deputy
        if _folded(new_deputy) == new_manager:
            new_deputy = None  # the deputy became the manager: nobody deputises for oneself
    elif deputy is None:
        new_deputy = None
    else:
        new_deputy = mail_address(deputy)
        if new_deputy == new_manager:
            raise CaseError(f"case {case.number}: {new_deputy} cannot be both the manager "
                            "and the deputy")
    result = AssignmentResult(outcome=DONE, manager=new_manager,
                              previous_manager=previous_manager, deputy=new_deputy,
                              previous_deputy=previous_deputy)
    if case.status == CaseStatus.CLOSED:
        return replace(result, outcome=CASE_CLOSED, manager=previous_manager,
                       deputy=previous_deputy)
    if not result.manager_changed and not result.deputy_changed:
        return replace(result, outcome=ALREADY, manager=previous_manager,
                       deputy=previous_deputy)

    keeps_a_role = {new_manager, _folded(new_deputy)}
    retired = 0
    old_manager_left = result.manager_changed and _folded(previous_manager) not in keeps_a_role
    if old_manager_left:
        retired += retire_tokens(session, case_id=case.id, reason=RETIRED_REASSIGNED, now=now,
                                 address=previous_manager)
    old_deputy = _folded(previous_deputy)
    if result.deputy_changed and old_deputy is not None and old_deputy not in keeps_a_role:
        retired += retire_tokens(session, case_id=case.id, reason=RETIRED_DEPUTY_REMOVED,
                                 now=now, address=old_deputy)
    assign_case(session, case,
                manager=new_manager if result.manager_changed else previous_manager,
                deputy=new_deputy if result.deputy_changed else previous_deputy,
                actor=actor, now=now)
    session.flush()

    notified: list[str] = []
    view = _view(session, case, plan)
    if view is not None and result.manager_changed:
        address = secret_reply_address(session, composer, case_id=case.id,
                                       recipient=new_manager, kind="notification", now=now)
        mail = composer.notification(view, reply_to=address, extra={
            "assigned_by": actor, "previous_manager": previous_manager})
        enqueue(session, mail, case_id=case.id, settings=notify, now=now)
        notified.append(new_manager)
    if view is not None and result.deputy_changed and new_deputy is not None:
        address = secret_reply_address(session, composer, case_id=case.id,
                                       recipient=new_deputy, kind="notification", now=now)
        # The same notification, addressed to the deputy, saying whose deputy they are.
        deputy_view = replace(view, manager=new_deputy, manager_name=None)
        mail = composer.notification(deputy_view, reply_to=address, extra={
            "assigned_by": actor, "previous_manager": None, "assigned_role": "deputy",
            "responsible_manager": view.manager})
        enqueue(session, mail, case_id=case.id, settings=notify, now=now)
        notified.append(new_deputy)
    told: list[str] = []
    if old_manager_left:
        mail = composer.compose("reassigned", recipient=previous_manager, recipient_name=None,
                                context={"case_number": case.number,
                                         "manager_display": new_manager,
                                         "assigned_by": actor},
                                reply_to=None)
        enqueue(session, mail, case_id=case.id, settings=notify, now=now)
        told.append(previous_manager)
    return replace(result, notified=tuple(notified), told=tuple(told), retired_tokens=retired,
                   report_missing=view is None)


def _view(session: Session, case: Case, plan: PlanSettings) -> CaseMailView | None:
    """The notification's view of the case, from its report; None if it has none."""
    row = session.execute(
        select(Message).where(Message.case_id == case.id, Message.kind == MessageKind.REPORT)
        .order_by(Message.id).limit(1)
    ).scalar_one_or_none()
    if row is None:
        return None
    return case_mail_view(session, row, case, case_steps(session, case.id), plan)


def _folded(address: str | None) -> str | None:
    return address.strip().casefold() if address is not None else None
