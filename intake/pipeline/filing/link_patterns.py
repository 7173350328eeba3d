"""Filing step: a new case is linked to the recent cases it resembles."""

from __future__ import annotations

from typing import Self

from intake.cases.patterns import PatternFinder
from intake.pipeline.filing.step import Filing
from intake.pipeline.parts import PipelineParts


class LinkPatterns:
    """Find the cases a new case resembles (sender, domain, image) and link them."""

    name = "link_patterns"
    in_transaction = True

    def __init__(self, patterns: PatternFinder) -> None:
        self.patterns = patterns

    @classmethod
    def from_parts(cls, parts: PipelineParts) -> Self:
        """The step for a configuration: how related cases are found."""
        return cls(parts.patterns)

    def file(self, filing: Filing) -> None:
        """Link the new case, if the message opened one; keep the matches in the filing."""
        new = filing.new_case
        if new is None:
            return
        filing.matches = self.patterns.find(filing.session, new.case, new.opened_at)
        self.patterns.link(filing.session, new.case, filing.matches, new.opened_at)
