"""The EASY summary (issue 22, point 4): `GET /cases/{number}/easy` is a printable page with
what Arbejdstilsynet's work-accident report (arbejdsulykke, in EASY) asks for, filled from the
newest registration and the case, to copy into EASY; `POST` records that it was reported,
with the EASY case number and the day, through
`notifier.case_actions.CaseActions.easy_reported`.

Only someone who may see the case reaches either (404 otherwise); opening the page is
audited like the case page. The post answers with a redirect back to the page
(POST-redirect-GET) whose `?result=` the page words.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from urllib.parse import quote

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from intake.web.access import Viewer, locked_case_for_viewer, visible_cases
from intake.web.context import WebContext
from intake.web.pages.case_view import case_by_number
from intake.web.pages.registration_page import case_actions
from intake.web.pages.registration_summary import EasyStatus, easy_status
from intake.web.pages.viewing import (
    VIEWED,
    not_found,
    record_view,
    viewer_of,
    web_actor,
    web_context,
)
from intake.web.rendering import render
from notifier.case_actions import ALREADY, CASE_CLOSED, DONE, EASY_NUMBER_MAX_CHARS
from storage.i18n.catalogs import N_, translations
from storage.models import Case, CaseStatus, HarasserRelation
from storage.registration_prefill import starting_fields
from storage.registration_words import value_words
from storage.registrations import RegistrationFields, latest_registration
from storage.time_text import long_date

# The form was unusable: no number, one too long, or no day.
INVALID = "invalid"
RESULTS = (DONE, ALREADY, CASE_CLOSED, INVALID)

# What caused the psychological injury, by the harasser's coarse relation: from outside the
# workplace it is violence or threats (AT guidance D.4.3), between colleagues krænkende
# handlinger (4.3.1).
CAUSES = {
    HarasserRelation.EXTERNAL.value: N_(
        "Violence or threats from someone outside the workplace (vold og trusler), "
        "digitally"),
    HarasserRelation.COLLEAGUE.value: N_(
        "Offensive behaviour from a colleague or manager (krænkende handlinger), digitally"),
    HarasserRelation.UNKNOWN.value: N_(
        "Violence, threats or offensive behaviour, digitally; who the harasser is, is not "
        "known"),
}


@dataclass(frozen=True)
class EasyRow:
    """One field of the report: its label and what to write."""

    label: str
    value: str


@dataclass(frozen=True)
class EasySection:
    """A group of the report's fields under a heading."""

    heading: str
    rows: tuple[EasyRow, ...]


@dataclass(frozen=True)
class EasyPage:
    """What the EASY page shows."""

    case: Case
    registered: bool
    sections: tuple[EasySection, ...]
    status: EasyStatus | None
    reported_on: str | None
    today: str  # the form's default day, ISO

    @property
    def closed(self) -> bool:
        """Whether the case is closed (nothing can be recorded any more)."""
        return self.case.status == CaseStatus.CLOSED


def _period(fields: RegistrationFields, language: str) -> str:
    gettext = translations(language).gettext
    start, end = fields.period_start, fields.period_end
    if start is None:
        return ""
    if end is None or end == start:
        return long_date(start, language)
    return gettext("from %(start)s to %(end)s") % {"start": long_date(start, language),
                                                   "end": long_date(end, language)}


def easy_sections(case: Case, fields: RegistrationFields,
                  language: str) -> tuple[EasySection, ...]:
    """The report's fields, grouped as the work-accident report asks for them."""
    gettext = translations(language).gettext

    def row(label: str, value: str) -> EasyRow:
        return EasyRow(gettext(label), value or gettext("not known"))

    def words(name: str) -> str:
        return value_words(name, getattr(fields, name), language)

    # Recorded on the case (by reply, CLI or the panel) after the registration was saved.
    absence_day = value_words("first_absence_day",
                              fields.first_absence_day or case.first_absence_day, language)

    return (
        EasySection(gettext("Who"), (
            row(N_("The injured employee"), fields.affected_employee or case.reporter),
            row(N_("The workplace"),
                gettext("The employer you report for when you log in to EASY")),
        )),
        EasySection(gettext("When"), (
            row(N_("When it happened"), _period(fields, language)),
            row(N_("First day of absence"), absence_day),
        )),
        EasySection(gettext("Where"), (
            row(N_("Medium"), words("medium")),
            row(N_("Place"), gettext("At work: digital harassment received because of the "
                                     "work")),
        )),
        EasySection(gettext("What happened"), (
            row(N_("Type of harassment"), words("harassment_type")),
            row(N_("Description"), fields.description),
        )),
        EasySection(gettext("The injury"), (
            row(N_("Kind of injury"), gettext("Psychological injury (psykisk skade)")),
            row(N_("Cause"), gettext(CAUSES[fields.coarse_relation])),
            row(N_("The harasser's relation"), words("relation")),
        )),
        EasySection(gettext("Absence"), (
            row(N_("Sick leave or other absence"), words("absence")),
            row(N_("First day of absence"), absence_day),
        )),
        EasySection(gettext("Handling"), (
            row(N_("Responsible for handling the case"), fields.handler or case.manager),
            row(N_("Our case number"), case.number),
        )),
    )


def _read_page(context: WebContext, viewer: Viewer, number: str) -> EasyPage | None:
    language, zone = viewer.language, context.config.ui.zone
    now = context.clock.now()
    with context.database.read() as session:
        case = case_by_number(session, visible_cases(viewer), number)
        if case is None:
            return None
        page = _page(session, case, language, zone, now)
        session.expunge(case)
    return page


def _page(session: Session, case: Case, language: str, zone: tzinfo,
          now: datetime) -> EasyPage:
    registered = latest_registration(session, case.id) is not None
    fields = starting_fields(session, case, language=language, zone=zone)
    return EasyPage(
        case=case, registered=registered, sections=easy_sections(case, fields, language),
        status=easy_status(session, case, language=language, zone=zone, now=now),
        reported_on=(long_date(case.easy_reported_on, language)
                     if case.easy_reported_on is not None else None),
        today=now.astimezone(zone).date().isoformat())


def easy_page(request: Request) -> Response:
    """GET /cases/{number}/easy: the printable summary and the form that records the
    report; opening it is audited."""
    page = _read_page(web_context(request), viewer_of(request),
                      request.path_params["number"])
    if page is None:
        raise not_found()
    record_view(request, VIEWED, page.case.number, details={"what": "easy"})
    result = request.query_params.get("result")
    return render(request, "easy.html", {
        "page": page, "case": page.case, "result": result if result in RESULTS else None,
        "number_max": EASY_NUMBER_MAX_CHARS})


def record_report(context: WebContext, viewer: Viewer, number: str, easy_number: str,
                  day_text: str) -> tuple[str, str] | None:
    """Record the EASY report for the viewer, in one transaction with the case locked: the
    case's number and the outcome; None when the viewer may not see the case."""
    try:
        day: date | None = date.fromisoformat(day_text.strip())
    except ValueError:
        day = None
    with context.database.write() as session:
        case = locked_case_for_viewer(session, viewer, number)
        if case is None:
            return None
        if day is None and case.status != CaseStatus.CLOSED:
            return case.number, INVALID
        try:
            result = case_actions(context).easy_reported(
                session, case, easy_number, day or context.clock.now().date(),
                actor=web_actor(viewer), now=context.clock.now())
        except ValueError:  # no number, or one too long: nothing was changed
            return case.number, INVALID
        return case.number, result.outcome


async def record_easy_report(request: Request) -> Response:
    """POST /cases/{number}/easy: record the EASY case number and the day it was reported,
    then back to the EASY page."""
    context = web_context(request)
    form = await request.form()
    easy_number, day = form.get("easy_number"), form.get("day")
    done = await asyncio.to_thread(
        record_report, context, viewer_of(request), request.path_params["number"],
        easy_number if isinstance(easy_number, str) else "",
        day if isinstance(day, str) else "")
    if done is None:
        raise not_found()
    number, outcome = done
    return RedirectResponse(f"/cases/{quote(number, safe='')}/easy?result={outcome}#result",
                            status_code=303)
