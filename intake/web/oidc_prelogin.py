"""The pre-login record: what the callback must find again after the provider sends the
browser back (state, nonce, PKCE verifier, where the person was going).

It travels in a short-lived HttpOnly cookie sealed with an HMAC, so any daemon sharing the
database can finish a login another started. The key is derived from the client secret,
which every daemon of the installation reads and nobody outside has.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from starlette.responses import Response

from intake.web.settings import WebSettings

COOKIE_NAME = "chikanemail_oidc"
COOKIE_PATH = "/login/oidc"
# Time enough to log in at the provider (with a second factor), short enough to be useless
# when stolen later.
LIFETIME = timedelta(minutes=10)
_KEY_LABEL = b"chikanemail web oidc pre-login record v1"
_MAX_COOKIE = 2000


@dataclass(frozen=True)
class PreLogin:
    """One login under way at the provider."""

    state: str
    nonce: str
    code_verifier: str
    next_path: str
    expires: float  # POSIX seconds


def new_pre_login(next_path: str | None, *, now: datetime) -> PreLogin:
    """Fresh random state, nonce and PKCE verifier for a login starting now."""
    return PreLogin(state=secrets.token_urlsafe(32), nonce=secrets.token_urlsafe(32),
                    code_verifier=secrets.token_urlsafe(48), next_path=next_path or "",
                    expires=(now + LIFETIME).timestamp())


def sealing_key(client_secret: str) -> bytes:
    """The HMAC key of the record, derived from the client secret."""
    return hmac.new(client_secret.encode("utf-8"), _KEY_LABEL, hashlib.sha256).digest()


def seal(record: PreLogin, key: bytes) -> str:
    """The record as a cookie value: its JSON and the HMAC of it, base64url."""
    body = base64.urlsafe_b64encode(json.dumps(asdict(record)).encode("utf-8"))
    mac = base64.urlsafe_b64encode(hmac.new(key, body, hashlib.sha256).digest())
    return f"{body.decode('ascii')}.{mac.decode('ascii')}"


def unseal(value: str | None, key: bytes, *, now: datetime) -> PreLogin | None:
    """The record a cookie carries when its HMAC is ours and it has not expired, else None."""
    if not value or len(value) > _MAX_COOKIE or value.count(".") != 1:
        return None
    body, mac = value.split(".")
    expected = base64.urlsafe_b64encode(
        hmac.new(key, body.encode("ascii", "replace"), hashlib.sha256).digest())
    if not hmac.compare_digest(expected, mac.encode("ascii", "replace")):
        return None
    try:
        record = PreLogin(**json.loads(base64.urlsafe_b64decode(body)))
    except (ValueError, TypeError):
        return None
    if now.timestamp() >= record.expires:
        return None
    return record


def set_pre_login_cookie(response: Response, value: str, web: WebSettings) -> None:
    """Hand the browser its sealed record; only the callback's path receives it again.
    SameSite=Lax: the provider's redirect back is a top-level GET, which carries it."""
    response.set_cookie(COOKIE_NAME, value, max_age=int(LIFETIME.total_seconds()),
                        path=COOKIE_PATH, secure=web.cookies_secure, httponly=True,
                        samesite="lax")


def clear_pre_login_cookie(response: Response, web: WebSettings) -> None:
    """Tell the browser to forget the record (it is good for one callback only)."""
    response.delete_cookie(COOKIE_NAME, path=COOKIE_PATH, secure=web.cookies_secure,
                           httponly=True, samesite="lax")
