"""Read the Authentication-Results that the admin's own border server put on top of a mail.

RFC 8601 section 5: a border server removes incoming Authentication-Results fields that
claim its own authserv-id and prepends its own, so only the fields above everything the
sender wrote can be its word. Here that is the contiguous run of Authentication-Results
fields at the very top of the header block whose authserv-id the admin named; the run ends
at the first field of another kind, with another authserv-id, or that `authres` cannot
parse (an unparseable field may be anybody's, and nothing below it is trusted either).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import authres

_FOLD = re.compile(r"\r?\n")


def trusted_dkim_passes(headers: Sequence[tuple[bytes, bytes]],
                        authserv_ids: Iterable[str]) -> list[str]:
    """The signing domains of every dkim=pass in the trusted top run, in order.

    `headers` are (name, raw value) pairs in message order, as `dkim.rfc822_parse` gives
    them. A result's domain is its header.d, else the domain of its header.i; a result
    naming several is ambiguous and left out. Other methods (spf, dmarc, arc, ...) are
    never reported: only a DKIM signature binds the From header.
    """
    trusted = {authserv_id.strip().casefold() for authserv_id in authserv_ids}
    domains: list[str] = []
    for name, value in headers:
        if name.strip().lower() != b"authentication-results":
            break
        parsed = _parse(value)
        if parsed is None or str(parsed.authserv_id).casefold() not in trusted:
            break
        for result in parsed.results:
            if str(result.method).lower() != "dkim" or str(result.result).lower() != "pass":
                continue
            domain = _signing_domain(result)
            if domain:
                domains.append(domain)
    return domains


def _parse(value: bytes) -> authres.AuthenticationResultsHeader | None:
    """The parsed field, or None when it is not valid UTF-8 or not valid RFC 8601."""
    try:
        text = _FOLD.sub("", value.decode("utf-8"))
        return authres.AuthenticationResultsHeader.parse_value(text)
    except Exception:  # authres raises its own and Python's errors alike
        return None


def _signing_domain(result: object) -> str | None:
    """header.d of a DKIM result, else the part after the last "@" of header.i."""
    found: dict[str, list[str]] = {"d": [], "i": []}
    for prop in getattr(result, "properties", ()):
        kind, name = str(prop.type).lower(), str(prop.name).lower()
        if kind == "header" and name in found:
            found[name].append(str(prop.value))
    if len(found["d"]) > 1 or len(found["i"]) > 1:
        return None
    if found["d"]:
        return found["d"][0].strip().lower() or None
    if found["i"]:
        return found["i"][0].rpartition("@")[2].strip().lower() or None
    return None
