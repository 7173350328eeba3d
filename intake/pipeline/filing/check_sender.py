"""Filing step: whether the message's From is authenticated (DKIM, the admin's server).

Runs outside the filing transaction: a DNS lookup must never hold SQLite's one writer.
"""

from __future__ import annotations

import logging
from typing import Self

from intake.pipeline.filing.step import Filing
from intake.pipeline.parts import PipelineParts
from intake.pipeline.step import StepError
from intake.service.settings import TrustSettings
from intake.trust.sender import DnsTemporaryError, SenderCheck, check_sender

log = logging.getLogger("chikanemail.intake.cases")

# Enough of a message for its From when no signature is checked (as the header parser reads).
HEADER_BYTES = 1024 * 1024


class CheckSender:
    """Check the sender as the [trust] settings say; a DNS failure is retried like a failing
    step and, on the last try, counts as unverified (`dns-temporary`)."""

    name = "check_sender"
    in_transaction = False

    def __init__(self, settings: TrustSettings, max_attempts: int) -> None:
        self.settings = settings
        self.max_attempts = max_attempts

    @classmethod
    def from_parts(cls, parts: PipelineParts) -> Self:
        """The step for a configuration: its [trust] settings and the worker's tries."""
        return cls(parts.trust, parts.max_attempts)

    def file(self, filing: Filing) -> None:
        """Keep the verdict on the sender in the filing; raise StepError to try again."""
        filing.check = self._check(filing)

    def _check(self, filing: Filing) -> SenderCheck:
        message = filing.message
        if self.settings.authenticates:
            raw = message.store.read_bytes(message.sha256)
        else:
            with message.store.open(message.sha256) as handle:
                raw = handle.read(HEADER_BYTES)
        try:
            return check_sender(raw, self.settings)
        except DnsTemporaryError:
            if message.attempt < self.max_attempts:
                raise StepError("DNS failed for a DKIM key; tried again later") from None
            log.warning("DNS still failing for a DKIM key on the last try; the sender counts "
                        "as unverified sha256=%s", message.sha256)
            unchecked = check_sender(raw, TrustSettings())
            return SenderCheck(code="dns-temporary", authenticated=False,
                               from_address=unchecked.from_address, domain=None)
