"""`chikanemail audit show NUMBER`: a case's custody trail from the hash-chained audit log."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from intake.cli_context import CliContext, cli_actor, open_database, pass_context
from storage import audit
from storage.local_time import local_time_with_zone
from storage.models import AuditEvent

# How much of an event's details the table shows (the JSON output has all of them).
_DETAILS_WIDTH = 80


@click.group("audit")
def audit_group() -> None:
    """The audit log: who did what to which message or case, and when (hash-chained)."""


def event_json(event: AuditEvent) -> dict[str, Any]:
    """One event as JSON: its columns, its local time, and the canonical text it hashes."""
    return {
        "seq": event.seq,
        "time_utc": audit.format_utc(event.occurred_at),
        "time_local": local_time_with_zone(event.occurred_at),
        "actor": event.actor,
        "action": event.action,
        "case": event.case_number,
        "message": event.message_sha256,
        "details": event.details,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
        "canonical_json": audit.event_json(event),
    }


@audit_group.command("show")
@click.argument("number")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_context
def audit_show_command(context: CliContext, number: str, as_json: bool) -> None:
    """The audit events of case NUMBER and of its messages, oldest first. Looking is itself
    recorded (action `viewed`)."""
    database = open_database(context)
    try:
        events = audit.events_for_case(database, number)
        if not events:
            raise click.ClickException(f"no audit events for case {number}")
        audit.record_committed(database, "viewed", actor=cli_actor(), case_number=number,
                               details={"what": "audit"})
    finally:
        database.dispose()
    if as_json:
        click.echo(json.dumps([event_json(event) for event in events], indent=2,
                              ensure_ascii=False))
        return
    table = Table(title=f"case {number}: {len(events)} audit events (--json for every field "
                        "and the full hashes)")
    table.add_column("seq", justify="right")
    table.add_column("time (local)", no_wrap=True)
    for column in ("actor", "action", "message", "details", "hash"):
        table.add_column(column)
    for event in events:
        table.add_row(str(event.seq), local_time_with_zone(event.occurred_at), event.actor,
                      event.action, (event.message_sha256 or "")[:12],
                      _short_details(event.details), event.hash[:12])
    Console().print(table)


def _short_details(details: dict[str, Any]) -> str:
    """The details as `key=value` pairs, long values and the whole line cut short."""
    pairs = []
    for key, value in sorted(details.items()):
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        pairs.append(f"{key}={text if len(text) <= 24 else text[:23] + '…'}")
    line = " ".join(pairs)
    return line if len(line) <= _DETAILS_WIDTH else line[:_DETAILS_WIDTH - 1] + "…"
