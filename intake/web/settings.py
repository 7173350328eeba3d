"""The [web] table: where the managers' and admins' pages listen and how long a login lasts."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from storage.settings import FORBID_UNKNOWN_KEYS

DEFAULT_LISTEN = "127.0.0.1:8080"


@dataclass(frozen=True)
class WebSettings:
    """The web view: its listener, the address links in mails use, proxies, session limits."""

    __pydantic_config__ = FORBID_UNKNOWN_KEYS

    enabled: bool = True
    # host:port ("[::1]:8080" for IPv6); port 0 picks a free port (tests).
    listen: str = DEFAULT_LISTEN
    # Where people reach the pages, e.g. "https://chikanemail.kommune.dk"; links in mails
    # start with it. Empty: http://<listen>.
    base_url: str = ""
    # Peers (addresses or networks) whose X-Forwarded-For names the client: the TLS proxy.
    trusted_proxies: tuple[str, ...] = ()
    # A session ends after this long without a request, and in any case this long after login.
    idle_timeout_minutes: float = 30.0
    absolute_timeout_hours: float = 12.0
    # A login link mailed (or printed by `chikanemail web link`) works once, within this.
    login_link_minutes: float = 15.0
    # Login links asked for, per address and per client, within login_rate_window_minutes.
    login_requests_per_address: int = 5
    login_requests_per_client: int = 20
    login_rate_window_minutes: float = 15.0

    @property
    def host(self) -> str:
        """The address part of `listen`, without IPv6 brackets."""
        return split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        """The port part of `listen`."""
        return split_listen(self.listen)[1]

    @property
    def effective_base_url(self) -> str:
        """`base_url` without a trailing slash, or the listen address as an http URL."""
        if self.base_url:
            return self.base_url.rstrip("/")
        host, port = split_listen(self.listen)
        shown = f"[{host}]" if ":" in host else host
        if shown in ("0.0.0.0", "[::]", ""):  # noqa: S104  # a wildcard is reached locally
            shown = "127.0.0.1"
        return f"http://{shown}:{port}"

    @property
    def cookies_secure(self) -> bool:
        """Whether the session cookie is `Secure`: always, except for a loopback http base URL
        (a browser on the same machine, as in the README's first run)."""
        parts = urlsplit(self.effective_base_url)
        return parts.scheme == "https" or not _is_loopback(parts.hostname or "")


def split_listen(listen: str) -> tuple[str, int]:
    """`host:port` (or `[v6]:port`) as (host, port); ValueError when it is not that."""
    host, separator, port = listen.rpartition(":")
    if not separator or not port.isdigit():
        raise ValueError(f"{listen!r} is not host:port (e.g. \"127.0.0.1:8080\")")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"{listen!r}: write an IPv6 address in brackets, e.g. \"[::1]:8080\"")
    number = int(port)
    if not 0 <= number <= 65535:
        raise ValueError(f"{listen!r}: the port must be between 0 and 65535")
    return host, number


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def web_settings_problem(web: WebSettings) -> tuple[str, str] | None:
    """The first key of [web] that cannot work and why, or None when all can."""
    try:
        split_listen(web.listen)
    except ValueError as error:
        return "web.listen", str(error)
    if web.base_url:
        parts = urlsplit(web.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return "web.base_url", f"{web.base_url!r} is not an http(s) URL"
        if parts.query or parts.fragment:
            return "web.base_url", f"{web.base_url!r} must not have a query or fragment"
    for proxy in web.trusted_proxies:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            return "web.trusted_proxies", f"{proxy!r} is not an address or network"
    for key, value in (("web.idle_timeout_minutes", web.idle_timeout_minutes),
                       ("web.absolute_timeout_hours", web.absolute_timeout_hours),
                       ("web.login_link_minutes", web.login_link_minutes),
                       ("web.login_rate_window_minutes", web.login_rate_window_minutes)):
        if value <= 0:
            return key, "must be greater than 0"
    for key, count in (("web.login_requests_per_address", web.login_requests_per_address),
                       ("web.login_requests_per_client", web.login_requests_per_client)):
        if count < 1:
            return key, "must be at least 1"
    return None
