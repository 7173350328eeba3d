"""What a filing step is, and the `Filing` it reads and adds to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from typing import Generic, Protocol, TypeVar, runtime_checkable

from sqlalchemy.orm import Session

from intake.cases.patterns import PatternMatch
from intake.cases.routing import RoutingDecision
from intake.pipeline.step import MessageContext
from intake.trust.sender import SenderCheck
from storage.models import Case, CaseStep, Message
from storage.reply_tokens import TokenState

T = TypeVar("T")
# The reporter a case names when its report has no usable From.
UNKNOWN_REPORTER = "unknown@invalid"


class FilingOrderError(RuntimeError):
    """A step asked for something no step before it has found: STEPS is out of order."""


class _Found(Generic[T]):
    """Something of the Filing that a step finds; asking for it before raises
    FilingOrderError."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.attribute = ""

    def __set_name__(self, owner: type[Filing], name: str) -> None:
        self.attribute = f"_found_{name}"

    def __get__(self, filing: Filing, owner: type[Filing] | None = None) -> T:
        value: T | None = getattr(filing, self.attribute, None)
        if value is None:
            raise FilingOrderError(f"{self.what} is not known yet: the step that finds it "
                                   "must come earlier in STEPS")
        return value

    def __set__(self, filing: Filing, value: T | None) -> None:
        setattr(filing, self.attribute, value)


@dataclass(frozen=True)
class Sender:
    """Who a message is from, by its From header (the envelope may be a forwarder's)."""

    address: str | None
    name: str | None

    @property
    def reporter(self) -> str:
        """The reporter a case opened by this sender names."""
        return self.address or UNKNOWN_REPORTER


@dataclass(frozen=True)
class NewCase:
    """The case a report opened, its checklist, and when it was opened."""

    case: Case
    checklist: list[CaseStep]
    opened_at: datetime


class Filing:
    """What the filing steps have found so far about one message.

    Each step reads what the steps before it in STEPS found and adds its own. Asking for
    something not found yet raises `FilingOrderError`. Once `finished`, no further step runs.
    """

    session = _Found[Session]("the filing transaction")  # shared by the steps that write
    headers = _Found[EmailMessage]("the headers")
    check = _Found[SenderCheck]("the sender check")  # DKIM, the admin's server
    row = _Found[Message]("the message row")  # locked in the filing transaction
    sender = _Found[Sender]("the sender")

    def __init__(self, message: MessageContext) -> None:
        self.message = message
        # Nothing more to do for this message (it was filed before).
        self.finished = False
        self.token: TokenState | None = None
        self.thread_ids: list[str] = []
        self.case: Case | None = None
        # The message's kind is decided: the steps that open a case pass.
        self.decided = False
        self.routing: RoutingDecision | None = None
        self.new_case: NewCase | None = None
        # The reporter of the new case may get a receipt (off unless a step allows it).
        self.receipt = False
        self.matches: list[PatternMatch] = []
        # Mails were queued: the outbox sender is woken once they are committed.
        self.queued = False
        # The filing recorded the message processed in its own transaction: the worker
        # need not (`RecordProcessed`).
        self.processed = False


@runtime_checkable
class FilingStep(Protocol):
    """One step of filing a message. Consecutive steps `in_transaction` share one write
    transaction (`Filing.session`); the others run outside any transaction. Like every
    step, a filing step must be safe to run again after a crash."""

    name: str
    in_transaction: bool

    def file(self, filing: Filing) -> None:
        """Do this step's part for the message; raise to have the message retried."""
        ...
