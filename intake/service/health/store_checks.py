"""Health checks of what the service keeps: the data directory, free space, the database, the
last verify and backup, the backlog, outbox and quarantine."""

from __future__ import annotations

import os
import tempfile
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from intake.service.health.findings import (
    MIB,
    CheckStatus,
    Finding,
    HealthInputs,
    format_age,
    messages,
)
from storage.backup_record import last_backup
from storage.database import Database
from storage.migrate import current_revision, head_revision
from storage.models import Message, MessageState, OutboxMail, OutboxState
from storage.verify import last_verify_run


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
