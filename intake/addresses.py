"""Who may send to whom: accepted recipients and allowed sender domains."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


def normalize_address(address: str) -> str:
    """An address in the form we compare: no angle brackets or spaces, case-folded."""
    return address.strip().strip("<>").strip().casefold()


def domain_of(address: str | None) -> str | None:
    """The domain of an address, case-folded, without a trailing dot; None if it has none."""
    if not address:
        return None
    normalized = normalize_address(address)
    local, at, domain = normalized.rpartition("@")
    if not at or not local or not domain:
        return None
    return domain.rstrip(".")


@dataclass(frozen=True)
class RecipientPolicy:
    """The intake addresses this service accepts mail for (case-insensitive)."""

    addresses: frozenset[str]

    @classmethod
    def from_addresses(cls, addresses: Iterable[str]) -> RecipientPolicy:
        """Build the policy from the configured addresses."""
        return cls(frozenset(normalize_address(address) for address in addresses))

    def accepts(self, recipient: str) -> bool:
        """Tell whether mail to this recipient is ours."""
        return normalize_address(recipient) in self.addresses


@dataclass(frozen=True)
class SenderPolicy:
    """Which sender domains are admitted; empty admits everyone.

    `example.dk` admits exactly that domain; `*.example.dk` admits its subdomains (list both
    to admit both). A sender with no domain (the null return path of a bounce) is foreign
    whenever a list is configured.
    """

    exact: frozenset[str]
    suffixes: tuple[str, ...]

    @classmethod
    def from_domains(cls, domains: Iterable[str]) -> SenderPolicy:
        """Build the policy from configured domains such as `kommune.dk` or `*.kommune.dk`."""
        exact: set[str] = set()
        suffixes: list[str] = []
        for raw in domains:
            domain = raw.strip().casefold().rstrip(".")
            if domain.startswith("*."):
                suffixes.append(domain[1:])  # keeps the leading dot: ".kommune.dk"
            else:
                exact.add(domain)
        return cls(frozenset(exact), tuple(suffixes))

    @property
    def admits_everyone(self) -> bool:
        """True when no domain list is configured."""
        return not self.exact and not self.suffixes

    def admits(self, mail_from: str | None) -> bool:
        """Tell whether a sender (envelope MAIL FROM) belongs to an allowed domain."""
        if self.admits_everyone:
            return True
        domain = domain_of(mail_from)
        if domain is None:
            return False
        return domain in self.exact or any(domain.endswith(suffix) for suffix in self.suffixes)
