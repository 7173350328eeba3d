"""Find a case number in a subject: `[Sag 2026-0042]`, `[Case 2026-0042]`, or typed by hand."""

from __future__ import annotations

import re

_TAG = re.compile(
    r"(?<![0-9a-zæøå])(?:sag|case)\s*(?:nr\.?|no\.?|#)?\s*[:.\-]?\s*(\d{4})\s*-\s*(\d{1,6})(?!\d)",
    re.IGNORECASE,
)


def case_number_in(subject: str | None) -> str | None:
    """The first case number tagged in the subject, normalised to `YYYY-NNNN`, or None."""
    if not subject:
        return None
    match = _TAG.search(subject)
    if match is None:
        return None
    return f"{match.group(1)}-{int(match.group(2)):04d}"
