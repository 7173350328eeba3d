"""500 generated cases for the statistics' tests, inserted directly with the models, and the
counts made from them in plain Python (never with the statistics' own SQL)."""

from __future__ import annotations

import math
import random
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select

from storage.database import Database
from storage.models import Case, CaseStep

ZONE = ZoneInfo("Europe/Copenhagen")
NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
TYPES = ["threats", "insults", "sexual", "hate", "exposure", "impersonation", "stalking",
         "other"]
MEDIA = ["mail", "sms", "social-media", "other"]
RELATIONS = ["citizen", "customer", "patient", "parent", "pupil", "relative",
             "other-external", "colleague", "manager", "unknown"]
ABSENCE = {"none": "no", "sick-leave": "yes", "other-absence": "yes", "unknown": "not-known",
           None: "not-known"}


@dataclass
class Generated:
    """The cases as plain tuples, and where their addresses and numbers are."""

    cases: list[dict[str, object]] = field(default_factory=list)
    overdue_by_case: dict[str, int] = field(default_factory=dict)

    def month(self, case: dict[str, object]) -> str:
        opened = case["opened_at"]
        assert isinstance(opened, datetime)
        return opened.astimezone(ZONE).strftime("%Y-%m")

    def counted(self) -> list[dict[str, object]]:
        """The cases of whole months that have ended (November 2026 and before)."""
        return [case for case in self.cases if self.month(case) <= "2026-11"]

    def count(self, dimension: str) -> Counter[tuple[str, str]]:
        """Cases per (month, category) of one dimension, made in plain Python."""
        found: Counter[tuple[str, str]] = Counter()
        for case in self.counted():
            if dimension == "absence":
                category = ABSENCE[case["absence"]]  # type: ignore[index]
            else:
                column = {"harassment_type": "harassment_type", "medium": "medium",
                          "relation": "relation_detail"}[dimension]
                category = str(case[column]) if case[column] else "not-registered"
            found[(self.month(case), category)] += 1
        return found

    def overdue(self) -> Counter[str]:
        """Steps past their deadline per month of the case's opening."""
        found: Counter[str] = Counter()
        for case in self.counted():
            found[self.month(case)] += self.overdue_by_case[str(case["number"])]
        return found

    def hours(self, column: str) -> dict[str, list[float]]:
        """Hours from opening to `column` per month."""
        found: dict[str, list[float]] = defaultdict(list)
        for case in self.counted():
            later = case[column]
            if isinstance(later, datetime):
                opened = case["opened_at"]
                assert isinstance(opened, datetime)
                found[self.month(case)].append((later - opened).total_seconds() / 3600)
        return found


def median_and_p90(hours: list[float]) -> tuple[float, float]:
    """The median and the nearest-rank 90th percentile, rounded to 0.1 hour."""
    ordered = sorted(hours)
    return (round(statistics.median(ordered), 1),
            round(ordered[math.ceil(0.9 * len(ordered)) - 1], 1))


def generate(database: Database, count: int = 500, seed: int = 22) -> Generated:
    """Insert `count` cases over 25 months up to NOW, with steps, and return them."""
    rng = random.Random(seed)
    generated = Generated()
    start = datetime(2024, 11, 1, tzinfo=ZONE).astimezone(UTC)
    span = (NOW - start).total_seconds()
    rows: list[dict[str, object]] = []
    for sequence in range(1, count + 1):
        # Weighted choices make common and rare categories (rare ones fall below 5).
        opened = start + timedelta(seconds=rng.random() * span)
        if sequence % 50 == 0:  # right after a local midnight that starts a month
            local = opened.astimezone(ZONE)
            opened = datetime(local.year, local.month, 1, 0, 30, tzinfo=ZONE).astimezone(UTC)
        registered = rng.random() < 0.8
        acknowledged = opened + timedelta(hours=rng.expovariate(1 / 20)) \
            if rng.random() < 0.85 else None
        closed = opened + timedelta(days=rng.expovariate(1 / 30)) \
            if rng.random() < 0.6 else None
        rows.append({
            "number": f"{opened.year}-{sequence:04d}", "year": opened.year,
            "sequence": sequence, "status": "closed" if closed else "open",
            "reporter": f"ansat{sequence}@kommune.example",
            "reporter_name": f"Ansat Nummer{sequence}",
            "manager": f"leder{sequence % 7}@kommune.example", "language": "da",
            "routing_source": "default", "routing_reason": "default", "opened_at": opened,
            "acknowledged_at": acknowledged, "closed_at": closed,
            "medium": rng.choices([*MEDIA, None], [50, 30, 15, 4, 1])[0],
            "harassment_type": rng.choices(TYPES, [30, 30, 10, 8, 8, 3, 6, 5])[0]
            if registered else None,
            "relation_detail": rng.choices(RELATIONS, [30, 15, 10, 10, 5, 4, 3, 15, 3, 5])[0]
            if registered else None,
            "absence": rng.choices(["none", "sick-leave", "other-absence", "unknown"],
                                   [60, 20, 5, 15])[0] if registered else None,
            "relation": "unknown", "witnesses": [],
        })
    with database.write() as session:
        session.execute(insert(Case), rows)
        ids = dict(session.execute(select(Case.number, Case.id)).all())
        steps: list[dict[str, object]] = []
        for row in rows:
            overdue = 0
            opened_at = row["opened_at"]
            assert isinstance(opened_at, datetime)
            for position in range(1, 4):
                due = opened_at + timedelta(days=rng.choice([3, 30, 400]))
                done = due - timedelta(days=1) if rng.random() < 0.5 else None
                if done is None and due < NOW:
                    overdue += 1
                steps.append({"case_id": ids[str(row["number"])], "position": position,
                              "key": f"step-{position}", "title_da": "Trin",
                              "title_en": "Step", "description_da": "", "description_en": "",
                              "owner": "manager", "due_after": "intake", "due_at": due,
                              "done_at": done, "working_days": False})
            generated.overdue_by_case[str(row["number"])] = overdue
        session.execute(insert(CaseStep), steps)
    generated.cases = rows
    return generated
