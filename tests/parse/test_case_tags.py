"""Case tags in subjects, as our mails write them and as people type them."""

from __future__ import annotations

import pytest

from intake.parse.case_tags import case_number_in


@pytest.mark.parametrize(("subject", "number"), [
    ("[Sag 2026-0042] Kvittering", "2026-0042"),
    ("Re: [Case 2026-0042] Receipt", "2026-0042"),
    ("SV: [Sag 2026-0042] Ny besked", "2026-0042"),
    ("mere om sag 2026-0042", "2026-0042"),
    ("Sag nr. 2026-0042: flere billeder", "2026-0042"),
    ("case #2026-42", "2026-0042"),
    ("SAG 2026 - 0107", "2026-0107"),
    ("Fwd: mødet i morgen", None),
    ("Ordre 2026-0042", None),
    ("Sagsbehandler 2026-0042", None),
    (None, None),
])
def test_case_number_in(subject: str | None, number: str | None) -> None:
    assert case_number_in(subject) == number
