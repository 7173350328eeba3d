"""The figures every benchmark reports, in one shape, so `run_all.py` can table them.

A benchmark script that is given `--json PATH` writes a JSON list of results there, one per
figure it checks against a target (P6 writes one for SQLite and one for PostgreSQL).
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

_COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "<": operator.lt,
    ">": operator.gt,
}


@dataclass
class Result:
    """One measured figure and the target it is held against.

    `value` is compared with `limit` by `comparison` (">=", "<=", "<" or ">"); `summary`
    says in a few words what the value is made of (both sides of a ratio, say) for the
    table; `details` holds the figures behind it (percentiles, sizes, runs), JSON-ready.
    """

    id: str
    what: str
    value: float
    unit: str
    comparison: str
    limit: float
    summary: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def met(self) -> bool:
        """Whether the value meets the target."""
        return _COMPARISONS[self.comparison](self.value, self.limit)

    @property
    def target(self) -> str:
        """The target as a reader writes it, e.g. ">= 0.8" or "< 200 ms"."""
        unit = "" if self.unit == "ratio" else f" {self.unit}"
        return f"{self.comparison} {self.limit:g}{unit}"

    def as_json(self) -> dict[str, Any]:
        """The result with its target and whether it was met."""
        return {**asdict(self), "target": self.target, "met": self.met}


def write_results(path: Path | None, results: Sequence[Result]) -> None:
    """Write the results as a JSON list to `path` (nothing when no path was given)."""
    if path is None:
        return
    path.write_text(json.dumps([result.as_json() for result in results], indent=2) + "\n",
                    encoding="utf-8")


def read_results(path: Path) -> list[Result]:
    """The results a benchmark wrote with `write_results`."""
    fields = ("id", "what", "value", "unit", "comparison", "limit", "summary", "details")
    return [Result(**{name: entry[name] for name in fields if name in entry})
            for entry in json.loads(path.read_text(encoding="utf-8"))]
