"""Why a case went to its manager, in the reader's words.

Routing (`intake/cases/routing.py`) keeps its decision on the case three ways: the source
(`directory`, `rule`, `default`), the parameters of the line or rule that decided
(`routing_params`: line number, department and employee; rule number and pattern; whether the
deputy came from `routing.deputy`) and an English text (`routing_reason`). A person reads the
source and parameters in their language; a case opened before the parameters were kept (they
are NULL) shows its stored text as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from storage.i18n.catalogs import translations

_WILDCARDS = frozenset("*?[")


def routing_words(source: str | None, params: Mapping[str, Any] | None, reason: str,
                  language: str) -> str:
    """The reason a case went to its manager, in `language` (else the stored text)."""
    if params is None or source not in ("directory", "rule", "default"):
        return reason
    _ = translations(language).gettext
    if source == "default":
        text = _("default manager")
    elif source == "rule":
        text = _("rule %(number)s: %(who)s") % {
            "number": params.get("rule"), "who": _who_matches(str(params.get("match")),
                                                              language)}
    elif params.get("department"):
        text = _("line %(line)s of the employee list (%(department)s): %(employee)s") % {
            "line": params.get("line"), "department": params["department"],
            "employee": params.get("employee")}
    else:
        text = _("line %(line)s of the employee list: %(employee)s") % {
            "line": params.get("line"), "employee": params.get("employee")}
    if params.get("deputy_fallback"):
        text += "; " + _("deputy from the routing settings")
    return text


def _who_matches(pattern: str, language: str) -> str:
    """Whom a rule's glob matches, in words where the glob is a plain address or domain."""
    _ = translations(language).gettext
    local, at, domain = pattern.rpartition("@")
    if not at:  # a domain glob: `skole.kommune.dk`, `*.kommune.dk`
        if pattern.startswith("*.") and _WILDCARDS.isdisjoint(pattern[2:]):
            return _("everyone at a subdomain of %(domain)s") % {"domain": pattern[2:]}
        if _WILDCARDS.isdisjoint(pattern):
            return _("everyone at %(domain)s") % {"domain": pattern}
    elif _WILDCARDS.isdisjoint(domain):
        if local == "*":
            return _("everyone at %(domain)s") % {"domain": domain}
        if _WILDCARDS.isdisjoint(local):
            return pattern
    return _("addresses matching %(pattern)s") % {"pattern": pattern}
