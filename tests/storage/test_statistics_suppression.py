"""The disclosure rule as a pure function: small counts suppressed, and no line (a total and
its parts) left with exactly one suppressed entry."""

from __future__ import annotations

import random
from collections.abc import Hashable

from storage.statistics_suppression import Line, lines_with_one_suppressed, suppressed_entries


def _table(cells: list[list[int]]) -> tuple[dict[Hashable, int], list[Line]]:
    """A table with row totals, column totals and a grand total, and its lines."""
    values: dict[Hashable, int] = {}
    rows, columns = len(cells), len(cells[0])
    for r in range(rows):
        for c in range(columns):
            values[(r, c)] = cells[r][c]
        values[(r, "T")] = sum(cells[r])
    for c in range(columns):
        values[("T", c)] = sum(cells[r][c] for r in range(rows))
    values[("T", "T")] = sum(sum(row) for row in cells)
    lines = [Line((r, "T"), tuple((r, c) for c in range(columns))) for r in range(rows)]
    lines += [Line(("T", c), tuple((r, c) for r in range(rows))) for c in range(columns)]
    lines.append(Line(("T", "T"), tuple((r, "T") for r in range(rows))))
    lines.append(Line(("T", "T"), tuple(("T", c) for c in range(columns))))
    return values, lines


def test_one_small_cell_takes_the_smallest_neighbour_in_its_row_and_column_with_it() -> None:
    values, lines = _table([[20, 3, 40],
                            [30, 12, 50],
                            [25, 9, 60]])
    hidden = suppressed_entries(values, lines)
    # 3 is primary; its row's smallest other cell (20) and its column's (9) go too, and
    # then 20's column and 9's row need a partner: 25 closes the rectangle.
    assert (0, 1) in hidden
    assert {(0, 0), (2, 1), (2, 0)} <= hidden
    assert (1, 1) not in hidden and (1, 2) not in hidden
    assert lines_with_one_suppressed(lines, hidden) == []


def test_zero_is_suppressed_and_a_single_cell_row_takes_its_total() -> None:
    values, lines = _table([[0], [12], [30]])
    hidden = suppressed_entries(values, lines)
    assert (0, 0) in hidden and (0, "T") in hidden  # the row total would equal the cell
    assert (1, 0) in hidden  # the column needs a second suppressed cell
    assert lines_with_one_suppressed(lines, hidden) == []


def test_nothing_is_suppressed_when_every_count_is_five_or_more() -> None:
    values, lines = _table([[5, 6], [7, 8]])
    assert suppressed_entries(values, lines) == frozenset()


def test_random_tables_never_leave_a_line_with_one_suppressed_entry() -> None:
    rng = random.Random(5)
    for _ in range(300):
        rows, columns = rng.randint(1, 6), rng.randint(1, 6)
        cells = [[rng.choice([0, 1, 2, 4, 5, 7, 12, 30]) for _ in range(columns)]
                 for _ in range(rows)]
        values, lines = _table(cells)
        hidden = suppressed_entries(values, lines)
        assert {key for key, value in values.items() if value < 5} <= hidden
        assert lines_with_one_suppressed(lines, hidden) == [], cells
