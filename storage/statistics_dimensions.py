"""What the statistics count cases by: each dimension's categories, in the order shown, and
the category a stored code is counted under."""

from __future__ import annotations

from collections.abc import Mapping

from storage.registration_codes import HARASSMENT_TYPES, MEDIA, RELATION_DETAILS, WITH_ABSENCE

NOT_REGISTERED = "not-registered"
# The categories of each dimension, in the order they are shown (the codes' own order).
DIMENSIONS: Mapping[str, tuple[str, ...]] = {
    "harassment_type": (*HARASSMENT_TYPES, NOT_REGISTERED),
    "medium": (*MEDIA, NOT_REGISTERED),
    "relation": (*RELATION_DETAILS, NOT_REGISTERED),
    "absence": ("yes", "no", "not-known"),
}
# A median or percentile over fewer cases than this is not shown.
MINIMUM_CASES_FOR_TIMES = 5
# The longest history counted (older cases are normally gone by retention already).
MAX_MONTHS = 120


def category_of(dimension: str, code: str | None) -> str:
    """The category a stored code is counted under in a dimension."""
    if dimension == "absence":
        if code in WITH_ABSENCE:
            return "yes"
        return "no" if code == "none" else "not-known"
    known = {"harassment_type": HARASSMENT_TYPES, "medium": MEDIA,
             "relation": RELATION_DETAILS}[dimension]
    return code if code is not None and code in known else NOT_REGISTERED
