"""The [web.oidc] table: logging in with the workplace's Microsoft Entra ID or Google Workspace."""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from storage.settings import FORBID_UNKNOWN_KEYS

ENTRA = "entra"
GOOGLE = "google"
PROVIDERS = (ENTRA, GOOGLE)
# Entra ID's issuers are https://login.microsoftonline.com/<tenant>/v2.0.
_ENTRA_PATH = re.compile(r"/([^/]+)/v2\.0/?")
# Entra's shared endpoints: they name no tenant, so they cannot be a tenant of the list.
ENTRA_SHARED_TENANTS = frozenset({"common", "organizations", "consumers", "{tenantid}"})
_DOMAIN = re.compile(r"([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{1,63}")


@dataclass(frozen=True)
class OidcSettings:
    """Which identity provider, which app registration at it, and which of its tenants
    (Entra ID) or domains (Google Workspace) are the workplace's."""

    __pydantic_config__ = FORBID_UNKNOWN_KEYS

    # "entra" (Microsoft Entra ID) or "google" (Google Workspace).
    provider: str = ""
    # Entra: https://login.microsoftonline.com/<tenant id>/v2.0 (or the organizations
    # endpoint for several tenants); Google: https://accounts.google.com.
    issuer: str = ""
    client_id: str = ""
    # The client secret, in a file of its own (never in this file).
    client_secret_file: str = ""
    # Entra: the tenant ids (`tid`) whose people may log in. Required with "entra".
    tenants: tuple[str, ...] = ()
    # Google: the Workspace domains (`hd`) whose people may log in. Required with "google".
    domains: tuple[str, ...] = ()
    # How long to wait for the provider (discovery, keys, the token exchange).
    timeout_seconds: float = 10.0


def is_loopback_host(host: str) -> bool:
    """Whether a host name or address is this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def secure_url(url: str) -> bool:
    """Whether a provider URL may be used: https, or http on this machine (tests)."""
    parts = urlsplit(url)
    if not parts.hostname:
        return False
    return parts.scheme == "https" or (parts.scheme == "http"
                                       and is_loopback_host(parts.hostname))


def oidc_settings_problem(oidc: OidcSettings) -> tuple[str, str] | None:
    """The first key of [web.oidc] that cannot work and why, or None when all can."""
    if oidc.provider not in PROVIDERS:
        return "web.oidc.provider", f'must be "entra" or "google" (got {oidc.provider!r})'
    if not oidc.issuer:
        return "web.oidc.issuer", ("needed (Entra ID: https://login.microsoftonline.com/"
                                   "<tenant id>/v2.0; Google: https://accounts.google.com)")
    parts = urlsplit(oidc.issuer)
    if not secure_url(oidc.issuer) or parts.query or parts.fragment:
        return "web.oidc.issuer", (f"{oidc.issuer!r} must be an https URL without query "
                                   "(http only on this machine, for tests)")
    if oidc.provider == ENTRA and not _ENTRA_PATH.fullmatch(parts.path):
        return "web.oidc.issuer", (f"{oidc.issuer!r} is not an Entra ID issuer "
                                   "(https://login.microsoftonline.com/<tenant id>/v2.0)")
    if not oidc.client_id.strip():
        return "web.oidc.client_id", "needed: the app's client id at the provider"
    if not oidc.client_secret_file:
        return "web.oidc.client_secret_file", "needed: the file holding the client secret"
    if not os.access(oidc.client_secret_file, os.R_OK):
        return "web.oidc.client_secret_file", (f"file {oidc.client_secret_file} does not "
                                               "exist or is not readable")
    if oidc.timeout_seconds <= 0:
        return "web.oidc.timeout_seconds", "must be greater than 0"
    if oidc.provider == ENTRA:
        return _entra_problem(oidc)
    return _google_problem(oidc)


def _entra_problem(oidc: OidcSettings) -> tuple[str, str] | None:
    if oidc.domains:
        return "web.oidc.domains", 'is for provider = "google"; Entra ID uses tenants'
    if not oidc.tenants:
        return "web.oidc.tenants", ("must list at least one tenant id: only people of these "
                                    "tenants may log in")
    for tenant in oidc.tenants:
        if not tenant.strip() or "/" in tenant or tenant.casefold() in ENTRA_SHARED_TENANTS:
            return "web.oidc.tenants", f"{tenant!r} is not a tenant id"
    return None


def _google_problem(oidc: OidcSettings) -> tuple[str, str] | None:
    if oidc.tenants:
        return "web.oidc.tenants", 'is for provider = "entra"; Google uses domains'
    if not oidc.domains:
        return "web.oidc.domains", ("must list at least one Workspace domain: only people of "
                                    "these domains may log in")
    for domain in oidc.domains:
        if not _DOMAIN.fullmatch(domain.casefold()):
            return "web.oidc.domains", f"{domain!r} is not a domain (write kommune.dk)"
    return None


def entra_tenant_issuer(configured_issuer: str, tenant_id: str) -> str:
    """The issuer of tokens of one Entra tenant, on the configured issuer's host:
    https://login.microsoftonline.com/<tenant id>/v2.0."""
    parts = urlsplit(configured_issuer)
    return f"{parts.scheme}://{parts.netloc}/{tenant_id}/v2.0"
