"""`chikanemail retention`, `cases hold` and `cases unhold`: deleting what has been kept long
enough, and the legal holds that keep a case past that."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from intake.commands.cli.context import CliContext, cli_actor, open_database, pass_context
from intake.commands.cli.display import Reader, reader_of
from storage.blobstore import BlobStore
from storage.cases import CaseError
from storage.holds import HOLD_ALREADY, lift_hold, set_hold
from storage.models import utc_now
from storage.retention.deletion import apply_retention
from storage.retention.expiry import plan_retention
from storage.retention.items import KeptItem, RetentionItem, RetentionPlan, RetentionResult

_KEPT_TEXT = {
    "legal-hold": "on legal hold",
    "message-quarantined": "a message of it is quarantined",
    "message-in-progress": "a message of it is still being processed",
    "message-named-by-a-note-of-another-case": "a note of another case names its message",
}


@click.command("retention")
@click.option("--dry-run", is_flag=True,
              help="Only show what would be deleted and why; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@pass_context
def retention_command(context: CliContext, dry_run: bool, as_json: bool) -> None:
    """Delete closed cases past [retention] closed_case_days (unless on legal hold) and mail
    that opened no case past not_a_report_days, with their files; the audit log keeps a
    tombstone of each. Runs even when the daemon's scheduled retention is disabled."""
    config = context.config
    now = utc_now()
    database = open_database(context)
    try:
        if dry_run:
            report = plan_json(plan_retention(database, config.retention, now))
        else:
            report = result_json(apply_retention(
                database, BlobStore(config.storage.blob_root),
                BlobStore(config.storage.derived_root), config.retention, now,
                actor=cli_actor()))
    finally:
        database.dispose()
    if as_json:
        click.echo(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        for line in report_lines(report, reader_of(config)):
            click.echo(line)
    if report.get("failed"):
        sys.exit(1)


def plan_json(plan: RetentionPlan) -> dict[str, Any]:
    """What a run would delete and keep, for `--dry-run`."""
    return {"dry_run": True, "now": plan.now.isoformat(),
            "items": [item_json(item) for item in plan.items],
            "kept": [kept_json(kept) for kept in plan.kept],
            "pending_file_deletions": plan.pending_file_deletions}


def result_json(result: RetentionResult) -> dict[str, Any]:
    """What a run deleted and kept."""
    return {"dry_run": False, "now": result.now.isoformat(),
            "items": [item_json(item) for item in result.deleted],
            "kept": [kept_json(kept) for kept in result.kept],
            "failed": list(result.failed), "files_deleted": result.files_deleted,
            "files_kept": result.files_kept}


def item_json(item: RetentionItem) -> dict[str, Any]:
    """One deleted (or, in a dry run, deletable) item: the tombstone's details, and when
    its period ended."""
    return {"case": item.case_number, "due_at": item.due_at.isoformat(), **item.details()}


def kept_json(kept: KeptItem) -> dict[str, Any]:
    """Something past its period that is kept, and why."""
    return {"case": kept.case_number, "message_sha256": kept.message_sha256,
            "reason": kept.reason, "detail": kept.detail}


def report_lines(report: dict[str, Any], reader: Reader) -> list[str]:
    """The report as lines for people, times in the reader's zone and language."""
    items, kept = report["items"], report["kept"]
    verb = "would be deleted" if report["dry_run"] else "deleted"
    lines = [f"{'dry run: ' if report['dry_run'] else ''}{len(items)} {verb}, "
             f"{len(kept)} kept past their period"]
    for item in items:
        counts = ", ".join(f"{name} {value}" for name, value in item["counts"].items())
        deleted = sum(len(hashes) for hashes in item["deleted_blobs"].values())
        shared = sum(len(hashes) for hashes in item["kept_shared_blobs"].values())
        if item["case"] is not None:
            what = f"case {item['case']}: closed {reader.short_iso(item['closed_at'])}"
        else:
            what = (f"message {item['message_sha256s'][0][:16]}… (no case): received "
                    f"{reader.short_iso(item['received_at'])}")
        lines.append(f"  {what}, {item['retention_days']} days ended "
                     f"{reader.short_iso(item['due_at'])}; "
                     f"{counts}; files {deleted} to delete, {shared} kept (shared)")
    for one in kept:
        what = (f"case {one['case']}" if one["case"] is not None
                else f"message {one['message_sha256'][:16]}…")
        why = _KEPT_TEXT.get(one["reason"], one["reason"])
        lines.append(f"  kept {what}: {why}" + (f" ({one['detail']})" if one["detail"] else ""))
    if report["dry_run"]:
        if report["pending_file_deletions"]:
            lines.append(f"  {report['pending_file_deletions']} files left by an earlier run "
                         f"are still to be deleted")
    else:
        lines.append(f"  files deleted: {report['files_deleted']}"
                     + (f", kept because referenced again: {report['files_kept']}"
                        if report["files_kept"] else ""))
        lines.extend(f"  FAILED {label} (see the log; the next run tries again)"
                     for label in report["failed"])
    return lines


@click.command("hold")
@click.argument("number")
@click.option("--reason", required=True,
              help="Why the case must be kept (who asked, their reference); a short note.")
@pass_context
def hold_command(context: CliContext, number: str, reason: str) -> None:
    """Put a case on legal hold: retention keeps it, closed or not, until the hold is lifted."""
    database = open_database(context)
    try:
        result = set_hold(database, number, reason, cli_actor(), utc_now())
    except (CaseError, ValueError) as error:
        raise click.ClickException(str(error)) from None
    finally:
        database.dispose()
    if result.outcome == HOLD_ALREADY:
        click.echo(f"case {number} is already on legal hold for this reason")
    else:
        click.echo(f"case {number} on legal hold: {result.reason}")


@click.command("unhold")
@click.argument("number")
@pass_context
def unhold_command(context: CliContext, number: str) -> None:
    """Lift a case's legal hold: retention deletes it again once its period has passed."""
    database = open_database(context)
    try:
        result = lift_hold(database, number, cli_actor(), utc_now())
    except CaseError as error:
        raise click.ClickException(str(error)) from None
    finally:
        database.dispose()
    if result.outcome == HOLD_ALREADY:
        click.echo(f"case {number} is not on legal hold")
    else:
        click.echo(f"case {number}: legal hold lifted")
