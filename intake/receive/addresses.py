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
    """The intake addresses this service accepts mail for (case-insensitive), each also with
    a secret reply token after the delimiter: `chikanemail+<token>@kommune.dk`."""

    addresses: frozenset[str]
    delimiter: str = "+"

    @classmethod
    def from_addresses(cls, addresses: Iterable[str], delimiter: str = "+") -> RecipientPolicy:
        """Build the policy from the configured addresses and the recipient delimiter."""
        return cls(frozenset(normalize_address(address) for address in addresses), delimiter)

    def accepts(self, recipient: str) -> bool:
        """Tell whether mail to this recipient is ours (with or without a token)."""
        address = normalize_address(recipient)
        return address in self.addresses or self.token_in(address) is not None

    def token_in(self, recipient: str) -> str | None:
        """The token in `local<delimiter>token@domain` of an intake address; None if none."""
        local, at, domain = normalize_address(recipient).rpartition("@")
        if not at:
            return None
        for intake in self.addresses:
            intake_local, _, intake_domain = intake.rpartition("@")
            prefix = intake_local + self.delimiter
            if domain == intake_domain and local.startswith(prefix) and len(local) > len(prefix):
                return local[len(prefix):]
        return None


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
