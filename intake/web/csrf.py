"""A CSRF token on every form, and every POST without the right one refused with 403.

A logged-in person's token is their session's; before login (the login page, the button of a
login link) it is a random value in a cookie of its own, which the form must repeat
(double submit). SameSite=Lax cookies alone would already keep other sites' posts out; the
token also covers browsers that ignore SameSite.
"""

from __future__ import annotations

import hmac
import secrets

from starlette.requests import Request
from starlette.responses import Response

from intake.web.settings import WebSettings

FIELD_NAME = "csrf_token"
PRE_SESSION_COOKIE = "chikanemail_csrf"
_TOKEN_BYTES = 32


def new_token() -> str:
    """A fresh random token."""
    return secrets.token_urlsafe(_TOKEN_BYTES)


def tokens_match(expected: str | None, given: str | None) -> bool:
    """Whether a form's token is the expected one (compared in constant time)."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))


async def form_token(request: Request) -> str | None:
    """The token a posted form carries (the form is read once; Starlette keeps it)."""
    form = await request.form()
    value = form.get(FIELD_NAME)
    return value if isinstance(value, str) else None


def set_pre_session_cookie(response: Response, token: str, web: WebSettings) -> None:
    """Give a browser without a session its form token."""
    response.set_cookie(PRE_SESSION_COOKIE, token, path="/", secure=web.cookies_secure,
                        httponly=True, samesite="lax")
