"""Verify a mail's DKIM signatures ourselves, on its exact raw bytes, with the admin's DNS.

dkimpy does the cryptography; this module decides which signatures are worth checking, asks
DNS for the keys through dnspython (the servers of `[trust] dns_servers`), and keeps a
temporary DNS failure apart from a failing signature: dkimpy only catches its own
`DnsTimeoutError` around the key lookup, so `DnsTemporaryError` (a `ChikanemailError`, which
dkimpy does not catch) raised by our lookup passes through `DKIM.verify` untouched.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import dkim
import dkim.util
import dns.exception
import dns.name
import dns.nameserver
import dns.rdtypes.txtbase
import dns.resolver

from intake.service.settings import TrustSettings
from storage.errors import ChikanemailError

log = logging.getLogger(__name__)

# dkimpy logs key and signature errors at ERROR level for what is only a bad signature in
# someone's mail; its own logger stays silent (and never sees DEBUG, which would make it
# log canonicalized message content).
_DKIMPY_LOG = logging.getLogger("intake.trust.dkim.dkimpy")
_DKIMPY_LOG.addHandler(logging.NullHandler())
_DKIMPY_LOG.propagate = False
_DKIMPY_LOG.setLevel(logging.CRITICAL)

# Each signature costs a DNS query and an RSA operation; a mail with more is not ours.
MAX_SIGNATURES = 8
# RFC 8301: verifiers must not accept rsa-sha1. ed25519-sha256 needs PyNaCl (then it is
# checked; without it dkimpy fails the signature).
_ALGORITHMS = {b"rsa-sha256", b"ed25519-sha256"}
# A key's DNS name as dkimpy builds it, "selector._domainkey.domain."; nothing else is asked.
_KEY_NAME = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?")


class DnsTemporaryError(ChikanemailError):
    """A DNS lookup for a DKIM key failed temporarily (SERVFAIL, timeout): retry later."""


@dataclass(frozen=True)
class DkimVerdict:
    """What the DKIM signatures of one mail came to.

    `signatures` counts the DKIM-Signature fields (up to `MAX_SIGNATURES`); `aligned_pass` is
    the d= of a verified signature that the caller's alignment test accepted, if any;
    `unaligned_pass` says whether a signature verified whose d= is not aligned.
    """

    signatures: int
    aligned_pass: str | None = None
    unaligned_pass: bool = False


def verify_signatures(raw: bytes, settings: TrustSettings,
                      aligned: Callable[[str], bool]) -> DkimVerdict:
    """Check the DKIM signatures of `raw`; `aligned(d)` says which signing domains count.

    Signatures whose domain is aligned are checked first and the first that verifies ends
    the check. A temporary DNS failure raises `DnsTemporaryError`, but only when it hit an
    aligned signature and no other aligned signature verified: a signature of some other
    domain can never authenticate the sender, so its DNS trouble is no reason to retry.
    Signatures that sign no From, use rsa-sha1, or carry a body length (l=, which lets
    anyone append to the body) never count.
    """
    verifier = dkim.DKIM(raw, logger=_DKIMPY_LOG, timeout=settings.dns_timeout_seconds)
    fields = [value for name, value in verifier.headers
              if name.lower() == b"dkim-signature"][:MAX_SIGNATURES]
    candidates: list[tuple[bool, int, str]] = []
    for index, value in enumerate(fields):
        domain = _acceptable_signature_domain(value)
        if domain is not None:
            candidates.append((aligned(domain), index, domain))
    candidates.sort(key=lambda candidate: not candidate[0])  # aligned ones first, stable
    lookup = KeyLookup(settings)
    unaligned_pass = False
    temporary: DnsTemporaryError | None = None
    for is_aligned, index, domain in candidates:
        if not is_aligned and unaligned_pass:
            continue
        try:
            verified = _verify_one(verifier, index, lookup)
        except DnsTemporaryError as error:
            if is_aligned:
                temporary = error
            continue
        if verified and is_aligned:
            return DkimVerdict(len(fields), aligned_pass=domain)
        unaligned_pass = unaligned_pass or verified
    if temporary is not None:
        raise temporary
    return DkimVerdict(len(fields), unaligned_pass=unaligned_pass)


def _acceptable_signature_domain(value: bytes) -> str | None:
    """The signature's d= (lower case), or None when the signature can never count."""
    try:
        tags = dkim.util.parse_tag_value(value)
        domain = tags[b"d"].decode("ascii").strip().lower()
        signed = {name.strip().lower() for name in tags[b"h"].split(b":")}
    except Exception:  # any malformed tag list is a signature that fails
        return None
    if tags.get(b"a") not in _ALGORITHMS or b"l" in tags or b"from" not in signed:
        return None
    return domain or None


def _verify_one(verifier: dkim.DKIM, index: int, lookup: KeyLookup) -> bool:
    """Whether signature number `index` verifies; any malformation is a failure."""
    try:
        return bool(verifier.verify(idx=index, dnsfunc=lookup))
    except DnsTemporaryError:
        raise
    except Exception as error:  # dkimpy raises many kinds for bad input
        log.debug("DKIM signature %d unusable: %s", index, type(error).__name__)
        return False


class KeyLookup:
    """dkimpy's `dnsfunc`: the TXT record of a key name, asked of the configured servers.

    A name that does not exist or has no TXT record gives b"" (dkimpy then fails that
    signature); SERVFAIL, REFUSED, a timeout or no usable resolver raise `DnsTemporaryError`.
    """

    def __init__(self, settings: TrustSettings) -> None:
        self._settings = settings
        self._resolver: dns.resolver.Resolver | None = None

    def __call__(self, name: bytes | str, timeout: float = 5.0) -> bytes:
        """The key record for `name` (dkimpy passes its own timeout; ours is the setting)."""
        try:
            text = name.decode("ascii") if isinstance(name, bytes) else name
        except UnicodeDecodeError:
            return b""
        if not _KEY_NAME.fullmatch(text):
            return b""
        try:
            answer = self._get_resolver().resolve(text, "TXT", raise_on_no_answer=False,
                                                  search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.YXDOMAIN, dns.name.NameTooLong,
                dns.name.LabelTooLong, dns.name.EmptyLabel):
            return b""
        except dns.exception.DNSException as error:
            # NoNameservers (every server said SERVFAIL or REFUSED), a timeout, no resolver
            # configuration, an unreadable answer: try again later.
            raise DnsTemporaryError(f"DNS lookup of {text} failed: {error}") from error
        if answer.rrset is None:
            return b""
        records = [b"".join(rdata.strings) for rdata in answer.rrset
                   if isinstance(rdata, dns.rdtypes.txtbase.TXTBase)]
        if len(records) > 1:  # RFC 6376 3.6.2.2: one record per selector; pick the key
            records = [record for record in records if record.startswith(b"v=DKIM1")]
        return records[0] if len(records) == 1 else b""

    def _get_resolver(self) -> dns.resolver.Resolver:
        if self._resolver is None:
            self._resolver = build_resolver(self._settings.dns_servers,
                                            self._settings.dns_timeout_seconds)
        return self._resolver


def build_resolver(servers: tuple[str, ...], timeout_seconds: float) -> dns.resolver.Resolver:
    """A resolver asking `servers` ("host" or "host:port"; none: the system's resolver)."""
    if servers:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [dns.nameserver.Do53Nameserver(host, port)
                                for host, port in (_server_address(server) for server in servers)]
    else:
        resolver = dns.resolver.Resolver()  # /etc/resolv.conf; raises if there is none
    resolver.lifetime = timeout_seconds
    resolver.timeout = timeout_seconds
    return resolver


def _server_address(server: str) -> tuple[str, int]:
    """(IP address, port) of "host", "host:port", "[v6]:port" or a bare IPv6 address."""
    host, port = server, 53
    if server.startswith("["):
        host, _, rest = server[1:].partition("]")
        if rest.startswith(":"):
            port = int(rest[1:])
    elif server.count(":") == 1:
        host, _, port_text = server.partition(":")
        port = int(port_text)
    return _ip_address(host), port


@lru_cache(maxsize=32)
def _ip_address(host: str) -> str:
    """`host` itself when it is an IP address, else the first address its name resolves to."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        return str(socket.getaddrinfo(host, 53, type=socket.SOCK_DGRAM)[0][4][0])
    except OSError as error:
        raise DnsTemporaryError(f"DNS server {host!r} has no address: {error}") from error
