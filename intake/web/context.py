"""What every page handler needs, built once by the daemon: `request.app.state.context`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from intake.service.config import AppConfig
from intake.web.settings import WebSettings
from notifier.clock import Clock, SystemClock
from notifier.mails import MailComposer
from storage.blobstore import BlobStore
from storage.database import Database


def _do_nothing() -> None:
    return None


@dataclass(frozen=True)
class WebContext:
    """The configuration, the database, the two blob stores, the clock, and how a mail is
    sent: rendered by `composer`, queued with `notifier.outbox.enqueue`, then `wake_outbox()`
    so the sender does not wait for its next poll."""

    config: AppConfig
    database: Database
    evidence: BlobStore  # the originals: raw mails and their parts
    derived: BlobStore  # thumbnails, text, OCR: never an original
    composer: MailComposer
    clock: Clock = field(default_factory=SystemClock)
    wake_outbox: Callable[[], None] = _do_nothing

    @property
    def web(self) -> WebSettings:
        """The [web] settings."""
        return self.config.web

    @property
    def base_url(self) -> str:
        """Where people reach the pages, without a trailing slash."""
        return self.config.web.effective_base_url
