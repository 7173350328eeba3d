"""The registration form (issue 22, point 1): `GET /cases/{number}/registration` shows the
form, started from the newest version or prefilled from the case, with the earlier versions
below it (`?version=N` shows one of them read-only); `POST` saves a new version through
`notifier.case_actions.CaseActions.register`, the same code the CLI calls.

A post with problems saves nothing: the form comes back (400) with what was posted and each
problem next to its field. A saved post redirects back to the form (POST-redirect-GET) with
`?result=<outcome>&saved=<version>`, which the page words. Only someone who may see the case
reaches either (404 otherwise); a closed case shows its registration read-only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from intake.web.access import Viewer, locked_case_for_viewer, visible_cases
from intake.web.context import WebContext
from intake.web.pages.case_view import case_by_number
from intake.web.pages.registration_view import (
    FormField,
    ShownField,
    VersionView,
    form_fields,
    form_values,
    shown_fields,
    version_view,
)
from intake.web.pages.viewing import (
    VIEWED,
    not_found,
    record_view,
    viewer_of,
    web_actor,
    web_context,
)
from intake.web.rendering import render
from notifier.case_actions import ALREADY, CASE_CLOSED, DONE, CaseActions
from storage.i18n.catalogs import translations
from storage.models import Case, CaseStatus, HarasserRelation
from storage.registration_codes import COARSE_RELATION, GUIDANCE
from storage.registration_prefill import starting_fields
from storage.registrations import (
    FIELD_NAMES,
    FieldProblem,
    RegistrationFields,
    read_fields,
    registration_versions,
    stored_fields,
)

# The results the form page words after a post.
RESULTS = (DONE, ALREADY, CASE_CLOSED)


@dataclass(frozen=True)
class RegistrationPage:
    """What the registration page shows."""

    case: Case
    fields: tuple[FormField, ...]
    # The shown registration in words (a closed case, an earlier version): read-only.
    shown: tuple[ShownField, ...]
    # The newest saved version (None: not registered yet, the form is prefilled).
    latest: VersionView | None
    versions: tuple[VersionView, ...]
    # The earlier version asked for with ?version=N, if one was.
    old_version: VersionView | None
    guidance: str

    @property
    def closed(self) -> bool:
        """Whether the case is closed (the registration can no longer change)."""
        return self.case.status == CaseStatus.CLOSED


def case_actions(context: WebContext) -> CaseActions:
    """The case actions, counting deadlines with the plan's working calendar."""
    config = context.config
    return CaseActions.for_plan(config.plan, config.ui.zone)


def registration_url(number: str) -> str:
    """The registration form's path."""
    return f"/cases/{quote(number, safe='')}/registration"


def _read_page(context: WebContext, viewer: Viewer, number: str, *,
               version: int | None = None, posted: Mapping[str, str] | None = None,
               problems: Sequence[FieldProblem] = ()) -> RegistrationPage | None:
    """The page for the viewer (None: no such case, or not theirs, or no such version)."""
    language, zone = viewer.language, context.config.ui.zone
    with context.database.read() as session:
        case = case_by_number(session, visible_cases(viewer), number)
        if case is None:
            return None
        rows = registration_versions(session, case.id)
        versions = tuple(version_view(row, language, zone) for row in rows)
        old_version = None
        if version is not None:
            chosen = [row for row in rows if row.version == version]
            if not chosen:
                return None
            registration = stored_fields(chosen[0])
            old_version = version_view(chosen[0], language, zone)
        else:
            registration = starting_fields(session, case, language=language, zone=zone)
        session.expunge(case)
    values = dict(posted) if posted is not None else form_values(registration)
    coarse = COARSE_RELATION.get(values.get("relation", ""), HarasserRelation.UNKNOWN.value)
    guidance = translations(language).gettext(GUIDANCE[coarse])
    return RegistrationPage(
        case=case, fields=form_fields(values, problems, language),
        shown=shown_fields(registration, language),
        latest=versions[-1] if versions else None, versions=versions,
        old_version=old_version, guidance=guidance)


def _render(request: Request, page: RegistrationPage, *, status: int = 200) -> Response:
    result = request.query_params.get("result")
    saved = request.query_params.get("saved", "")
    return render(request, "registration.html", {
        "page": page, "case": page.case,
        "result": result if result in RESULTS else None,
        "saved": saved if saved.isdigit() else "",
        "problem_count": sum(1 for item in page.fields if item.problem)}, status=status)


def registration_page(request: Request) -> Response:
    """GET /cases/{number}/registration: the form, or with ?version=N that version
    read-only; opening it is audited like the case page."""
    context = web_context(request)
    asked = request.query_params.get("version")
    if asked is not None and not asked.isdigit():
        raise not_found()
    page = _read_page(context, viewer_of(request), request.path_params["number"],
                      version=int(asked) if asked is not None else None)
    if page is None:
        raise not_found()
    record_view(request, VIEWED, page.case.number, details={"what": "registration"})
    return _render(request, page)


async def _posted_fields(request: Request) -> dict[str, str]:
    """The registration's fields as posted (other fields, the CSRF token, left out)."""
    form = await request.form()
    posted: dict[str, str] = {}
    for key, value in form.multi_items():
        if key in FIELD_NAMES and isinstance(value, str) and key not in posted:
            posted[key] = value
    return posted


def save(context: WebContext, viewer: Viewer, number: str,
         registration: RegistrationFields) -> tuple[str, str, str | None] | None:
    """Save the registration as the case's next version for the viewer, in one transaction
    with the case locked: the case's number, the outcome and the version; None when the
    viewer may not see the case (or there is no such case)."""
    with context.database.write() as session:
        case = locked_case_for_viewer(session, viewer, number)
        if case is None:
            return None
        result = case_actions(context).register(session, case, registration,
                                                actor=web_actor(viewer),
                                                now=context.clock.now())
        return case.number, result.outcome, result.value


async def save_registration_page(request: Request) -> Response:
    """POST /cases/{number}/registration: save a new version, or show the form again with
    its problems (400) when it cannot be saved."""
    context = web_context(request)
    viewer = viewer_of(request)
    number = request.path_params["number"]
    posted = await _posted_fields(request)
    registration, problems = read_fields(posted)
    if problems:
        page = await asyncio.to_thread(_read_page, context, viewer, number,
                                       posted={name: posted.get(name, "")
                                               for name in FIELD_NAMES},
                                       problems=problems)
        if page is None:
            raise not_found()
        if not page.closed:
            return _render(request, page, status=400)
        return _redirect(page.case.number, CASE_CLOSED, None)
    done = await asyncio.to_thread(save, context, viewer, number, registration)
    if done is None:
        raise not_found()
    return _redirect(*done)


def _redirect(number: str, outcome: str, version: str | None) -> Response:
    query: dict[str, Any] = {"result": outcome}
    if version:
        query["saved"] = version
    target = registration_url(number) + "?" + "&".join(
        f"{key}={quote(str(value), safe='')}" for key, value in query.items())
    return RedirectResponse(target + "#result", status_code=303)
