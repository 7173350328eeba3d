"""Disclosure control for the statistics: which counts are shown and which read "< 5".

A pure function over numbers and the sums that tie them together, with nothing of the
database in it. The rule (docs/statistics.md):

1. Primary suppression: every count below `minimum` (5) is suppressed, 0 included.
2. Secondary suppression: a *line* is a total and the counts it is the sum of (a period's
   row with its row total, a category's column with its total over all periods, the totals
   with the grand total, a quarter with its three months). A line with exactly one
   suppressed entry would give that entry away by subtraction, so one more entry of the
   line is suppressed: the smallest shown part, or the total when no part is shown. This is
   repeated over every line until no line has exactly one suppressed entry.

Entries are shared between lines by key: the cases of a period are one entry in the tables
by type, by medium, by relation and by absence, so suppressing it in one suppresses it in
all, and no table can be used to undo another's protection.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass

MINIMUM_CELL = 5
SHOWN_AS = "< 5"  # what a person reads for a suppressed count
JSON_SUPPRESSED = "<5"  # what --json and --csv write


@dataclass(frozen=True)
class Line:
    """A total and the parts it is the sum of (each a key of the values)."""

    total: Hashable
    parts: tuple[Hashable, ...]

    @property
    def entries(self) -> tuple[Hashable, ...]:
        """The total, then the parts."""
        return (self.total, *self.parts)


def suppressed_entries(values: Mapping[Hashable, int], lines: Sequence[Line], *,
                       minimum: int = MINIMUM_CELL) -> frozenset[Hashable]:
    """The keys of `values` that must not be shown: every value below `minimum`, and
    enough more that no line has exactly one suppressed entry."""
    suppressed = {key for key, value in values.items() if value < minimum}
    changed = True
    while changed:
        changed = False
        for line in lines:
            hidden = [key for key in line.entries if key in suppressed]
            if len(hidden) != 1:
                continue
            suppressed.add(_second_to_hide(values, line, suppressed))
            changed = True
    return frozenset(suppressed)


def _second_to_hide(values: Mapping[Hashable, int], line: Line,
                    suppressed: set[Hashable]) -> Hashable:
    """The smallest shown part of the line (the first of equals), else its total."""
    shown = [key for key in line.parts if key not in suppressed]
    if shown:
        return min(shown, key=lambda key: values[key])
    return line.total


def lines_with_one_suppressed(lines: Iterable[Line],
                              suppressed: frozenset[Hashable]) -> list[Line]:
    """The lines that would give a suppressed entry away (none, after `suppressed_entries`)."""
    return [line for line in lines
            if sum(key in suppressed for key in line.entries) == 1]


def shown(value: int, key: Hashable, suppressed: frozenset[Hashable]) -> int | None:
    """The value as it may be shown: None when suppressed."""
    return None if key in suppressed else value
