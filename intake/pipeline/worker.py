"""The worker: claims received messages and runs the pipeline (STEPS, `intake.pipeline`) on
each, never dropping one.

A message's filing records it processed in its own transaction, while the claim is still
this worker's (`RecordProcessed`); a report with screenshots is recorded processed with
their text (`ReadScreenshots`), and a run that ends early (filed before) after it.
A step that raises sends the message back to the queue after a pause; after
`max_attempts` tries it is quarantined with the error. A worker that dies mid-message
leaves a claim that the next start on this host (or the lease, elsewhere) hands back. One
that lives but cannot record how a message ended (the database went away) hands its claims
back itself as soon as the database answers again, rather than leave them to the lease.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta

from intake.pipeline.run import Step, StepFailed, run_steps
from intake.pipeline.step import MessageContext
from intake.service.settings import WorkerSettings
from notifier.polling_thread import PollingThread
from storage.blobstore import BlobStore
from storage.claims import ClaimerIdentity
from storage.database import Database
from storage.log_context import log_fields
from storage.messages import (
    ClaimedMessage,
    ClaimLost,
    claim_messages,
    mark_failed,
    mark_processed,
    release_abandoned_claims,
    release_claims,
)
from storage.models import MessageState

log = logging.getLogger("chikanemail.intake.worker")


class Worker:
    """Runs the pipeline over waiting messages, in its own thread or batch by batch."""

    def __init__(
        self,
        store: BlobStore,
        database: Database,
        settings: WorkerSettings,
        steps: Sequence[Step],
    ) -> None:
        self.store = store
        self.database = database
        self.settings = settings
        self.steps = list(steps)
        self.identity = ClaimerIdentity()
        # Messages claimed in this thread whose outcome is not recorded yet.
        self._unfinished: list[int] = []
        self._loop = PollingThread(
            "chikanemail-worker", self.process_batch, settings.poll_seconds,
            failure="worker could not claim or record work",
            busy_at_stop="worker still busy at shutdown; its message resumes at next start")

    def wake(self) -> None:
        """Tell the worker a new message is waiting (safe from any thread)."""
        self._loop.wake()

    def recover_abandoned(self) -> int:
        """Hand back messages left mid-processing by a dead worker of this host."""
        released = release_abandoned_claims(
            self.database,
            is_abandoned=self.identity.is_abandoned,
            max_attempts=self.settings.max_attempts,
        )
        if released:
            log.info("resumed %d messages left mid-processing by a stopped worker", released)
        return released

    def process_batch(self) -> int:
        """Claim up to batch_size waiting messages and process them; return how many."""
        self._hand_back_unfinished()
        claimed = claim_messages(
            self.database,
            worker_id=str(self.identity),
            limit=self.settings.batch_size,
            lease=timedelta(seconds=self.settings.lease_seconds),
        )
        self._unfinished = [message.message_pk for message in claimed]
        for index, message in enumerate(claimed):
            if self._loop.stopping:
                # Hand the rest back now, so no other daemon has to wait for our lease.
                release_claims(self.database, self._unfinished, str(self.identity))
                self._unfinished = []
                break
            # Raises when the outcome cannot be recorded: the claims stay in _unfinished.
            self._process_one(message)
            self._unfinished = [m.message_pk for m in claimed[index + 1:]]
        return len(claimed)

    def _hand_back_unfinished(self) -> None:
        """Give back the claims of a batch cut short by an error (the database went away
        while it ran), now that it may answer again; raises while it does not. A message
        whose outcome was recorded after all is no longer claimed and is left alone."""
        if not self._unfinished:
            return
        released = release_claims(self.database, self._unfinished, str(self.identity))
        self._unfinished = []
        if released:
            log.warning("handed back %d messages whose processing was cut short by an error",
                        released)

    def process_until_idle(self) -> int:
        """Process batches until nothing is waiting; return how many messages were handled."""
        total = 0
        while handled := self.process_batch():
            total += handled
        return total

    def _process_one(self, message: ClaimedMessage) -> None:
        with log_fields(sha256=message.sha256):
            self._run_steps(message)

    def _run_steps(self, message: ClaimedMessage) -> None:
        context = MessageContext(
            message_pk=message.message_pk,
            sha256=message.sha256,
            attempt=message.attempts,
            store=self.store,
            database=self.database,
            claimer=str(self.identity),
        )
        try:
            filing = run_steps(self.steps, context)
        except StepFailed as failed:
            if isinstance(failed.error, ClaimLost):
                # Nothing of the filing was committed; the worker now holding it files it.
                log.warning("message claim lost before finishing sha256=%s", message.sha256)
                return
            self._record_failure(message, failed.step_name, failed.error)
            return
        # The filing recorded it in its own transaction; a run that ended early (the
        # message was filed before) or had no filing records it here.
        if filing.processed or mark_processed(
                self.database, message.message_pk, str(self.identity)):
            log.info("message processed sha256=%s id=%d", message.sha256, message.message_pk)
        else:
            log.warning("message claim lost before finishing sha256=%s", message.sha256)

    def _record_failure(self, message: ClaimedMessage, step_name: str, error: Exception) -> None:
        description = f"{step_name}: {type(error).__name__}: {error}"
        state = mark_failed(
            self.database,
            message.message_pk,
            str(self.identity),
            error=description,
            max_attempts=self.settings.max_attempts,
            retry_after=timedelta(seconds=self.settings.retry_seconds),
        )
        if state == MessageState.QUARANTINED:
            log.error("message quarantined after %d attempts sha256=%s step=%s error=%s",
                      message.attempts, message.sha256, step_name, type(error).__name__,
                      exc_info=error)
        else:
            log.warning("step failed, will retry sha256=%s step=%s attempt=%d/%d error=%s",
                        message.sha256, step_name, message.attempts,
                        self.settings.max_attempts, type(error).__name__, exc_info=error)

    # -- running in a thread ------------------------------------------------

    def start(self) -> None:
        """Resume abandoned work and start the worker thread."""
        self.recover_abandoned()
        self._loop.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Let the current message finish and stop the thread."""
        self._loop.stop(timeout)
