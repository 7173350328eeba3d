"""`chikanemail verify`: re-hash every blob and walk the audit chain, now.
`chikanemail health`: the checks of `intake.service.health`, each ok, warn or fail, printed
with their findings in the reader's language (`--json` keeps the English summaries).
"""

from __future__ import annotations

import json
import sys

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

from intake.commands.cli.context import CliContext, cli_actor, open_database, pass_context
from intake.commands.cli.display import Reader, reader_of
from intake.service.health import is_healthy, run_health_checks
from intake.service.health.findings import CheckResult, CheckStatus
from intake.service.health.words import HEALTH_CHECK_NAMES
from intake.service.logs import configure_logging
from storage.audit_words import label
from storage.blobstore import BlobStore
from storage.i18n.catalogs import N_
from storage.verify import VerifyProgress, VerifyResult, verify

# -- verify ----------------------------------------------------------------------------

# What is wrong with a blob (a ProblemKind), in words (msgids); the code follows in
# parentheses, and the detail is the program's own (English) text, as the log has it.
PROBLEM_WORDS = {
    "mismatch": N_("content does not match its name"),
    "size-mismatch": N_("size differs from its row"),
    "missing": N_("missing"),
    "stray": N_("no row names it"),
    "unexpected": N_("not a blob"),
    "mode": N_("not read-only"),
    "unreadable": N_("cannot be read"),
}


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
        for line in verify_report(result, reader_of(config)):
            click.echo(line)
    if not result.ok:
        sys.exit(1)


def verify_report(result: VerifyResult, reader: Reader) -> list[str]:
    """The run as lines of text in the reader's language: totals, each problem, the first
    broken audit link, verdict."""
    _ = reader.gettext
    lines = [_("Checked %(blobs)s (%(size)s MiB) and %(events)s in %(seconds)s s") % {
        "blobs": reader.ngettext("{n} blob", "{n} blobs", result.blobs).format(n=result.blobs),
        "size": f"{result.bytes / (1024 * 1024):.1f}",
        "events": reader.ngettext("{n} audit event", "{n} audit events",
                                  result.chain.events).format(n=result.chain.events),
        "seconds": f"{result.seconds:.1f}"}]
    for problem in result.problems:
        kind = problem.kind.value
        words = reader.word(PROBLEM_WORDS, kind)
        said = kind if words == kind else f"{words} ({kind})"
        lines.append(f"{said} {problem.path}: {problem.detail}")
    broken = result.chain.broken
    if broken is not None:
        lines.append(_("Audit chain broken at event %(seq)s (%(action)s): %(reason)s") % {
            "seq": broken.seq,
            "action": label(broken.action, reader.language) if broken.action else "?",
            "reason": broken.reason})
    count = result.problem_count
    lines.append(_("OK") if result.ok else reader.ngettext(
        "FAILED: {n} problem", "FAILED: {n} problems", count).format(n=count))
    return lines


# -- health ----------------------------------------------------------------------------


def health_lines(results: list[CheckResult], healthy: bool, reader: Reader) -> list[str]:
    """The checks as a person reads them, one line each: the status and the check by their
    codes (as `--json` and the README name them, so that `grep ^fail` finds a failure), then
    the check and its finding in the reader's language; last the verdict, which starts with
    `healthy` or `UNHEALTHY` in every language."""
    width = max(len(result.name) for result in results)
    lines = [f"{result.finding.status.value:<8} {result.name:<{width}}  "
             f"{reader.word(HEALTH_CHECK_NAMES, result.name)}: "
             f"{result.finding.in_language(reader.language)}"
             for result in results]
    warnings = sum(result.finding.status == CheckStatus.WARN for result in results)
    verdict = (reader.gettext("Healthy") if healthy
               else reader.gettext("Unhealthy: a check failed"))
    if warnings:
        verdict += " (" + reader.ngettext("%(count)s warning", "%(count)s warnings",
                                          warnings) % {"count": warnings} + ")"
    lines.append(f"{'healthy' if healthy else 'UNHEALTHY'}  {verdict}")
    return lines


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
        for line in health_lines(results, healthy, reader_of(context.config)):
            click.echo(line)
    if not healthy:
        sys.exit(1)
