"""`chikanemail verify`: re-hash every blob and walk the audit chain, now.
`chikanemail health`: a list of named checks, each ok, warn or fail.

Each check is one function in `HEALTH_CHECKS`.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from sqlalchemy import func, select

from intake.commands.cli.context import CliContext, cli_actor, open_database, pass_context
from intake.receive.smtp.answers import (
    ANSWER_WINDOW,
    OWN_FAILURES,
    RefusalReason,
    read_status_file,
    status_file_path,
)
from intake.service.config import AppConfig
from intake.service.logs import configure_logging
from storage.backup_record import last_backup
from storage.blobstore import BlobStore
from storage.database import Database
from storage.imap_state import folder_status, oversized_messages
from storage.migrate import current_revision, head_revision
from storage.models import Message, MessageState, OutboxMail, OutboxState, utc_now
from storage.verify import VerifyProgress, VerifyResult, last_verify_run, verify

# -- verify ----------------------------------------------------------------------------


@click.command("verify")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@pass_context
def verify_command(context: CliContext, as_json: bool) -> None:
    """Re-hash every blob of both stores, compare them with their rows, and walk the audit
    chain. Exit status 0 only if nothing is wrong. The run is kept for `health`."""
    config = context.config
    database = open_database(context)
    console = Console(stderr=True)
    try:
        with Progress(
            TextColumn("verify"), BarColumn(), DownloadColumn(binary_units=True),
            TransferSpeedColumn(), TimeRemainingColumn(),
            console=console, disable=not console.is_terminal,
        ) as progress:
            # Inside the bar's block, so a log line on stderr is printed above the bar.
            configure_logging("WARNING", sys.stderr)  # stdout carries the report
            task = progress.add_task("verify", total=None)

            def show(done: VerifyProgress) -> None:
                progress.update(task, total=done.bytes_total, completed=done.bytes_done)

            result = verify(database, BlobStore(config.storage.blob_root),
                            BlobStore(config.storage.derived_root), config.storage.data_path,
                            trigger="cli", actor=cli_actor(), on_progress=show)
    finally:
        database.dispose()
    if as_json:
        click.echo(json.dumps(result.as_json(), indent=2, ensure_ascii=False))
    else:
        for line in verify_report(result):
            click.echo(line)
    if not result.ok:
        sys.exit(1)


def verify_report(result: VerifyResult) -> list[str]:
    """The run as lines of text: totals, each problem, the first broken audit link, verdict."""
    lines = [f"checked {result.blobs} blobs ({result.bytes / (1024 * 1024):.1f} MiB) and "
             f"{result.chain.events} audit events in {result.seconds:.1f} s"]
    for problem in result.problems:
        lines.append(f"{problem.kind.value:<13} {problem.path}: {problem.detail}")
    broken = result.chain.broken
    if broken is not None:
        lines.append(f"audit chain broken at event {broken.seq} "
                     f"(action {broken.action or 'unknown'}): {broken.reason}")
    count = result.problem_count
    lines.append("OK" if result.ok else f"FAILED: {count} problem{'' if count == 1 else 's'}")
    return lines


# -- health ----------------------------------------------------------------------------


class CheckStatus(StrEnum):
    """How one health check came out."""

    OK = "ok"
    WARN = "warn"  # worth a look; still healthy
    FAIL = "fail"  # unhealthy: `health` exits non-zero
    SKIPPED = "skipped"  # not checked: an earlier check failed, or nothing to check


@dataclass(frozen=True)
class Finding:
    """What a check found: its status, one line for people, and values for machines."""

    status: CheckStatus
    summary: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class HealthInputs:
    """What the checks look at; the database check sets `database` when it can be used."""

    config: AppConfig
    now: datetime
    database: Database | None = None


@dataclass(frozen=True)
class HealthCheck:
    """One named check; those needing the database are skipped when it is not usable."""

    name: str
    run: Callable[[HealthInputs], Finding]
    needs_database: bool = True


@dataclass(frozen=True)
class CheckResult:
    """A check's name with its finding."""

    name: str
    finding: Finding

    def as_json(self) -> dict[str, Any]:
        """The result as plain JSON values."""
        return {"name": self.name, "status": self.finding.status.value,
                "summary": self.finding.summary, "details": self.finding.details}


def check_data_dir(inputs: HealthInputs) -> Finding:
    """The data directory takes a new file (created and removed again); the stores exist."""
    data_path = inputs.config.storage.data_path
    if not data_path.is_dir():
        return Finding(CheckStatus.FAIL, f"{data_path} does not exist",
                       {"path": str(data_path)})
    try:
        fd, probe = tempfile.mkstemp(prefix=".health-", dir=data_path)
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        return Finding(CheckStatus.FAIL, f"{data_path} is not writable: {error.strerror}",
                       {"path": str(data_path)})
    storage = inputs.config.storage
    missing = [root.name for root in (storage.blob_root, storage.derived_root)
               if not root.is_dir()]
    unwritable = [root.name for root in (storage.blob_root, storage.derived_root)
                  if root.is_dir() and not os.access(root, os.W_OK | os.X_OK)]
    details = {"path": str(data_path), "stores_missing": missing,
               "stores_not_writable": unwritable}
    if unwritable:
        return Finding(CheckStatus.FAIL, f"store not writable: {', '.join(unwritable)}",
                       details)
    if missing:
        return Finding(CheckStatus.WARN, f"writable; not created yet: {', '.join(missing)} "
                                         "(the daemon creates them)", details)
    return Finding(CheckStatus.OK, f"{data_path} writable", details)


def check_database(inputs: HealthInputs) -> Finding:
    """The database answers and is at the schema this version needs."""
    database = Database(inputs.config.storage.effective_database_url)
    try:
        revision, head = current_revision(database), head_revision()
    except BaseException:
        database.dispose()
        raise
    details = {"revision": revision, "head": head}
    if revision != head:
        database.dispose()
        return Finding(CheckStatus.FAIL, f"at schema {revision or '(empty)'}, this version "
                                         f"needs {head}: run `chikanemail db upgrade`", details)
    inputs.database = database
    return Finding(CheckStatus.OK, f"reachable, at schema {revision}", details)


def check_last_verify(inputs: HealthInputs) -> Finding:
    """The last verify run: failed is unhealthy; none, or older than twice the interval,
    is a warning."""
    assert inputs.database is not None
    every_days = inputs.config.storage.verify_every_days
    run = last_verify_run(inputs.database)
    if run is None or run.finished_at is None:
        return Finding(CheckStatus.WARN, "no verify run yet: run `chikanemail verify`",
                       {"every_days": every_days})
    age = inputs.now - run.finished_at
    details = {"finished_at": run.finished_at.isoformat(), "age_seconds": int(age.total_seconds()),
               "ok": bool(run.ok), "problems": len(run.problems), "trigger": run.trigger,
               "blobs": run.blobs_checked, "every_days": every_days}
    when = f"{format_age(age)} ago ({run.trigger})"
    if not run.ok:
        return Finding(CheckStatus.FAIL, f"last verify {when} found {len(run.problems)} "
                                         "problem(s): see `chikanemail verify`", details)
    if age > timedelta(days=2 * every_days):
        return Finding(CheckStatus.WARN, f"last verify {when} was ok, but that is more than "
                                         f"twice verify_every_days ({every_days:g})", details)
    return Finding(CheckStatus.OK, f"last verify {when} ok: {run.blobs_checked} blobs",
                   details)


def check_outbox(inputs: HealthInputs) -> Finding:
    """Outgoing mail waiting (count, oldest age) and mail given up on."""
    assert inputs.database is not None
    waiting = (OutboxState.PENDING, OutboxState.SENDING)
    with inputs.database.read() as session:
        count, oldest = session.execute(
            select(func.count(), func.min(OutboxMail.created_at))
            .where(OutboxMail.state.in_(waiting))).one()
        failed = session.execute(select(func.count()).select_from(OutboxMail)
                                 .where(OutboxMail.state == OutboxState.FAILED)).scalar_one()
    age = inputs.now - oldest if oldest is not None else None
    details = {"waiting": count, "failed": failed,
               "oldest_age_seconds": int(age.total_seconds()) if age is not None else None}
    summary = (f"{count} waiting" + (f", oldest {format_age(age)}" if age is not None else "")
               + (f"; {failed} given up" if failed else ""))
    stuck = age is not None and age.total_seconds() > inputs.config.notify.max_retry_seconds
    return Finding(CheckStatus.WARN if failed or stuck else CheckStatus.OK, summary, details)


def check_quarantine(inputs: HealthInputs) -> Finding:
    """Messages kept out of cases; those whose processing failed want an admin."""
    assert inputs.database is not None
    with inputs.database.read() as session:
        by_reason: dict[str | None, int] = {reason: count for reason, count in session.execute(
            select(Message.quarantine_reason, func.count())
            .where(Message.state == MessageState.QUARANTINED)
            .group_by(Message.quarantine_reason))}
    total = sum(by_reason.values())
    failed = by_reason.get("processing-failed", 0)
    details = {"quarantined": total, "by_reason": {str(key): value
                                                  for key, value in by_reason.items()}}
    if failed:
        return Finding(CheckStatus.WARN, f"{total} quarantined, {failed} because processing "
                                         "failed", details)
    return Finding(CheckStatus.OK, f"{total} quarantined", details)


# How long the listener check waits for a connection and for the 220 greeting.
LISTENER_TIMEOUT_SECONDS = 3.0
# A mailbox whose last successful check is older than this is worth a look.
IMAP_STALE_AFTER = timedelta(minutes=10)


def _connectable_host(host: str) -> str:
    """Where to connect to reach a listener bound to `host` (a wildcard means this machine)."""
    return {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # noqa: S104


def _read_line(connection: socket.socket, limit: int = 512) -> bytes:
    """The first line the peer sends (up to `limit` bytes), or what came before it closed."""
    received = b""
    while b"\n" not in received and len(received) < limit:
        chunk = connection.recv(limit - len(received))
        if not chunk:
            break
        received += chunk
    return received


def check_listeners(inputs: HealthInputs) -> Finding:
    """The [smtp] listener accepts a connection and greets with 220 (skipped when disabled)."""
    smtp = inputs.config.smtp
    kind = "LMTP" if smtp.lmtp else "SMTP"
    details: dict[str, Any] = {"kind": kind, "host": smtp.host, "port": smtp.port}
    if not smtp.enabled:
        return Finding(CheckStatus.SKIPPED, "[smtp] enabled = false: no listener", details)
    where = f"{smtp.host}:{smtp.port}"
    try:
        with socket.create_connection((_connectable_host(smtp.host), smtp.port),
                                      timeout=LISTENER_TIMEOUT_SECONDS) as connection:
            greeting = _read_line(connection).decode("ascii", "replace")
            with contextlib.suppress(OSError):  # the greeting is what counts
                connection.sendall(b"QUIT\r\n")
    except OSError as error:
        reason = error.strerror or type(error).__name__
        return Finding(CheckStatus.FAIL, f"nothing answers on {where} ({kind}): {reason}",
                       details)
    details["greeting"] = greeting.strip()
    if not greeting.startswith("220"):
        return Finding(CheckStatus.FAIL, f"{kind} on {where} did not greet with 220: "
                                         f"{greeting.strip()[:80]!r}", details)
    return Finding(CheckStatus.OK, f"{kind} on {where} greets with 220", details)


def check_imap(inputs: HealthInputs) -> Finding:
    """Each [[imap]] mailbox: connected and checked within 10 minutes; never checked
    successfully while errors are recorded is a failure."""
    assert inputs.database is not None
    mailboxes = inputs.config.imap
    if not mailboxes:
        return Finding(CheckStatus.SKIPPED, "no [[imap]] mailboxes configured")
    worst = CheckStatus.OK
    lines: list[str] = []
    entries: list[dict[str, Any]] = []
    for mailbox in mailboxes:
        state = folder_status(inputs.database, mailbox.name, mailbox.folder)
        connected = state.connected if state else False
        success = state.last_success_at if state else None
        error = state.last_error if state else None
        age = inputs.now - success if success is not None else None
        if success is None and error:
            status, line = CheckStatus.FAIL, f"{mailbox.name}: never worked: {error}"
        elif success is None:
            status, line = CheckStatus.WARN, f"{mailbox.name}: not checked yet"
        elif not connected or (age is not None and age > IMAP_STALE_AFTER):
            status = CheckStatus.WARN
            line = (f"{mailbox.name}: {'connected' if connected else 'not connected'}, last "
                    f"success {format_age(age or timedelta())} ago"
                    + (f"; last error: {error}" if error else ""))
        else:
            status, line = CheckStatus.OK, f"{mailbox.name}: ok"
        if status == CheckStatus.FAIL or (status == CheckStatus.WARN
                                          and worst == CheckStatus.OK):
            worst = status
        lines.append(line)
        entries.append({"name": mailbox.name, "folder": mailbox.folder, "status": status.value,
                        "connected": connected,
                        "last_success_age_seconds": (int(age.total_seconds())
                                                     if age is not None else None),
                        "last_error": error})
    return Finding(worst, "; ".join(lines), {"mailboxes": entries})


MIB = 1024 * 1024


def check_free_space(inputs: HealthInputs) -> Finding:
    """Free space for new mail on the filesystem of the data directory (and of each store
    configured elsewhere): under [health] min_free_mb a warning, under fail_free_mb a
    failure (the receiver answers 451 when it runs out)."""
    storage, health = inputs.config.storage, inputs.config.health
    paths = [path for path in (storage.data_path, storage.blob_root, storage.derived_root)
             if path.is_dir()]
    if not paths:
        return Finding(CheckStatus.SKIPPED, f"{storage.data_path} does not exist")
    by_device: dict[int, Any] = {}
    for path in paths:
        by_device.setdefault(path.stat().st_dev, path)
    filesystems: list[dict[str, Any]] = []
    for path in by_device.values():
        usage = os.statvfs(path)
        filesystems.append({"path": str(path),
                            "free_mb": usage.f_bavail * usage.f_frsize // MIB,
                            "size_mb": usage.f_blocks * usage.f_frsize // MIB})
    tightest = min(filesystems, key=lambda entry: entry["free_mb"])
    details = {"filesystems": filesystems, "free_mb": tightest["free_mb"],
               "min_free_mb": health.min_free_mb, "fail_free_mb": health.fail_free_mb}
    where = (f"{tightest['free_mb']} MB free of {tightest['size_mb']} MB on the filesystem of "
             f"{tightest['path']}")
    if tightest["free_mb"] < health.fail_free_mb:
        return Finding(CheckStatus.FAIL, f"free space: only {where} (fail below "
                                         f"{health.fail_free_mb} MB); new mail is refused "
                                         "when it runs out", details)
    if tightest["free_mb"] < health.min_free_mb:
        return Finding(CheckStatus.WARN, f"free space low: {where} (warn below "
                                         f"{health.min_free_mb} MB)", details)
    return Finding(CheckStatus.OK, where, details)


def messages(count: int) -> str:
    """`1 message`, `2 messages`."""
    return f"{count} message{'' if count == 1 else 's'}"


def _times(entry: Any) -> list[datetime]:
    """The 451 times of one reason in the status file."""
    times = entry.get("times", []) if isinstance(entry, dict) else []
    return [datetime.fromisoformat(value) for value in times]


def check_smtp_answers(inputs: HealthInputs) -> Finding:
    """451s the daemon answered in the last 15 minutes because our storage or database
    failed: a failure while no message was stored since the last one, a warning once mail is
    stored again (until they leave the window). Read from the status file the daemon
    publishes, so it works with the disk full and the database down."""
    config = inputs.config
    if not config.smtp.enabled:
        return Finding(CheckStatus.SKIPPED, "[smtp] enabled = false: no listener")
    path = status_file_path(config.health.status_dir, config.storage.data_path)
    details: dict[str, Any] = {"path": str(path)}
    try:
        status = read_status_file(path)
    except (OSError, ValueError) as error:
        return Finding(CheckStatus.WARN, f"cannot read {path}: {error}", details)
    if status is None:
        return Finding(CheckStatus.WARN, f"no status from the daemon at {path}: it is not "
                                         "running, or it writes elsewhere ([health] "
                                         "status_dir)", details)
    since = inputs.now - ANSWER_WINDOW
    refused = status["refused_451"]
    recent = {reason: [at for at in _times(refused.get(reason.value)) if at >= since]
              for reason in RefusalReason}
    own = [at for reason in OWN_FAILURES for at in recent[reason]]
    others = recent[RefusalReason.OTHER]
    stored_at = (datetime.fromisoformat(status["last_stored_at"])
                 if status.get("last_stored_at") else None)
    details.update({"pid": status.get("pid"),
                    "window_seconds": int(ANSWER_WINDOW.total_seconds()),
                    "refused_451": {reason.value: len(times) for reason, times in recent.items()},
                    "last_refused_at": max(own + others).isoformat() if own or others else None,
                    "last_stored_at": stored_at.isoformat() if stored_at else None})
    counts = ", ".join(f"{reason.value.replace('-', ' ')}: {len(times)}"
                       for reason, times in recent.items() if times)
    window = f"{int(ANSWER_WINDOW.total_seconds()) // 60} min"
    if own:
        last = max(own)
        summary = (f"{messages(len(own) + len(others))} answered 451 in the last {window} "
                   f"({counts}), the last {format_age(inputs.now - last)} ago")
        if stored_at is None or stored_at < last:
            return Finding(CheckStatus.FAIL, summary + "; no message stored since", details)
        return Finding(CheckStatus.WARN, summary + "; mail is stored again since "
                                         f"{format_age(inputs.now - stored_at)} ago", details)
    if others:
        return Finding(CheckStatus.WARN, f"{messages(len(others))} answered 451 in the last "
                                         f"{window} for errors of ours (see the log), the last "
                                         f"{format_age(inputs.now - max(others))} ago", details)
    return Finding(CheckStatus.OK, f"no 451 in the last {window}", details)


def check_imap_left(inputs: HealthInputs) -> Finding:
    """Mail left on an IMAP server because it is over max_message_bytes: a warning with the
    count and the oldest, per mailbox."""
    assert inputs.database is not None
    left = oversized_messages(inputs.database)
    if not left and not inputs.config.imap:
        return Finding(CheckStatus.SKIPPED, "no [[imap]] mailboxes configured")
    if not left:
        return Finding(CheckStatus.OK, "no mail left on the server", {"left": 0})
    mailboxes: dict[str, list[Any]] = {}
    for message in left:
        mailboxes.setdefault(message.mailbox, []).append(message)
    entries, lines = [], []
    for name, messages in mailboxes.items():
        oldest = min(messages, key=lambda message: message.seen_at)
        entries.append({"name": name, "left": len(messages),
                        "oldest_seen_at": oldest.seen_at.isoformat(),
                        "oldest_folder": oldest.folder, "oldest_uid": oldest.uid,
                        "oldest_size": oldest.size})
        lines.append(f"{name}: {len(messages)} left on the server (over max_message_bytes), "
                     f"oldest seen {format_age(inputs.now - oldest.seen_at)} ago (UID "
                     f"{oldest.uid} in {oldest.folder}, {oldest.size / MIB:.1f} MiB): fetch "
                     "it by hand or raise the limit")
    return Finding(CheckStatus.WARN, "; ".join(lines), {"left": len(left), "mailboxes": entries})


def check_backlog(inputs: HealthInputs) -> Finding:
    """Messages received but not processed yet, and how long the oldest has waited: a
    warning past [health] backlog_max_age_minutes."""
    assert inputs.database is not None
    limit_minutes = inputs.config.health.backlog_max_age_minutes
    waiting = (MessageState.RECEIVED, MessageState.PROCESSING)
    with inputs.database.read() as session:
        count, oldest = session.execute(
            select(func.count(), func.min(Message.received_at))
            .where(Message.state.in_(waiting))).one()
    age = inputs.now - oldest if oldest is not None else None
    details = {"waiting": count, "max_age_minutes": limit_minutes,
               "oldest_age_seconds": int(age.total_seconds()) if age is not None else None}
    summary = (f"{messages(count)} waiting to be processed"
               + (f", oldest received {format_age(age)} ago" if age is not None else ""))
    if age is not None and age > timedelta(minutes=limit_minutes):
        return Finding(CheckStatus.WARN, f"{summary}: longer than {limit_minutes:g} min; is "
                                         "the worker running? (see the log)", details)
    return Finding(CheckStatus.OK, summary, details)


def check_backup(inputs: HealthInputs) -> Finding:
    """The last backup recorded in the data directory: a warning when none is recorded or
    it is older than [health] backup_max_age_hours (not checked when that is 0)."""
    max_hours = inputs.config.health.backup_max_age_hours
    at = last_backup(inputs.config.storage.data_path)
    age = inputs.now - at if at is not None else None
    details = {"last_backup_at": at.isoformat() if at is not None else None,
               "age_seconds": int(age.total_seconds()) if age is not None else None,
               "max_age_hours": max_hours}
    if age is None:
        if not max_hours:
            return Finding(CheckStatus.SKIPPED, "no backup recorded; not checked ([health] "
                                                "backup_max_age_hours = 0)", details)
        return Finding(CheckStatus.WARN, "no backup recorded: run `chikanemail backup`",
                       details)
    summary = f"last backup {format_age(age)} ago"
    if max_hours and age > timedelta(hours=max_hours):
        return Finding(CheckStatus.WARN, f"{summary}: older than backup_max_age_hours "
                                         f"({max_hours:g})", details)
    return Finding(CheckStatus.OK, summary, details)


HEALTH_CHECKS: tuple[HealthCheck, ...] = (
    HealthCheck("data-dir", check_data_dir, needs_database=False),
    HealthCheck("free-space", check_free_space, needs_database=False),
    HealthCheck("database", check_database, needs_database=False),
    HealthCheck("listeners", check_listeners, needs_database=False),
    HealthCheck("smtp-answers", check_smtp_answers, needs_database=False),
    HealthCheck("imap", check_imap),
    HealthCheck("imap-left", check_imap_left),
    HealthCheck("backlog", check_backlog),
    HealthCheck("verify", check_last_verify),
    HealthCheck("outbox", check_outbox),
    HealthCheck("quarantine", check_quarantine),
    HealthCheck("backup", check_backup, needs_database=False),
)


def run_health_checks(config: AppConfig, checks: tuple[HealthCheck, ...] = HEALTH_CHECKS,
                      now: datetime | None = None) -> list[CheckResult]:
    """Every check's result, in order; a check that raises is a failure, not a crash."""
    inputs = HealthInputs(config, now or utc_now())
    results: list[CheckResult] = []
    try:
        for check in checks:
            if check.needs_database and inputs.database is None:
                finding = Finding(CheckStatus.SKIPPED, "the database is not usable")
            else:
                try:
                    finding = check.run(inputs)
                except Exception as error:
                    reason = (str(error).strip().splitlines() or [""])[0]
                    finding = Finding(CheckStatus.FAIL, f"{type(error).__name__}: {reason}")
            results.append(CheckResult(check.name, finding))
    finally:
        if inputs.database is not None:
            inputs.database.dispose()
    return results


def is_healthy(results: list[CheckResult]) -> bool:
    """Healthy unless a check failed (warnings and skips alone do not make it unhealthy)."""
    return all(result.finding.status != CheckStatus.FAIL for result in results)


def format_age(age: timedelta) -> str:
    """A duration the way people say it: 40 s, 12 min, 5 h, 3 d."""
    seconds = max(0, int(age.total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


@click.command("health")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@pass_context
def health_command(context: CliContext, as_json: bool) -> None:
    """Whether the service is healthy: data directory, free space, database, SMTP/LMTP
    listener and its 451s of the last 15 minutes, IMAP mailboxes and mail left on their
    servers, the worker's backlog, last verify, outbox, quarantine, last backup. Exit status
    1 when a check fails (warnings keep it 0)."""
    results = run_health_checks(context.config)
    healthy = is_healthy(results)
    if as_json:
        click.echo(json.dumps({"healthy": healthy,
                               "checks": [result.as_json() for result in results]},
                              indent=2, ensure_ascii=False))
    else:
        width = max(len(result.name) for result in results)
        for result in results:
            click.echo(f"{result.finding.status.value:<8} {result.name:<{width}} "
                       f"{result.finding.summary}")
        warnings = sum(result.finding.status == CheckStatus.WARN for result in results)
        click.echo(("healthy" if healthy else "UNHEALTHY")
                   + (f" ({warnings} warnings)" if warnings else ""))
    if not healthy:
        sys.exit(1)
