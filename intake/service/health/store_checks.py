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
    Decimals,
    Finding,
    HealthInputs,
    Phrase,
    format_age,
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
        return Finding(CheckStatus.FAIL, Phrase.gettext("{path} does not exist",
                                                        path=str(data_path)),
                       {"path": str(data_path)})
    try:
        fd, probe = tempfile.mkstemp(prefix=".health-", dir=data_path)
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        return Finding(CheckStatus.FAIL, Phrase.gettext(
            "{path} is not writable", system=str(error.strerror), path=str(data_path)),
            {"path": str(data_path)})
    storage = inputs.config.storage
    missing = [root.name for root in (storage.blob_root, storage.derived_root)
               if not root.is_dir()]
    unwritable = [root.name for root in (storage.blob_root, storage.derived_root)
                  if root.is_dir() and not os.access(root, os.W_OK | os.X_OK)]
    details = {"path": str(data_path), "stores_missing": missing,
               "stores_not_writable": unwritable}
    if unwritable:
        return Finding(CheckStatus.FAIL, Phrase.gettext(
            "store not writable: {stores}", stores=", ".join(unwritable)), details)
    if missing:
        return Finding(CheckStatus.WARN, Phrase.gettext(
            "writable; not created yet: {stores} (the daemon creates them)",
            stores=", ".join(missing)), details)
    return Finding(CheckStatus.OK, Phrase.gettext("{path} writable", path=str(data_path)),
                   details)


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
        if revision:
            text = Phrase.gettext("at schema {revision}, this version needs {head}: run "
                                  "`chikanemail db upgrade`", revision=revision, head=head)
        else:
            text = Phrase.gettext("at schema (empty), this version needs {head}: run "
                                  "`chikanemail db upgrade`", head=head)
        return Finding(CheckStatus.FAIL, text, details)
    inputs.database = database
    return Finding(CheckStatus.OK, Phrase.gettext("reachable, at schema {revision}",
                                                  revision=revision), details)


def check_last_verify(inputs: HealthInputs) -> Finding:
    """The last verify run: failed is unhealthy; none, or older than twice the interval,
    is a warning."""
    assert inputs.database is not None
    every_days = inputs.config.storage.verify_every_days
    run = last_verify_run(inputs.database)
    if run is None or run.finished_at is None:
        return Finding(CheckStatus.WARN,
                       Phrase.gettext("no verify run yet: run `chikanemail verify`"),
                       {"every_days": every_days})
    age = inputs.now - run.finished_at
    details = {"finished_at": run.finished_at.isoformat(), "age_seconds": int(age.total_seconds()),
               "ok": bool(run.ok), "problems": len(run.problems), "trigger": run.trigger,
               "blobs": run.blobs_checked, "every_days": every_days}
    # The trigger ("scheduler", "cli") is a code, shown as it is.
    ago, trigger = format_age(age), run.trigger
    if not run.ok:
        return Finding(CheckStatus.FAIL, Phrase.gettext(
            "last verify {age} ago ({trigger}) found {n} problem(s): see `chikanemail verify`",
            age=ago, trigger=trigger, n=len(run.problems)), details)
    if age > timedelta(days=2 * every_days):
        return Finding(CheckStatus.WARN, Phrase.gettext(
            "last verify {age} ago ({trigger}) was ok, but that is more than twice "
            "verify_every_days ({days})", age=ago, trigger=trigger, days=Decimals(every_days)),
            details)
    return Finding(CheckStatus.OK, Phrase.gettext(
        "last verify {age} ago ({trigger}) ok: {n} blobs", age=ago, trigger=trigger,
        n=run.blobs_checked), details)


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
    if age is not None:
        summary = Phrase.gettext("{n} waiting, oldest {age}", n=count, age=format_age(age))
    else:
        summary = Phrase.gettext("{n} waiting", n=count)
    if failed:
        summary = summary.followed_by(Phrase.gettext("{n} given up", n=failed))
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
        return Finding(CheckStatus.WARN, Phrase.gettext(
            "{n} quarantined, {failed} because processing failed", n=total, failed=failed),
            details)
    return Finding(CheckStatus.OK, Phrase.gettext("{n} quarantined", n=total), details)


def check_free_space(inputs: HealthInputs) -> Finding:
    """Free space for new mail on the filesystem of the data directory (and of each store
    configured elsewhere): under [health] min_free_mb a warning, under fail_free_mb a
    failure (the receiver answers 451 when it runs out)."""
    storage, health = inputs.config.storage, inputs.config.health
    paths = [path for path in (storage.data_path, storage.blob_root, storage.derived_root)
             if path.is_dir()]
    if not paths:
        return Finding(CheckStatus.SKIPPED, Phrase.gettext("{path} does not exist",
                                                           path=str(storage.data_path)))
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
    where = Phrase.gettext("{free} MB free of {size} MB on the filesystem of {path}",
                           free=tightest["free_mb"], size=tightest["size_mb"],
                           path=tightest["path"])
    if tightest["free_mb"] < health.fail_free_mb:
        return Finding(CheckStatus.FAIL, Phrase.gettext(
            "free space: only {where} (fail below {limit} MB); new mail is refused when it "
            "runs out", where=where, limit=health.fail_free_mb), details)
    if tightest["free_mb"] < health.min_free_mb:
        return Finding(CheckStatus.WARN, Phrase.gettext(
            "free space low: {where} (warn below {limit} MB)", where=where,
            limit=health.min_free_mb), details)
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
    if age is None:
        return Finding(CheckStatus.OK, Phrase.ngettext(
            "{n} message waiting to be processed", "{n} messages waiting to be processed",
            count), details)
    summary = Phrase.ngettext(
        "{n} message waiting to be processed, oldest received {age} ago",
        "{n} messages waiting to be processed, oldest received {age} ago",
        count, age=format_age(age))
    if age > timedelta(minutes=limit_minutes):
        return Finding(CheckStatus.WARN, Phrase.gettext(
            "{waiting}: longer than {limit} min; is the worker running? (see the log)",
            waiting=summary, limit=Decimals(limit_minutes)), details)
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
            return Finding(CheckStatus.SKIPPED, Phrase.gettext(
                "no backup recorded; not checked ([health] backup_max_age_hours = 0)"),
                details)
        return Finding(CheckStatus.WARN,
                       Phrase.gettext("no backup recorded: run `chikanemail backup`"), details)
    if max_hours and age > timedelta(hours=max_hours):
        return Finding(CheckStatus.WARN, Phrase.gettext(
            "last backup {age} ago: older than backup_max_age_hours ({hours})",
            age=format_age(age), hours=Decimals(max_hours)), details)
    return Finding(CheckStatus.OK, Phrase.gettext("last backup {age} ago", age=format_age(age)),
                   details)
