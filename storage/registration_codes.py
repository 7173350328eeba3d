"""The coded choices of a registration (issue 22), each with its words for the catalogs.

The codes are what is stored, exported as JSON and counted by the statistics; people read the
words. The harasser's relation is finer than the case's `relation` (external, colleague,
unknown), which stays derived from it: harassment from outside the workplace is violence
(AT-vejledning D.4.3), between colleagues it is krænkende handlinger (4.3.1).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from storage.i18n.catalogs import N_
from storage.models import HarasserRelation, Medium

# The harasser's relation to the affected employee or the workplace.
RELATION_DETAILS: Mapping[str, str] = MappingProxyType({
    "citizen": N_("a citizen"),
    "customer": N_("a customer or user"),
    "patient": N_("a patient or resident"),
    "parent": N_("a parent"),
    "pupil": N_("a pupil or student"),
    "relative": N_("a relative of a citizen, patient or pupil"),
    "other-external": N_("someone else outside the workplace"),
    "colleague": N_("a colleague"),
    "manager": N_("a manager"),
    "unknown": N_("not known"),
})

# The coarse relation each detail derives (Case.relation).
COARSE_RELATION: Mapping[str, str] = MappingProxyType({
    **{code: HarasserRelation.EXTERNAL.value for code in (
        "citizen", "customer", "patient", "parent", "pupil", "relative", "other-external")},
    "colleague": HarasserRelation.COLLEAGUE.value,
    "manager": HarasserRelation.COLLEAGUE.value,
    "unknown": HarasserRelation.UNKNOWN.value,
})

# The detail a coarse relation recorded by reply or CLI suggests, until someone registers.
DETAIL_OF_COARSE: Mapping[str, str] = MappingProxyType({
    HarasserRelation.EXTERNAL.value: "other-external",
    HarasserRelation.COLLEAGUE.value: "colleague",
    HarasserRelation.UNKNOWN.value: "unknown",
})

# What kind of harassment it was.
HARASSMENT_TYPES: Mapping[str, str] = MappingProxyType({
    "threats": N_("threats"),
    "insults": N_("insults, degrading or offensive statements"),
    "sexual": N_("sexual harassment"),
    "hate": N_("hateful or discriminating statements"),
    "exposure": N_("exposure: sharing pictures, videos or personal information"),
    "impersonation": N_("impersonation or a false profile"),
    "stalking": N_("persistent unwanted contact or surveillance"),
    "other": N_("other"),
})

# Where it happened: the case's media (Medium).
MEDIA: Mapping[str, str] = MappingProxyType({
    Medium.MAIL.value: N_("mail"),
    Medium.SMS.value: N_("SMS"),
    Medium.SOCIAL_MEDIA.value: N_("social media"),
    Medium.OTHER.value: N_("other"),
})

# Whether it led to absence.
ABSENCES: Mapping[str, str] = MappingProxyType({
    "none": N_("no absence"),
    "sick-leave": N_("sick leave"),
    "other-absence": N_("other absence"),
    "unknown": N_("not known yet"),
})

# Absence codes that mean the employee was away.
WITH_ABSENCE = frozenset({"sick-leave", "other-absence"})

# The guidance that applies, by coarse relation (words for the form and the report).
GUIDANCE: Mapping[str, str] = MappingProxyType({
    HarasserRelation.EXTERNAL.value: N_(
        "Harassment from outside the workplace is violence (AT guidance D.4.3)."),
    HarasserRelation.COLLEAGUE.value: N_(
        "Harassment between colleagues is offensive behaviour, krænkende handlinger "
        "(AT guidance 4.3.1)."),
    HarasserRelation.UNKNOWN.value: N_(
        "Who the harasser is decides the guidance: from outside the workplace it is "
        "violence (D.4.3), between colleagues krænkende handlinger (4.3.1)."),
})
