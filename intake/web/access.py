"""Who sees which case (issue 20, point 4), checked on every request.

A manager sees the cases they manage now; a deputy sees a case only while it is escalated to
them (escalation level 1 or more), the default manager only at level 2; an admin sees every
case; anyone else none. A reassignment takes effect at the next request, as nothing of it is
kept in the session.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, false, func, or_, select, true
from sqlalchemy.orm import Session

from intake.service.config import AppConfig
from intake.web.stats.settings import stats_viewers
from storage.models import Case

# Case.escalation_level: who has been told beyond the manager (notifier.plan.runner).
DEPUTY_LEVEL = 1
DEFAULT_MANAGER_LEVEL = 2


@dataclass(frozen=True)
class Viewer:
    """The person a request is made for: their address (case-folded), the language their
    pages are in, and whether they are one of `[plan] admins`."""

    address: str
    language: str
    is_admin: bool = False
    # [routing] default_manager, case-folded: sees the cases escalated to level 2.
    default_manager: str = ""
    # One of `[stats] viewers` (or `[plan] safety_rep` when none are named): may read /stats.
    is_stats_viewer: bool = False
    # A stats viewer who is no admin and manages no case: sees only /stats (set per
    # request by the authentication middleware).
    stats_only: bool = False

    @property
    def may_read_statistics(self) -> bool:
        """Whether the statistics page is open to this viewer."""
        return self.is_admin or self.is_stats_viewer


def fold(address: str) -> str:
    """An address as access compares it: trimmed and case-folded."""
    return address.strip().casefold()


def viewer_for(config: AppConfig, address: str) -> Viewer:
    """The viewer a logged-in address is, under the current configuration."""
    folded = fold(address)
    languages = {fold(key): value for key, value in config.notify.manager_languages.items()}
    admins = {fold(admin) for admin in config.plan.admins}
    return Viewer(address=folded, language=languages.get(folded, config.ui.language),
                  is_admin=folded in admins,
                  default_manager=fold(config.routing.default_manager),
                  is_stats_viewer=is_stats_viewer(config, folded))


def is_stats_viewer(config: AppConfig, address: str) -> bool:
    """Whether the address is one of `[stats] viewers` (by default `[plan] safety_rep`)."""
    return fold(address) in {fold(viewer) for viewer
                             in stats_viewers(config.stats, config.plan.safety_rep)}


def visible_cases(viewer: Viewer) -> ColumnElement[bool]:
    """A WHERE clause on `Case` that keeps exactly the cases the viewer may see."""
    if viewer.is_admin:
        return true()
    if not viewer.address:
        return false()
    clauses = [
        func.lower(Case.manager) == viewer.address,
        and_(func.lower(Case.deputy) == viewer.address,
             Case.escalation_level >= DEPUTY_LEVEL),
    ]
    if viewer.address == viewer.default_manager:
        clauses.append(Case.escalation_level >= DEFAULT_MANAGER_LEVEL)
    return or_(*clauses)


def can_see(session: Session, viewer: Viewer, case: Case) -> bool:
    """Whether the viewer may see this case, read from the database now."""
    found = session.execute(
        select(Case.id).where(Case.id == case.id, visible_cases(viewer))
    ).first()
    return found is not None


def locked_case_for_viewer(session: Session, viewer: Viewer, number: str) -> Case | None:
    """The case with this number, locked for the caller's transaction, if the viewer may
    see it (None otherwise, as case_for_viewer)."""
    return session.execute(
        select(Case).where(Case.number == number, visible_cases(viewer)).with_for_update()
    ).scalar_one_or_none()


def case_for_viewer(session: Session, viewer: Viewer, number: str) -> Case | None:
    """The case with this number if the viewer may see it; None both when there is no such
    case and when it is not theirs (the page answers 404 either way, so a number that exists
    is not given away)."""
    return session.execute(
        select(Case).where(Case.number == number, visible_cases(viewer))
    ).scalar_one_or_none()
