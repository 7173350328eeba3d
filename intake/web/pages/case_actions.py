"""The case page's action panel (issue 21, point 1): what a manager can do by replying to
the case's mails or with the CLI, done from the page.

Each action is one POST that calls the same code as the reply commands and the CLI
(`notifier.case_actions.CaseActions`, `notifier.assignment.reassign`, `storage.holds`,
`storage.cases.add_note`), so it writes the same notes and audit events, with the actor
`web:<address>`. Only someone who may see the case may act on it (`intake.web.access`: the
same people the reply commands let act, the deputy and the default manager once it is
escalated to them); anyone else gets the same 404 as for a case that does not exist. The
answer is a redirect back to the case page (POST-redirect-GET) whose query names the result
as `?result=<action>:<outcome>`; the page words it from the catalogs and shows nothing the
form carried.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from urllib.parse import quote

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from intake.web.access import Viewer, locked_case_for_viewer, visible_cases
from intake.web.context import WebContext
from intake.web.pages.case_view import case_by_number
from intake.web.pages.viewing import not_found, viewer_of, visible, web_actor, web_context
from intake.web.rendering import render
from notifier import assignment
from notifier.case_actions import ALREADY, CASE_CLOSED, DONE, CaseActions
from notifier.plan.checklist import case_steps
from storage.cases import CaseError, add_note
from storage.holds import HOLD_ALREADY, hold_case, lift_case_hold
from storage.models import AuditEvent, Case, CaseStatus, HarasserRelation, Medium

# What the forms may carry: a note as long as a reply's note, a witness or a closing
# reason a few lines.
NOTE_MAX_CHARS = 20_000
WITNESS_MAX_CHARS = 500
CLOSE_REASON_MAX_CHARS = 2_000

# Outcomes beside those of CaseActions: what the form said was unusable.
EMPTY = "empty"
INVALID = "invalid"
TOO_LONG = "too-long"
SAME_PERSON = "same-person"
# The viewer handed the case to someone else and may no longer open it.
HANDED_OVER = "handed-over"

# The query parameter the case page reads the result from.
RESULT_PARAMETER = "result"


@dataclass(frozen=True)
class ActionCall:
    """One action as posted: the locked case, the form's fields, who acts and when."""

    session: Session
    case: Case
    form: Mapping[str, str]
    actor: str
    now: datetime
    context: WebContext

    @property
    def actions(self) -> CaseActions:
        """The case actions, counting deadlines with the plan's working calendar."""
        config = self.context.config
        return CaseActions.for_plan(config.plan, config.ui.zone)

    def field(self, name: str) -> str:
        """A form field, trimmed ('' when the form lacks it)."""
        return self.form.get(name, "").strip()


def _acknowledge(call: ActionCall) -> str:
    return call.actions.acknowledge(call.session, call.case, actor=call.actor,
                                    now=call.now).outcome


def _step_done(call: ActionCall) -> str:
    step = call.field("step")
    if not step.isdigit():
        return INVALID
    return call.actions.step_done(call.session, call.case, step, actor=call.actor,
                                  now=call.now).outcome


def _absence(call: ActionCall) -> str:
    try:
        day = date.fromisoformat(call.field("day"))
    except ValueError:
        return INVALID
    return call.actions.absence(call.session, call.case, day, actor=call.actor,
                                now=call.now).outcome


def _relation(call: ActionCall) -> str:
    value = call.field("relation")
    if value not in {item.value for item in HarasserRelation}:
        return INVALID
    return call.actions.relation(call.session, call.case, value, actor=call.actor,
                                 now=call.now).outcome


def _medium(call: ActionCall) -> str:
    value = call.field("medium")
    if value not in {item.value for item in Medium}:
        return INVALID
    return call.actions.medium(call.session, call.case, value, actor=call.actor,
                               now=call.now).outcome


def _witness(call: ActionCall) -> str:
    witness = call.field("witness")
    if not witness:
        return EMPTY
    if len(witness) > WITNESS_MAX_CHARS:
        return TOO_LONG
    return call.actions.witness(call.session, call.case, witness, actor=call.actor,
                                now=call.now).outcome


def _note(call: ActionCall) -> str:
    # A closed case still takes notes, as a reply to a closed case is still kept.
    text = call.form.get("note", "").strip()
    if not text:
        return EMPTY
    if len(text) > NOTE_MAX_CHARS:
        return TOO_LONG
    add_note(call.session, call.case, author=call.actor, text=text, now=call.now)
    return DONE


def _assign(call: ActionCall) -> str:
    config = call.context.config
    deputy = call.field("deputy") or None  # an empty field: the case has no deputy
    try:
        result = assignment.reassign(
            call.session, call.case, manager=call.field("manager"), deputy=deputy,
            actor=call.actor, now=call.now, composer=call.context.composer,
            plan=config.plan, notify=config.notify)
    except ValueError:
        return INVALID
    except CaseError:
        return SAME_PERSON
    return result.outcome


def _hold(call: ActionCall) -> str:
    try:
        result = hold_case(call.session, call.case, call.field("reason"), call.actor, call.now)
    except ValueError:
        return INVALID
    return ALREADY if result.outcome == HOLD_ALREADY else DONE


def _unhold(call: ActionCall) -> str:
    result = lift_case_hold(call.session, call.case, call.actor, call.now)
    return ALREADY if result.outcome == HOLD_ALREADY else DONE


def _close(call: ActionCall) -> str:
    reason = " ".join(call.field("reason").split())
    if not reason:
        return EMPTY
    if len(reason) > CLOSE_REASON_MAX_CHARS:
        return TOO_LONG
    return call.actions.close(call.session, call.case, reason, actor=call.actor,
                              now=call.now).outcome


ACTIONS: Mapping[str, Callable[[ActionCall], str]] = {
    "acknowledge": _acknowledge,
    "step": _step_done,
    "absence": _absence,
    "relation": _relation,
    "medium": _medium,
    "witness": _witness,
    "note": _note,
    "assign": _assign,
    "hold": _hold,
    "unhold": _unhold,
    "close": _close,
}
"""Every action of the panel by the name its path carries."""

# Actions that may queue mails (the new manager's notification): the outbox is woken.
_SENDS_MAIL = frozenset({"assign"})


def perform(context: WebContext, viewer: Viewer, number: str, action: str,
            form: Mapping[str, str]) -> tuple[str, str] | None:
    """Do `action` on the case for the viewer, in one transaction with the case locked;
    the case's number and the outcome, or None when the viewer may not act on it (or there
    is no such case)."""
    run = ACTIONS[action]
    with context.database.write() as session:
        case = locked_case_for_viewer(session, viewer, number)
        if case is None:
            return None
        outcome = run(ActionCall(session, case, form, web_actor(viewer), context.clock.now(),
                                 context))
        session.flush()
        if outcome == DONE and action == "assign" and not _still_visible(session, viewer,
                                                                          case):
            outcome = HANDED_OVER
        return case.number, outcome


def _still_visible(session: Session, viewer: Viewer, case: Case) -> bool:
    return session.execute(
        select(Case.id).where(Case.id == case.id, visible_cases(viewer))).first() is not None


async def _form_fields(request: Request) -> dict[str, str]:
    """The posted form's text fields (a repeated field: its first value)."""
    form = await request.form()
    fields: dict[str, str] = {}
    for key, value in form.multi_items():
        if isinstance(value, str) and key not in fields:
            fields[key] = value
    return fields


def case_url(number: str, *, result: str | None = None) -> str:
    """The case page's path, with the result of an action when there is one."""
    path = f"/cases/{quote(number, safe='')}"
    if result is None:
        return path
    return f"{path}?{RESULT_PARAMETER}={quote(result, safe=':')}#actions"


async def case_action(request: Request) -> Response:
    """POST /cases/{number}/actions/{action}: do it, then back to the case page."""
    action = request.path_params["action"]
    if action not in ACTIONS or action == "close":
        raise not_found()  # closing goes through its confirmation page
    return await _act(request, action)


async def close_case(request: Request) -> Response:
    """POST /cases/{number}/close: close the case with the reason written on the
    confirmation page; without a reason, back to that page."""
    return await _act(request, "close")


async def _act(request: Request, action: str) -> Response:
    context = web_context(request)
    fields = await _form_fields(request)
    done = await asyncio.to_thread(perform, context, viewer_of(request),
                                   request.path_params["number"], action, fields)
    if done is None:
        raise not_found()
    number, outcome = done
    if action in _SENDS_MAIL and outcome in (DONE, HANDED_OVER):
        context.wake_outbox()
    if outcome == HANDED_OVER:
        target = f"/cases/{quote(number, safe='')}/handed-over"
    elif action == "close" and outcome in (EMPTY, TOO_LONG):
        target = f"/cases/{quote(number, safe='')}/close?error={outcome}"
    else:
        target = case_url(number, result=f"{action}:{outcome}")
    return RedirectResponse(target, status_code=303)


@dataclass(frozen=True)
class OpenStep:
    """A step not done, as the confirmation page lists it."""

    position: int
    title: str


def close_page(request: Request) -> Response:
    """GET /cases/{number}/close: the steps not done, a reason, and the button that closes
    the case; a closed case goes back to its page."""
    context = web_context(request)
    viewer = viewer_of(request)
    with context.database.read() as session:
        case = case_by_number(session, visible(request), request.path_params["number"])
        if case is None:
            raise not_found()
        open_steps = [OpenStep(step.position,
                               step.title_en if viewer.language == "en" else step.title_da)
                      for step in case_steps(session, case.id) if step.done_at is None]
        session.expunge_all()
    if case.status == CaseStatus.CLOSED:
        return RedirectResponse(case_url(case.number, result=f"close:{CASE_CLOSED}"),
                                status_code=303)
    error = request.query_params.get("error")
    return render(request, "case_close.html", {
        "case": case, "open_steps": open_steps,
        "error": error if error in (EMPTY, TOO_LONG) else None,
        "reason_max": CLOSE_REASON_MAX_CHARS,
    })


def handed_over_page(request: Request) -> Response:
    """GET /cases/{number}/handed-over: the viewer handed this case to someone else and may
    no longer open it; shown only when the case's last reassignment was theirs."""
    context = web_context(request)
    viewer = viewer_of(request)
    with context.database.read() as session:
        event = session.execute(
            select(AuditEvent).where(AuditEvent.case_number == request.path_params["number"],
                                     AuditEvent.action == "assigned")
            .order_by(AuditEvent.seq.desc()).limit(1)).scalar_one_or_none()
        if event is None or event.actor != web_actor(viewer):
            raise not_found()
        details = event.details or {}
    return render(request, "case_handed_over.html", {
        "number": event.case_number, "manager": str(details.get("manager") or ""),
        "deputy": str(details.get("deputy") or "")})


def routes() -> list[BaseRoute]:
    """The action panel's routes under /cases/{number}."""
    case = "/cases/{number:str}"
    return [
        Route(f"{case}/actions/{{action:str}}", case_action, methods=["POST"],
              name="case_action"),
        Route(f"{case}/close", close_page, methods=["GET"], name="case_close_page"),
        Route(f"{case}/close", close_case, methods=["POST"], name="case_close"),
        Route(f"{case}/handed-over", handed_over_page, methods=["GET"],
              name="case_handed_over"),
    ]

