"""The pipeline: STEPS, every step the worker runs on a stored mail, in order.

Each step is a small class with one job (one module each; the filing steps in `filing/`).
The steps up to extraction derive everything from the raw blob; `reprocess` runs them again.
The filing steps after them decide once what the message is and record it: those marked
`in_transaction` share one database transaction (`intake.pipeline.run`), so a crash leaves
either nothing of the filing or all of it, and the message is recorded processed in that
same transaction (while the worker's claim holds) unless screenshots wait to be read; the
sender check runs before it, outside, since it may wait for DNS; the outbox sender is woken
after the commit, and then the screenshots are read (OCR takes seconds; the manager need not
wait for it) and the message recorded processed.
"""

from __future__ import annotations

from dataclasses import replace

from intake.pipeline.check_raw import CheckRawMessage
from intake.pipeline.extract import ExtractEvidence
from intake.pipeline.filing.check_sender import CheckSender
from intake.pipeline.filing.decide_receipt import DecideReceipt
from intake.pipeline.filing.detect_automatic_mail import DetectAutomaticMail
from intake.pipeline.filing.find_reply_token import FindReplyToken
from intake.pipeline.filing.handle_reply import HandleReply
from intake.pipeline.filing.keep_reply_without_case import KeepReplyWithoutCase
from intake.pipeline.filing.link_patterns import LinkPatterns
from intake.pipeline.filing.lock_message import LockMessage
from intake.pipeline.filing.open_case import OpenCase
from intake.pipeline.filing.queue_case_mails import QueueCaseMails
from intake.pipeline.filing.read_headers import ReadHeaders
from intake.pipeline.filing.record_filed import RecordFiled
from intake.pipeline.filing.record_processed import RecordProcessed
from intake.pipeline.filing.record_sender import RecordSender
from intake.pipeline.filing.route_report import RouteReport
from intake.pipeline.filing.skip_filed_message import SkipFiledMessage
from intake.pipeline.filing.thread_into_case import ThreadIntoCase
from intake.pipeline.filing.wake_outbox_sender import WakeOutboxSender
from intake.pipeline.parts import PipelineParts, StepClass
from intake.pipeline.read_screenshots import ReadScreenshots
from intake.pipeline.run import Step

STEPS: tuple[StepClass, ...] = (
    # Extraction: what `reprocess` runs again.
    CheckRawMessage,        # the raw blob still hashes to its name
    ExtractEvidence,        # every part its own evidence item
    # Filing, outside any transaction.
    SkipFiledMessage,       # filed before a crash: nothing more, the sender is not checked again
    ReadHeaders,
    CheckSender,            # DKIM and DNS: retried, never inside the transaction
    # Filing, in one transaction.
    LockMessage,
    RecordSender,
    FindReplyToken,
    ThreadIntoCase,         # by thread, case tag or token
    DetectAutomaticMail,    # out-of-office, bounces: kept, open nothing
    HandleReply,            # a mail on its case: a note, a follow-up, a command
    KeepReplyWithoutCase,   # an answer to a digest
    RouteReport,            # a report: who is told
    OpenCase,               # the case and its checklist
    DecideReceipt,          # a receipt only to a sender we can vouch for
    LinkPatterns,           # related cases
    QueueCaseMails,         # receipt and notification, in the same transaction
    RecordFiled,            # the `filed` audit event
    RecordProcessed,        # processed, if the claim is still ours; then the commit
    # After the commit.
    WakeOutboxSender,
    ReadScreenshots,        # OCR, once the manager's notification is on its way
)

# The first filing step: the steps before it are the extraction.
_FILING_STARTS = STEPS.index(SkipFiledMessage)


def build_steps(parts: PipelineParts) -> list[Step]:
    """STEPS, built for one configuration: what the worker runs (screenshots read last)."""
    parts = replace(parts, defer_ocr=True)
    return [step.from_parts(parts) for step in STEPS]


def extraction_steps(parts: PipelineParts) -> list[Step]:
    """The steps of STEPS before the filing, built: what `reprocess` runs again. The filing
    steps are not among them: a message is filed once, by the worker."""
    return [step.from_parts(parts) for step in STEPS[:_FILING_STARTS]]
