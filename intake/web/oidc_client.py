"""The authorization-code flow with the identity provider: discovery, the authorization URL
(PKCE S256, state, nonce), the token exchange, and the ID token checked against the
provider's keys.

authlib's requests client builds the URL and makes the exchange; joserfc (authlib's JOSE
library) checks the signature and the standard claims. Everything here blocks on the
network: the web handlers call it through `asyncio.to_thread`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from authlib.common.errors import AuthlibBaseError  # type: ignore[import-untyped]
from authlib.integrations.requests_client import OAuth2Session  # type: ignore[import-untyped]
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from intake.web.oidc_claims import OidcRefused, OidcUnavailable
from intake.web.oidc_prelogin import PreLogin
from intake.web.oidc_settings import ENTRA, OidcSettings, secure_url

# Asymmetric algorithms only: an HMAC-signed token would be signed with our own secret.
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384",
              "ES512")
SCOPE = "openid profile email"
# The clocks of the provider and of this machine may differ by this much.
LEEWAY_SECONDS = 120
# Discovery and keys are fetched again after this long; the keys also when a token names a
# key not among them (the provider rotated), at most once per _KEYS_REFRESH_SECONDS.
_CACHE_SECONDS = 3600.0
_KEYS_REFRESH_SECONDS = 60.0
_ENTRA_ISSUER_TEMPLATE = "{tenantid}"


@dataclass(frozen=True)
class ProviderMetadata:
    """What discovery told us about the provider."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    end_session_endpoint: str | None


def read_client_secret(oidc: OidcSettings) -> str:
    """The client secret from its file (read at each login, so a new one counts at once);
    OidcRefused when it cannot be read."""
    try:
        value = Path(oidc.client_secret_file).read_text(encoding="utf-8").strip()
    except OSError as error:
        raise OidcUnavailable(f"cannot read web.oidc.client_secret_file "
                              f"({error.strerror or type(error).__name__})") from None
    if not value:
        raise OidcUnavailable("web.oidc.client_secret_file is empty")
    return value


def _discovery_issuer_matches(oidc: OidcSettings, issuer: object) -> bool:
    """OpenID Connect Discovery: the document's issuer is the one asked for. Entra ID's
    shared endpoints answer with a template issuer (…/{tenantid}/v2.0) instead."""
    configured = oidc.issuer.rstrip("/")
    if not isinstance(issuer, str):
        return False
    if issuer.rstrip("/") == configured:
        return True
    if oidc.provider != ENTRA or _ENTRA_ISSUER_TEMPLATE not in issuer:
        return False
    ours, theirs = urlsplit(configured), urlsplit(issuer)
    return (ours.scheme, ours.netloc) == (theirs.scheme, theirs.netloc)


class OidcClient:
    """One registration at one provider: begins logins and finishes them. Safe to share
    between threads."""

    def __init__(self, oidc: OidcSettings, redirect_uri: str) -> None:
        self.settings = oidc
        self.redirect_uri = redirect_uri
        self._lock = threading.Lock()
        self._metadata: tuple[float, ProviderMetadata] | None = None
        self._keys: tuple[float, KeySet] | None = None

    def metadata(self) -> ProviderMetadata:
        """The provider's discovery document (cached)."""
        with self._lock:
            if self._metadata is not None and time.monotonic() - self._metadata[0] < \
                    _CACHE_SECONDS:
                return self._metadata[1]
        document = self._get_json(self.settings.issuer.rstrip("/")
                                  + "/.well-known/openid-configuration", "discovery")
        if not _discovery_issuer_matches(self.settings, document.get("issuer")):
            raise OidcUnavailable("discovery names another issuer")
        endpoints = {}
        for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            value = document.get(name)
            if not isinstance(value, str) or not secure_url(value):
                raise OidcUnavailable(f"discovery has no usable {name}")
            endpoints[name] = value
        end_session = document.get("end_session_endpoint")
        metadata = ProviderMetadata(
            issuer=str(document["issuer"]), **endpoints,
            end_session_endpoint=end_session if isinstance(end_session, str)
            and secure_url(end_session) else None)
        with self._lock:
            self._metadata = (time.monotonic(), metadata)
        return metadata

    def authorization_url(self, pre_login: PreLogin) -> str:
        """Where to send the browser to log in at the provider."""
        metadata = self.metadata()
        with self._session(None) as client:
            url, _state = client.create_authorization_url(
                metadata.authorization_endpoint, state=pre_login.state,
                code_verifier=pre_login.code_verifier, nonce=pre_login.nonce)
        return str(url)

    def finish(self, pre_login: PreLogin, query: Mapping[str, str], client_secret: str, *,
               now: datetime) -> dict[str, Any]:
        """The verified claims of the ID token the provider gives for the callback's
        `query`; OidcRefused when the answer or the token fails a check."""
        if query.get("error"):
            raise OidcRefused("the provider answered with an error")
        state, code = query.get("state"), query.get("code")
        if not state or state != pre_login.state:
            raise OidcRefused("state")
        if not code:
            raise OidcRefused("no code")
        metadata = self.metadata()
        # RFC 9207: a provider that names itself in its answer must name itself (a code
        # from another provider, mixed up by the browser, is refused before it is sent).
        answered_by = query.get("iss")
        if answered_by is not None and _ENTRA_ISSUER_TEMPLATE not in metadata.issuer and \
                answered_by != metadata.issuer:
            raise OidcRefused("the answer's iss parameter names another issuer")
        with self._session(client_secret) as client:
            try:
                token = client.fetch_token(
                    metadata.token_endpoint, grant_type="authorization_code", code=code,
                    code_verifier=pre_login.code_verifier,
                    timeout=self.settings.timeout_seconds)
            except requests.RequestException as error:
                raise OidcUnavailable(
                    f"token exchange failed ({type(error).__name__})") from None
            except (AuthlibBaseError, ValueError) as error:
                # The provider refused the code (used, expired, not ours). Its answer may
                # carry details; the log gets only the error code.
                raise OidcRefused("token exchange refused "
                                  f"({getattr(error, 'error', None) or type(error).__name__})"
                                  ) from None
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise OidcRefused("no id_token")
        return self._verified_claims(id_token, pre_login, now=now)

    def _verified_claims(self, id_token: str, pre_login: PreLogin, *,
                         now: datetime) -> dict[str, Any]:
        keys = self._key_set(refresh=False)
        try:
            try:
                decoded = jwt.decode(id_token, keys, algorithms=list(ALGORITHMS))
            except JoseError:
                # Perhaps signed with a key the provider added since we fetched them.
                decoded = jwt.decode(id_token, self._key_set(refresh=True),
                                     algorithms=list(ALGORITHMS))
        except JoseError as error:
            raise OidcRefused(f"signature ({type(error).__name__})") from None
        claims = dict(decoded.claims)
        registry = jwt.JWTClaimsRegistry(
            now=int(now.timestamp()), leeway=LEEWAY_SECONDS,
            aud={"essential": True, "value": self.settings.client_id},
            exp={"essential": True}, iat={"essential": True}, sub={"essential": True},
            iss={"essential": True},
            nonce={"essential": True, "value": pre_login.nonce})
        try:
            registry.validate(claims)
        except JoseError as error:
            raise OidcRefused(f"claims ({type(error).__name__}: "
                              f"{getattr(error, 'claim', '') or error.error})") from None
        audience = claims["aud"]
        if isinstance(audience, list) and len(audience) > 1 and \
                claims.get("azp") != self.settings.client_id:
            raise OidcRefused("several audiences and azp is not ours")
        return claims

    def _key_set(self, *, refresh: bool) -> KeySet:
        with self._lock:
            cached = self._keys
        age = time.monotonic() - cached[0] if cached else None
        if cached is not None and age is not None and (
                (not refresh and age < _CACHE_SECONDS)
                or (refresh and age < _KEYS_REFRESH_SECONDS)):
            return cached[1]
        document = self._get_json(self.metadata().jwks_uri, "keys")
        try:
            keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError):
            raise OidcUnavailable("the provider's keys cannot be read") from None
        with self._lock:
            self._keys = (time.monotonic(), keys)
        return keys

    def _get_json(self, url: str, what: str) -> dict[str, Any]:
        try:
            response = requests.get(url, timeout=self.settings.timeout_seconds,
                                    allow_redirects=False)
            response.raise_for_status()
            document = response.json()
        except (requests.RequestException, ValueError) as error:
            raise OidcUnavailable(f"{what} failed ({type(error).__name__})") from None
        if not isinstance(document, dict):
            raise OidcUnavailable(f"{what} is not a JSON object")
        return document

    def _session(self, client_secret: str | None) -> OAuth2Session:
        return OAuth2Session(client_id=self.settings.client_id, client_secret=client_secret,
                             scope=SCOPE, redirect_uri=self.redirect_uri,
                             code_challenge_method="S256")
