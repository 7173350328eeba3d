"""The daemon: database, store, worker and listeners started together and stopped cleanly."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Protocol

from intake.cases.patterns import PatternFinder
from intake.commands.reply.actions import ReplyHandler
from intake.commands.reply.parser import command_help, reply_lines
from intake.parse.ocr import OcrEngine
from intake.pipeline import build_steps, extraction_steps
from intake.pipeline.parts import PipelineParts
from intake.pipeline.run import Step
from intake.pipeline.worker import Worker
from intake.pipeline.worker_processes import WorkerProcesses
from intake.receive.accept import IntakeService
from intake.receive.addresses import RecipientPolicy, SenderPolicy
from intake.receive.imap.receiver import ImapReceiver
from intake.receive.smtp.answers import SmtpAnswers, status_file_path
from intake.receive.smtp.server import SmtpListener, start_smtp_listener
from intake.service.config import AppConfig
from intake.service.systemd import SystemdNotifier, ready_status
from intake.trust.reply_proof import ReceiptPolicy
from intake.web.context import WebContext
from intake.web.server import WebServer
from intake.web.status import status_file
from notifier.case_actions import CaseActions
from notifier.clock import Clock, SystemClock
from notifier.mails import MailComposer
from notifier.new_case_mails import NewCaseMails
from notifier.plan.checklist import calendar_for
from notifier.plan.mails import PlanMails
from notifier.plan.runner import PlanRunner
from notifier.plan.scheduler import PlanScheduler, ScheduledJob
from notifier.sender import OutboxSender
from notifier.templating import LANGUAGES
from notifier.timestamps import TimestampJob
from notifier.transport import transport_for
from storage.blobstore import BlobStore
from storage.claims import process_is_alive
from storage.database import Database
from storage.errors import SettingsError
from storage.leader import LeaderLock
from storage.migrate import upgrade_database
from storage.permissions import make_database_files_private, shared_mode
from storage.retention.deletion import run_retention_if_enabled
from storage.status_links import retire_links_of_closed_cases
from storage.verify import verify_if_due

log = logging.getLogger("chikanemail.daemon")

SHUTDOWN_GRACE_SECONDS = 30.0
# Mailbox threads leave IDLE within a second. One still talking to its server after the
# grace period has its connection cut, which is safe: a message not yet stored stays on the
# server, one stored but not yet moved is fetched again at the next start and only counted.
IMAP_STOP_GRACE_SECONDS = 3.0
IMAP_STOP_SECONDS = 10.0
# How often the scheduler looks whether verify is due ([storage] verify_every_days) and
# deletes what retention says has expired.
VERIFY_CHECK_SECONDS = 3600.0
RETENTION_SECONDS = 3600.0
# How often every daemon looks for work a stopped daemon of the same host left claimed.
RESUME_ABANDONED_SECONDS = 10.0


@dataclass
class Services:
    """The parts every entry point shares: store, database and the accept path."""

    store: BlobStore
    database: Database
    intake: IntakeService

    def close(self) -> None:
        """Release the database connections."""
        self.database.dispose()


def open_services(config: AppConfig, on_stored: Callable[[], None] | None = None) -> Services:
    """Create the data directory, migrate the database and build the accept path."""
    data_path = config.storage.data_path
    data_path.mkdir(mode=0o700, parents=True, exist_ok=True)
    require_private_data_dir(config)
    store = BlobStore(config.storage.blob_root)
    store.ensure_root()
    store.remove_abandoned_work_files(is_alive=process_is_alive)
    database = Database(config.storage.effective_database_url)
    upgrade_database(database)
    if database.is_sqlite and database.url.database:
        make_database_files_private(Path(database.url.database))
    intake = IntakeService(
        store, database, SenderPolicy.from_domains(config.intake.allowed_sender_domains),
        on_stored=on_stored,
    )
    return Services(store, database, intake)


def require_private_data_dir(config: AppConfig) -> None:
    """Refuse a data directory that group or others can read (it holds sensitive personal
    data), unless `[storage] allow_shared_permissions` says that is meant."""
    data_path = config.storage.data_path
    mode = shared_mode(data_path)
    if mode is None:
        return
    if config.storage.allow_shared_permissions:
        log.warning("data directory %s is mode %o (group/others have access); allowed by "
                    "storage.allow_shared_permissions", data_path, mode)
        return
    raise SettingsError(config.source, "storage.allow_shared_permissions",
                      f"the data directory {data_path} is mode {mode:o}: group or others can "
                      f"read evidence. Run `chmod 700 {data_path}`, or set [storage] "
                      "allow_shared_permissions = true if that is meant")


def ocr_engine_for(config: AppConfig) -> OcrEngine | None:
    """The OCR engine the config asks for; says once (in the log) if tesseract is missing."""
    if not config.extract.ocr:
        return None
    engine = OcrEngine(config.extract.ocr_languages, config.extract.ocr_timeout_seconds)
    _ = engine.available  # checked now, so a missing tesseract is reported at start
    return engine


def composer_for(config: AppConfig) -> MailComposer:
    """The mail composer for this configuration (notification, receipt, plan mails)."""
    return MailComposer(config.notify, intake_address=config.intake.addresses[0],
                        hostname=config.smtp.server_hostname or socket.gethostname(),
                        command_help={language: command_help(language)
                                      for language in LANGUAGES},
                        recipient_delimiter=config.intake.recipient_delimiter,
                        zone=config.ui.zone, web_base_url=case_link_base(config))


def case_link_base(config: AppConfig) -> str:
    """Where links in the managers' mails point: the web view's base URL, or "" when the
    web view is off or listens on a port chosen at start (no address to give)."""
    web = config.web
    if not web.enabled or (not web.base_url and web.port == 0):
        return ""
    return web.effective_base_url


def plan_mails_for(config: AppConfig, composer: MailComposer) -> PlanMails:
    """The renderer of reminders, escalations, digests and confirmations."""
    return PlanMails(composer, config.plan, composer.command_help, reply_lines())


def plan_runner_for(config: AppConfig, database: Database, clock: Clock,
                    on_outbox: Callable[[], None] | None = None) -> PlanRunner:
    """What the scheduler runs: reminders, escalations, the weekly digest."""
    return PlanRunner(database, config.plan, plan_mails_for(config, composer_for(config)),
                      config.notify, calendar_for(config.plan, config.ui.zone),
                      default_manager=config.routing.default_manager,
                      clock=clock, on_outbox=on_outbox)


def housekeeping_jobs(config: AppConfig, database: Database,
                      clock: Clock) -> list[ScheduledJob]:
    """The scheduler's jobs besides the plan: verify when due, retention, status links,
    time-stamps.

    Each decides from the tables what is due, so a run missed while the daemon was down is
    simply done at the next start.
    """
    evidence = BlobStore(config.storage.blob_root)
    derived = BlobStore(config.storage.derived_root)
    jobs = [
        ScheduledJob("verify", "verify blobs and the audit chain when due",
                     lambda: verify_if_due(database, evidence, derived,
                                           config.storage.data_path,
                                           config.storage.verify_every_days, now=clock.now()),
                     every_seconds=VERIFY_CHECK_SECONDS),
        ScheduledJob("retention", "delete what has expired",
                     lambda: run_retention_if_enabled(database, evidence, derived,
                                                      config.retention, now=clock.now()),
                     every_seconds=RETENTION_SECONDS),
        ScheduledJob("status-links", "retire the status links of cases closed 30 days ago",
                     lambda: retire_links_of_closed_cases(database, now=clock.now()),
                     every_seconds=RETENTION_SECONDS),
    ]
    if config.timestamp.tsa_url:
        try:
            stamps = TimestampJob(database, derived, config.timestamp, clock)
        except ValueError as error:
            raise SettingsError(config.source, "timestamp.ca_file", str(error)) from None
        jobs.append(ScheduledJob("timestamps", "RFC 3161 time-stamps of new messages",
                                 stamps.run_due, every_seconds=config.plan.tick_seconds))
    return jobs


class PipelineWorkers(Protocol):
    """What runs the pipeline: the one worker thread, or the worker processes."""

    def start(self) -> None:
        """Hand back abandoned work and start."""

    def wake(self) -> None:
        """Say a new message is waiting."""

    def recover_abandoned(self) -> int:
        """Hand back messages a dead worker of this host left; how many."""

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the messages under way (within `timeout`) and stop."""


def pipeline_workers_for(config: AppConfig, services: Services,
                         on_outbox: Callable[[], None], clock: Clock) -> PipelineWorkers:
    """The worker thread (`[worker] processes = 1`, and the only choice with a test clock)
    or the worker processes of this configuration."""
    if config.worker.process_count == 1:
        steps = pipeline_for(config, on_outbox, clock)
        return Worker(services.store, services.database, config.worker, steps)
    return WorkerProcesses(config, services.database, on_outbox)


def resume_abandoned(worker: PipelineWorkers | None, sender: OutboxSender) -> int:
    """Hand back the messages and mails a daemon of this host left mid-work when it died
    (claims of other hosts come back when their lease runs out); how many."""
    resumed = sender.recover_abandoned()
    if worker is not None:
        resumed += worker.recover_abandoned()
    return resumed


def warn_about_deprecations(config: AppConfig) -> None:
    """Say once, at start, which settings of the file still work under an old name."""
    for notice in config.deprecations:
        log.warning("%s", notice)


def warn_about_trust(config: AppConfig) -> None:
    """Say once, at start, what the command mode means when only the token guards it."""
    if config.trust.command_mode == "token":
        log.warning("trust.commands = \"token\": a mail acts on a case when it comes to the "
                    "secret reply address of that case and person and its From is that "
                    "person; the From itself is not authenticated (set [trust] dkim = true or "
                    "authserv_ids to require that)")


def pipeline_parts_for(config: AppConfig, on_outbox: Callable[[], None] | None = None,
                       clock: Clock | None = None) -> PipelineParts:
    """What the pipeline's steps are built from, for this configuration."""
    derived = BlobStore(config.storage.derived_root)
    derived.ensure_root()
    evidence = BlobStore(config.storage.blob_root)
    composer = composer_for(config)
    calendar = calendar_for(config.plan, config.ui.zone)
    replies = ReplyHandler(CaseActions.for_plan(config.plan, config.ui.zone),
                           plan_mails_for(config, composer),
                           config.notify,
                           admins=config.plan.admins,
                           default_manager=config.routing.default_manager,
                           command_mode=config.trust.command_mode)
    own_domains = [*config.intake.allowed_sender_domains,
                   *(address.rpartition("@")[2] for address in config.intake.addresses)]
    return PipelineParts(
        evidence=evidence, derived=derived, extract=config.extract,
        ocr=ocr_engine_for(config),
        recipients=RecipientPolicy.from_addresses(config.intake.addresses,
                                                  config.intake.recipient_delimiter),
        trust=config.trust,
        receipts=ReceiptPolicy.from_settings(config.intake.allowed_sender_domains,
                                             config.intake.addresses,
                                             config.trust.authenticates),
        max_attempts=config.worker.max_attempts,
        routing=config.routing, replies=replies,
        patterns=PatternFinder(config.plan, own_domains), plan=config.plan,
        calendar=calendar, clock=clock or SystemClock(), notify=config.notify,
        new_case_mails=NewCaseMails(composer, config.notify, config.plan, evidence,
                                    status_base_url=case_link_base(config) or None),
        on_outbox=on_outbox,
    )


def pipeline_for(config: AppConfig, on_outbox: Callable[[], None] | None = None,
                 clock: Clock | None = None) -> list[Step]:
    """The worker's steps for this configuration: STEPS (`intake.pipeline`), built."""
    return build_steps(pipeline_parts_for(config, on_outbox, clock))


def reprocess_steps(config: AppConfig) -> list[Step]:
    """What `reprocess` runs again for this configuration: the extraction steps only."""
    return extraction_steps(pipeline_parts_for(config))


def web_server_for(config: AppConfig, services: Services, clock: Clock,
                   wake_outbox: Callable[[], None]) -> WebServer:
    """The web view of this daemon, on its database and stores."""
    context = WebContext(config=config, database=services.database, evidence=services.store,
                         derived=BlobStore(config.storage.derived_root),
                         composer=composer_for(config), clock=clock, wake_outbox=wake_outbox)
    status_dir = status_file_path(config.health.status_dir, config.storage.data_path).parent
    return WebServer(context, status_file(status_dir))


def stop_receivers(receivers: list[ImapReceiver], grace: float, timeout: float) -> None:
    """Ask every mailbox thread to stop, then wait for them together: connections still busy
    after `grace` seconds are cut, and none is waited for longer than `timeout`."""
    for receiver in receivers:
        receiver.request_stop()
    started = time.monotonic()
    for receiver in receivers:
        elapsed = time.monotonic() - started
        receiver.join(max(0.0, timeout - elapsed), grace=max(0.0, grace - elapsed))


@dataclass(frozen=True)
class ReadyInfo:
    """What a running daemon tells whoever started it."""

    smtp_address: tuple[str, int] | None
    # Where the web view listens; None when it is off or could not bind (logged).
    web_address: tuple[str, int] | None = None


async def serve(
    config: AppConfig,
    *,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[ReadyInfo], None] | None = None,
    handle_signals: bool = True,
    clock: Clock | None = None,
) -> int:
    """Run until SIGTERM/SIGINT (or `stop` is set), then stop cleanly; return the exit code.

    `clock` (tests) is the time the response plan runs on; the machine's clock by default.
    """
    clock = clock or SystemClock()
    stop = stop or asyncio.Event()
    warn_about_deprecations(config)
    warn_about_trust(config)
    loop = asyncio.get_running_loop()
    if handle_signals:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)

    worker: PipelineWorkers | None = None
    wake: Callable[[], None] | None = None
    services = await asyncio.to_thread(open_services, config, lambda: wake() if wake else None)
    try:
        jobs = housekeeping_jobs(config, services.database, clock)  # may refuse the CA file
    except SettingsError:
        services.close()
        raise
    sender = OutboxSender(services.database,
                          transport_for(config.notify, config.storage.data_path),
                          config.notify)
    await asyncio.to_thread(sender.start)
    if config.worker.enabled:
        worker = await asyncio.to_thread(pipeline_workers_for, config, services, sender.wake,
                                         clock)
        wake = worker.wake
        await asyncio.to_thread(worker.start)

    recovery = ScheduledJob("resume-abandoned", "resume work a stopped daemon of this host left",
                            partial(resume_abandoned, worker, sender),
                            every_seconds=RESUME_ABANDONED_SECONDS, leader_only=False)
    scheduler = PlanScheduler(plan_runner_for(config, services.database, clock, sender.wake),
                              tick_seconds=config.plan.tick_seconds,
                              jobs=[*jobs, recovery], leader=LeaderLock(services.database))
    await asyncio.to_thread(scheduler.start)

    listener: SmtpListener | None = None
    receivers: list[ImapReceiver] = []
    web: WebServer | None = None
    # systemd (Type=notify, WatchdogSec=): does nothing without NOTIFY_SOCKET. The watchdog
    # pings run on this loop until the very end, so a slow but live shutdown is not killed.
    systemd = SystemdNotifier.from_environment()
    systemd.start_watchdog()
    try:
        for mailbox in config.imap:
            receiver = ImapReceiver(mailbox, services.intake, config.smtp.max_message_bytes)
            receiver.start()
            receivers.append(receiver)
        if config.smtp.enabled:
            listener = await start_smtp_listener(
                config.smtp,
                services.intake,
                RecipientPolicy.from_addresses(config.intake.addresses,
                                               config.intake.recipient_delimiter),
                reject_foreign_senders=config.intake.foreign_sender_action == "reject",
            )
            # For `chikanemail health`: the 451s of the last 15 minutes, in the runtime dir.
            listener.handler.answers = SmtpAnswers(
                status_file_path(config.health.status_dir, config.storage.data_path))
            await asyncio.to_thread(listener.handler.answers.publish)
        if config.web.enabled:
            # A web view that cannot bind is logged and shown by `health`; intake goes on.
            web = web_server_for(config, services, clock, sender.wake)
            await web.start()
        log.info("chikanemail running data_dir=%s database=%s", config.storage.data_path,
                 services.database.url.render_as_string(hide_password=True))
        if on_ready is not None:
            on_ready(ReadyInfo(listener.address if listener else None,
                               web.address if web else None))
        systemd.ready(ready_status(listener.address if listener else None, len(receivers)))
        await stop.wait()
        systemd.stopping("stopping: finishing messages in flight")
        log.info("stopping: no new connections; finishing messages in flight")
    finally:
        if web is not None:
            await web.stop()
        if listener is not None:
            await listener.close(SHUTDOWN_GRACE_SECONDS)
        if receivers:
            await asyncio.to_thread(stop_receivers, receivers, IMAP_STOP_GRACE_SECONDS,
                                    IMAP_STOP_SECONDS)
        if worker is not None:
            await asyncio.to_thread(worker.stop, SHUTDOWN_GRACE_SECONDS)
        await asyncio.to_thread(scheduler.stop)
        await asyncio.to_thread(sender.stop, SHUTDOWN_GRACE_SECONDS)
        services.close()
        if handle_signals:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
        systemd.stop_watchdog()
    log.info("stopped")
    return 0
