"""The pages a logged-in manager or admin reads (issue 20): the case list, a case, its
evidence, and the downloads. Every handler checks who may see what on each request
(`intake.web.access`); a case the viewer may not see is a 404."""

from __future__ import annotations

from starlette.routing import BaseRoute, Route

from intake.web.pages import case_actions
from intake.web.pages.case_page import case_page
from intake.web.pages.easy_page import easy_page, record_easy_report
from intake.web.pages.evidence_pages import (
    evidence_download,
    evidence_page,
    evidence_thumbnail,
    message_download,
)
from intake.web.pages.export_download import export_download
from intake.web.pages.list_page import case_list
from intake.web.pages.registration_page import registration_page, save_registration_page
from intake.web.pages.status_link import retire_status_link

# A case number as the path carries it; anything else is not a case (404 from the router).
_NUMBER = "{number:str}"


def routes() -> list[BaseRoute]:
    """The pages' routes, all under /cases (where the login is required)."""
    case = f"/cases/{_NUMBER}"
    return [
        Route("/cases", case_list, methods=["GET"], name="cases"),
        Route(case, case_page, methods=["GET"], name="case"),
        Route(f"{case}/export.zip", export_download, methods=["GET"], name="case_export"),
        Route(f"{case}/evidence/{{evidence_id:int}}", evidence_page, methods=["GET"],
              name="evidence"),
        Route(f"{case}/evidence/{{evidence_id:int}}/thumbnail", evidence_thumbnail,
              methods=["GET"], name="evidence_thumbnail"),
        Route(f"{case}/evidence/{{evidence_id:int}}/download", evidence_download,
              methods=["GET"], name="evidence_download"),
        Route(f"{case}/mails/{{message_id:int}}/download", message_download,
              methods=["GET"], name="message_download"),
        Route(f"{case}/status-link/retire", retire_status_link, methods=["POST"]),
        Route(f"{case}/registration", registration_page, methods=["GET"], name="registration"),
        Route(f"{case}/registration", save_registration_page, methods=["POST"],
              name="registration_save"),
        Route(f"{case}/easy", easy_page, methods=["GET"], name="easy"),
        Route(f"{case}/easy", record_easy_report, methods=["POST"], name="easy_report"),
        *case_actions.routes(),
    ]
