"""Which address a verified ID token vouches for, under the rules of Entra ID or Google.

The token's signature, audience, times and nonce are checked before (oidc_client); here the
claims that say who the person is and whether they belong to the workplace. Each refusal
names the check, for the log; the browser is told none of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from intake.web.login_links import looks_like_address
from intake.web.oidc_settings import ENTRA, OidcSettings, entra_tenant_issuer

# Google's tokens name their issuer with or without the scheme.
_GOOGLE_ISSUERS = ("https://accounts.google.com", "accounts.google.com")


class OidcRefused(Exception):
    """A login the provider answered but that may not go on; the message names the check
    (never a token or a claim's value)."""


class OidcUnavailable(OidcRefused):
    """A login that cannot go on because the provider did not answer as it should
    (network, its documents) or the client secret cannot be read; no one's fault."""


def expected_issuers(oidc: OidcSettings, claims: Mapping[str, Any]) -> tuple[str, ...]:
    """The issuers a token with these claims may carry.

    Entra: the token's own tenant's issuer, whichever endpoint was configured (the shared
    `organizations` endpoint lets every tenant sign in, so the tenant is checked apart).
    Google: the configured issuer."""
    if oidc.provider == ENTRA:
        tenant = claims.get("tid")
        if not isinstance(tenant, str) or not tenant:
            raise OidcRefused("tid missing")
        return (entra_tenant_issuer(oidc.issuer, tenant),)
    issuer = oidc.issuer.rstrip("/")
    if issuer in _GOOGLE_ISSUERS:
        return _GOOGLE_ISSUERS
    return (issuer,)


def verified_address(oidc: OidcSettings, claims: Mapping[str, Any]) -> str:
    """The mail address the provider vouches for, when the person belongs to one of the
    configured tenants or domains; OidcRefused otherwise."""
    if claims.get("iss") not in expected_issuers(oidc, claims):
        raise OidcRefused("iss is not the tenant's own issuer" if oidc.provider == ENTRA
                          else "iss")
    if oidc.provider == ENTRA:
        return _entra_address(oidc, claims)
    return _google_address(oidc, claims)


def _entra_address(oidc: OidcSettings, claims: Mapping[str, Any]) -> str:
    tenant = str(claims.get("tid", ""))
    if tenant.casefold() not in {configured.casefold() for configured in oidc.tenants}:
        raise OidcRefused("tid not in web.oidc.tenants")
    # preferred_username (or upn) is the account's sign-in name, which the tenant's admin
    # controls. Never `email`: any user may write any address there, unverified.
    for name in ("preferred_username", "upn"):
        value = claims.get(name)
        if isinstance(value, str) and looks_like_address(value):
            return value.strip()
    raise OidcRefused("no preferred_username or upn that is a mail address")


def _google_address(oidc: OidcSettings, claims: Mapping[str, Any]) -> str:
    if claims.get("email_verified") is not True:
        raise OidcRefused("email_verified is not true")
    domain = claims.get("hd")
    # hd is present only for Workspace accounts: a personal Gmail account has none.
    if not isinstance(domain, str) or domain.casefold() not in {
            configured.casefold() for configured in oidc.domains}:
        raise OidcRefused("hd not in web.oidc.domains")
    address = claims.get("email")
    if not isinstance(address, str) or not looks_like_address(address):
        raise OidcRefused("no email")
    return address.strip()
