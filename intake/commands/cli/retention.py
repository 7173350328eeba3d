"""`chikanemail retention`, `cases hold` and `cases unhold`: deleting what has been kept long
enough, and the legal holds that keep a case past that."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from intake.commands.cli.context import CliContext, cli_actor, open_database, pass_context
from intake.commands.cli.display import Reader, reader_of
from intake.commands.cli.words import case_error
from storage.blobstore import BlobStore
from storage.cases import CaseError
from storage.holds import HOLD_ALREADY, lift_hold, set_hold
from storage.i18n.catalogs import N_
from storage.models import utc_now
from storage.retention.deletion import apply_retention
from storage.retention.expiry import plan_retention
from storage.retention.items import KeptItem, RetentionItem, RetentionPlan, RetentionResult

# Why something past its period is kept, in words (msgids).
_KEPT_TEXT = {
    "legal-hold": N_("on legal hold"),
    "message-quarantined": N_("a message of it is kept out of cases"),
    "message-in-progress": N_("a message of it is still being processed"),
    "message-named-by-a-note-of-another-case": N_("a note of another case names its message"),
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
    """The report as lines for people, in the reader's language, times in their zone."""
    _ = reader.gettext
    items, kept = report["items"], report["kept"]
    said = {"deleted": len(items), "kept": len(kept)}
    lines = [(_("Dry run: %(deleted)s would be deleted, %(kept)s kept past their period")
              if report["dry_run"] else
              _("%(deleted)s deleted, %(kept)s kept past their period")) % said]
    for item in items:
        # The counts are per table of the database (its names, as --json has them).
        counts = ", ".join(f"{name} {value}" for name, value in item["counts"].items())
        deleted = sum(len(hashes) for hashes in item["deleted_blobs"].values())
        shared = sum(len(hashes) for hashes in item["kept_shared_blobs"].values())
        if item["case"] is not None:
            what = _("case %(number)s: closed %(closed)s") % {
                "number": item["case"], "closed": reader.short_iso(item["closed_at"])}
        else:
            what = _("message %(sha256)s… (no case): received %(received)s") % {
                "sha256": item["message_sha256s"][0][:16],
                "received": reader.short_iso(item["received_at"])}
        lines.append("  " + _("%(what)s, %(period)s ended %(due)s; %(counts)s; files: "
                              "%(deleted)s to delete, %(shared)s kept (shared)") % {
            "what": what, "due": reader.short_iso(item["due_at"]), "counts": counts,
            "period": reader.ngettext("{n} day", "{n} days", item["retention_days"]).format(
                n=item["retention_days"]),
            "deleted": deleted, "shared": shared})
    for one in kept:
        what = (_("case %(number)s") % {"number": one["case"]} if one["case"] is not None
                else _("message %(sha256)s…") % {"sha256": one["message_sha256"][:16]})
        why = reader.word(_KEPT_TEXT, one["reason"])
        lines.append("  " + _("kept %(what)s: %(why)s") % {"what": what, "why": why}
                     + (f" ({one['detail']})" if one["detail"] else ""))
    if report["dry_run"]:
        if report["pending_file_deletions"]:
            pending = report["pending_file_deletions"]
            lines.append("  " + reader.ngettext(
                "{n} file left by an earlier run is still to be deleted",
                "{n} files left by an earlier run are still to be deleted",
                pending).format(n=pending))
    else:
        lines.append("  " + _("files deleted: %(count)s") % {"count": report["files_deleted"]}
                     + (", " + _("kept because referenced again: %(count)s") % {
                         "count": report["files_kept"]} if report["files_kept"] else ""))
        lines.extend("  " + _("FAILED %(what)s (see the log; the next run tries again)") % {
            "what": label} for label in report["failed"])
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
        raise case_error(error, number, reader_of(context.config)) from None
    finally:
        database.dispose()
    _ = reader_of(context.config).gettext
    if result.outcome == HOLD_ALREADY:
        click.echo(_("Case %(number)s is already on legal hold for this reason") % {
            "number": number})
    else:
        click.echo(_("Case %(number)s on legal hold: %(reason)s") % {
            "number": number, "reason": result.reason})


@click.command("unhold")
@click.argument("number")
@pass_context
def unhold_command(context: CliContext, number: str) -> None:
    """Lift a case's legal hold: retention deletes it again once its period has passed."""
    database = open_database(context)
    try:
        result = lift_hold(database, number, cli_actor(), utc_now())
    except CaseError as error:
        raise case_error(error, number, reader_of(context.config)) from None
    finally:
        database.dispose()
    _ = reader_of(context.config).gettext
    if result.outcome == HOLD_ALREADY:
        click.echo(_("Case %(number)s is not on legal hold") % {"number": number})
    else:
        click.echo(_("Case %(number)s: legal hold lifted") % {"number": number})
