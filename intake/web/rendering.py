"""Pages rendered from `intake/web/templates/` in the viewer's language.

One Jinja2 environment per language, autoescaping every value, with the catalogs of
storage/i18n bound to `{% trans %}`, `_()`, `ngettext()` and `pgettext()`. Every template
sees `request`, `viewer` (None before login), `csrf_token`, `csrf_field` (its form field
name), `base_url` and `language`.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from intake.web.csrf import FIELD_NAME
from storage.i18n.catalogs import LANGUAGES
from storage.i18n.jinja import install_translations

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"


@cache
def environment(language: str) -> Environment:
    """The template environment of one language (built once per process)."""
    if language not in LANGUAGES:
        raise ValueError(f"no catalog for language {language!r}")
    env = Environment(
        loader=FileSystemLoader(TEMPLATE_DIR),
        # Every page is HTML: escape every value, whatever the file is called.
        autoescape=select_autoescape(default=True, default_for_string=True),
        # The same whitespace options babel.cfg extracts with, so the msgids match.
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
    )
    install_translations(env, language)
    return env


def page_language(request: Request) -> str:
    """The language of the page: the viewer's, else the workplace's ([ui] language)."""
    viewer = getattr(request.state, "viewer", None)
    if viewer is not None:
        return str(viewer.language)
    return str(request.app.state.context.config.ui.language)


def render(request: Request, template_name: str, context: Mapping[str, Any] | None = None,
           status: int = 200, headers: Mapping[str, str] | None = None) -> HTMLResponse:
    """The page `template_name` with `context` (plus what every page sees), as a response."""
    language = page_language(request)
    full: dict[str, Any] = {
        "request": request,
        "viewer": getattr(request.state, "viewer", None),
        "csrf_token": getattr(request.state, "csrf_token", ""),
        "csrf_field": FIELD_NAME,
        "base_url": request.app.state.context.base_url,
        "language": language,
        **(context or {}),
    }
    html = environment(language).get_template(template_name).render(full)
    return HTMLResponse(html, status_code=status, headers=dict(headers or {}))
