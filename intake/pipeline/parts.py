"""What the steps are built from for one configuration, and how STEPS lists a step."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, Self

from intake.cases.patterns import PatternFinder
from intake.cases.routing import RoutingSettings
from intake.commands.reply.actions import ReplyHandler
from intake.parse.ocr import OcrEngine
from intake.pipeline.run import Step
from intake.receive.addresses import RecipientPolicy
from intake.service.settings import ExtractSettings, TrustSettings
from intake.trust.reply_proof import ReceiptPolicy
from notifier.clock import Clock
from notifier.new_case_mails import NewCaseMails
from notifier.plan.settings import PlanSettings
from notifier.settings import NotifySettings
from notifier.working_days import WorkingCalendar
from storage.blobstore import BlobStore


@dataclass(frozen=True)
class PipelineParts:
    """The stores, settings and helpers the steps of one configuration share."""

    evidence: BlobStore  # raw messages and evidence items
    derived: BlobStore  # what extraction derives: text, thumbnails, OCR
    extract: ExtractSettings
    ocr: OcrEngine | None
    # Who a mail is from: the intake addresses (for reply tokens), the [trust] settings,
    # who may get a receipt, and how many tries a DNS failure gets.
    recipients: RecipientPolicy
    trust: TrustSettings
    receipts: ReceiptPolicy
    max_attempts: int
    # What a case is: who is told, how replies act, how related cases are found, the plan.
    routing: RoutingSettings
    replies: ReplyHandler
    patterns: PatternFinder
    plan: PlanSettings
    calendar: WorkingCalendar
    clock: Clock
    notify: NotifySettings
    new_case_mails: NewCaseMails
    # Told, after the commit, that mails were queued.
    on_outbox: Callable[[], None] | None = None
    # Screenshots are read after the filing (the worker), not during extraction (reprocess).
    defer_ocr: bool = False


class StepClass(Protocol):
    """A step as STEPS lists it: its name, and how it is built for a configuration."""

    @property
    def name(self) -> str:
        """The step's name, as failures and logs give it."""
        ...

    def from_parts(self, parts: PipelineParts) -> Step:
        """The step, built for the configuration the parts come from."""
        ...


class NeedsNoParts:
    """A step built the same for every configuration."""

    @classmethod
    def from_parts(cls, parts: PipelineParts) -> Self:
        """The step for a configuration (it needs nothing of it)."""
        return cls()
