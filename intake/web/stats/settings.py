"""The [stats] table: who may read the safety group's statistics besides `[plan] admins`."""

from __future__ import annotations

from dataclasses import dataclass

from storage.settings import FORBID_UNKNOWN_KEYS


@dataclass(frozen=True)
class StatsSettings:
    """The statistics page's readers."""

    __pydantic_config__ = FORBID_UNKNOWN_KEYS

    # Addresses that may log in (mail link or OIDC) and read /stats, and nothing else unless
    # they also manage cases. Empty: `[plan] safety_rep`, the safety representative.
    viewers: tuple[str, ...] = ()


def stats_viewers(stats: StatsSettings, safety_rep: str) -> tuple[str, ...]:
    """The addresses that may read the statistics (besides the admins): `viewers`, or the
    safety representative when none are named."""
    if stats.viewers:
        return stats.viewers
    return (safety_rep,) if safety_rep.strip() else ()
