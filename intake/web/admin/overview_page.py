"""GET /admin: where the admin pages are, each with a line on what it shows."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from intake.web.admin.guard import admin_viewer
from intake.web.rendering import render


async def overview_page(request: Request) -> Response:
    """The list of admin pages."""
    admin_viewer(request)
    return render(request, "admin_index.html")
