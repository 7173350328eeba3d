"""Patterns across cases: a new case that shares a harasser's address, their domain, or a
screenshot with another recent case is linked to it.

The guidance asks the safety group to recognise senders and see patterns. A domain shared
by many unrelated people (free mail) or the workplace's own domains say nothing, so they
never link. A screenshot matches when its 64-bit dHash is within the configured Hamming
distance of an image in another case; tiny images (logos, signature icons) and nearly flat
ones are left out, they would match everything.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from notifier.plan.settings import PlanSettings
from storage.case_links import NewLink, link_cases
from storage.models import Case, Evidence, Message, MessageKind

MIN_IMAGE_SIDE = 100
# A hash with almost all bits equal comes from a nearly flat picture.
MIN_HASH_BITS = 4
_KINDS = (MessageKind.REPORT, MessageKind.FOLLOW_UP)


@dataclass(frozen=True)
class PatternMatch:
    """Another case that looks related, and why."""

    other_case_id: int
    reason: str  # sender, domain, image
    detail: str


def hamming_distance(first: str, second: str) -> int:
    """The number of differing bits of two hex hashes."""
    return (int(first, 16) ^ int(second, 16)).bit_count()


def usable_image_hash(dhash: str | None, image: dict[str, Any] | None) -> str | None:
    """The dHash if the picture is big and varied enough to identify anything."""
    if not dhash or not image:
        return None
    width, height = image.get("width") or 0, image.get("height") or 0
    if min(width, height) < MIN_IMAGE_SIDE:
        return None
    bits = int(dhash, 16).bit_count()
    if bits < MIN_HASH_BITS or bits > 64 - MIN_HASH_BITS:
        return None
    return dhash


class PatternFinder:
    """Finds the recent cases a new case resembles and links them."""

    def __init__(self, plan: PlanSettings, own_domains: Iterable[str]) -> None:
        self.window = timedelta(days=plan.pattern_window_days)
        self.distance = plan.image_match_distance
        self.common_domains = frozenset(domain.lower() for domain in plan.free_mail_domains)
        self.own_domains = frozenset(domain.lower().lstrip("*.") for domain in own_domains)

    def find(self, session: Session, case: Case, now: datetime) -> list[PatternMatch]:
        """The matches of the case's messages against other cases opened within the window."""
        since = now - self.window
        others = select(Case.id).where(Case.id != case.id, Case.opened_at >= since)
        messages = list(session.execute(
            select(Message).where(Message.case_id == case.id, Message.kind.in_(_KINDS))
        ).scalars())
        matches: list[PatternMatch] = []
        addresses = {message.original_from_address.strip().lower()
                     for message in messages if message.original_from_address}
        for address in sorted(addresses):
            matches += self._sender_matches(session, others, address)
        matches += self._image_matches(session, others, [message.id for message in messages])
        return matches

    def _sender_matches(self, session: Session, others: Any,
                        address: str) -> list[PatternMatch]:
        found: list[PatternMatch] = []
        same_address = _case_ids(session.execute(
            select(Message.case_id).where(Message.case_id.in_(others),
                                          Message.kind.in_(_KINDS),
                                          func.lower(Message.original_from_address) == address)
        ).scalars())
        found += [PatternMatch(case_id, "sender", address) for case_id in sorted(same_address)]
        domain = address.rpartition("@")[2]
        if not domain or self._too_common(domain):
            return found
        same_domain = _case_ids(session.execute(
            select(Message.case_id).where(
                Message.case_id.in_(others), Message.kind.in_(_KINDS),
                func.lower(Message.original_from_address).like(f"%@{_like_escaped(domain)}",
                                                               escape="\\"))
        ).scalars()) - same_address
        found += [PatternMatch(case_id, "domain", domain) for case_id in sorted(same_domain)]
        return found

    def _too_common(self, domain: str) -> bool:
        return domain in self.common_domains or any(
            domain == own or domain.endswith("." + own) for own in self.own_domains)

    def _image_matches(self, session: Session, others: Any,
                       message_ids: list[int]) -> list[PatternMatch]:
        if not message_ids:
            return []
        mine = [usable_image_hash(item.dhash, item.image) for item in session.execute(
            select(Evidence).where(Evidence.message_pk.in_(message_ids),
                                   Evidence.dhash.is_not(None))).scalars()]
        hashes = {value for value in mine if value}
        if not hashes:
            return []
        candidates = session.execute(
            select(Message.case_id, Evidence.dhash, Evidence.image)
            .join(Message, Evidence.message_pk == Message.id)
            .where(Message.case_id.in_(others), Message.kind.in_(_KINDS),
                   Evidence.dhash.is_not(None))
        ).all()
        best: dict[int, int] = {}
        for case_id, dhash, image in candidates:
            theirs = usable_image_hash(dhash, image)
            if theirs is None:
                continue
            distance = min(hamming_distance(theirs, own) for own in hashes)
            if distance <= self.distance and distance < best.get(case_id, 65):
                best[case_id] = distance
        return [PatternMatch(case_id, "image", f"dHash distance {distance}")
                for case_id, distance in sorted(best.items())]

    def link(self, session: Session, case: Case, matches: Iterable[PatternMatch],
             now: datetime) -> int:
        """Store the matches as links both ways; how many new links."""
        return link_cases(session, case.id, [
            NewLink(match.other_case_id, match.reason, match.detail) for match in matches],
            now=now)


def _case_ids(values: Iterable[int | None]) -> set[int]:
    return {value for value in values if value is not None}


def _like_escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
