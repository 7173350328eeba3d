"""What a health check is and what it finds: ok, warn, fail or skipped, a line for people and
values for machines."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from intake.service.config import AppConfig
from storage.database import Database


class CheckStatus(StrEnum):
    """How one health check came out."""

    OK = "ok"
    WARN = "warn"  # worth a look; still healthy
    FAIL = "fail"  # unhealthy: `health` exits non-zero
    SKIPPED = "skipped"  # not checked: an earlier check failed, or nothing to check


@dataclass(frozen=True)
class Finding:
    """What a check found: its status, one line for people, and values for machines."""

    status: CheckStatus
    summary: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class HealthInputs:
    """What the checks look at; the database check sets `database` when it can be used."""

    config: AppConfig
    now: datetime
    database: Database | None = None


@dataclass(frozen=True)
class HealthCheck:
    """One named check; those needing the database are skipped when it is not usable."""

    name: str
    run: Callable[[HealthInputs], Finding]
    needs_database: bool = True


@dataclass(frozen=True)
class CheckResult:
    """A check's name with its finding."""

    name: str
    finding: Finding

    def as_json(self) -> dict[str, Any]:
        """The result as plain JSON values."""
        return {"name": self.name, "status": self.finding.status.value,
                "summary": self.finding.summary, "details": self.finding.details}


MIB = 1024 * 1024


def messages(count: int) -> str:
    """`1 message`, `2 messages`."""
    return f"{count} message{'' if count == 1 else 's'}"


def format_age(age: timedelta) -> str:
    """A duration the way people say it: 40 s, 12 min, 5 h, 3 d."""
    seconds = max(0, int(age.total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"
