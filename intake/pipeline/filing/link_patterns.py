"""Filing step: a new case is linked to the recent cases it resembles."""

from __future__ import annotations

from typing import Self

from intake.cases.patterns import PatternFinder
from intake.pipeline.filing.step import Filing
from intake.pipeline.parts import PipelineParts
from storage.case_links import lock_case_linking


class LinkPatterns:
    """Find the cases a new case resembles (sender, domain, image) and link them.

    Several workers (processes, daemons) file reports at once. Two related cases opened in
    transactions that overlap must still end linked: the second to link must see the first.
    So linking is serialised (`storage.case_links.lock_case_linking`: a transaction-scoped
    advisory lock on PostgreSQL; SQLite's BEGIN IMMEDIATE already lets one writer in at a
    time), and held until the commit. Whoever links later then finds the earlier case
    committed, and links both ways.

    Lock order, the same in every filing transaction, so no two can wait for each other:
    the message's row (`LockMessage`), then the year's case-number counter row
    (`OpenCase`, `storage.cases.allocate_case_number`), then the linking lock (here), and
    at the commit the audit chain's head (`storage.audit`). Nothing else takes the linking
    lock, and what else takes the counter row (opening a case) takes it before the linking
    lock or not at all. (The counter row alone serialises reports of one year; the linking
    lock also covers two years' reports around New Year, and does not depend on how
    case numbers are allocated.)
    """

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
        lock_case_linking(filing.session)
        filing.matches = self.patterns.find(filing.session, new.case, new.opened_at)
        self.patterns.link(filing.session, new.case, filing.matches, new.opened_at)
