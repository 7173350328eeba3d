"""The words people read for the statistics' codes (the page and the CLI's text tables)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from storage.i18n.catalogs import N_
from storage.registration_codes import HARASSMENT_TYPES, MEDIA, RELATION_DETAILS
from storage.statistics_dimensions import NOT_REGISTERED

_NOT_REGISTERED = N_("not registered")

# The words of each dimension's categories.
CATEGORY_WORDS: Mapping[str, Mapping[str, str]] = MappingProxyType({
    "harassment_type": {**HARASSMENT_TYPES, NOT_REGISTERED: _NOT_REGISTERED},
    "medium": {**MEDIA, NOT_REGISTERED: _NOT_REGISTERED},
    "relation": {**RELATION_DETAILS, NOT_REGISTERED: _NOT_REGISTERED},
    "absence": {"yes": N_("with absence"), "no": N_("no absence"),
                "not-known": N_("not known or not registered")},
})

# Each table's heading.
DIMENSION_TITLES: Mapping[str, str] = MappingProxyType({
    "harassment_type": N_("Cases by type of harassment"),
    "medium": N_("Cases by medium"),
    "relation": N_("Cases by the harasser's relation"),
    "absence": N_("Cases by absence"),
})
