"""What `chikanemail cases show` prints: the case, its messages, evidence, notes and outbox."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.tree import Tree

from intake.message_report import message_report
from storage.blobstore import BlobStore
from storage.models import Case, CaseNote, Evidence, Message, OutboxMail


def case_summary(case: Case) -> dict[str, Any]:
    """The case's own fields as JSON-ready values (stable keys for scripts)."""
    return {
        "number": case.number,
        "status": case.status,
        "reporter": case.reporter,
        "reporter_name": case.reporter_name,
        "manager": case.manager,
        "deputy": case.deputy,
        "opened_at": case.opened_at.isoformat(),
        "closed_at": case.closed_at.isoformat() if case.closed_at else None,
        "close_reason": case.close_reason,
        "routing_source": case.routing_source,
        "routing_reason": case.routing_reason,
    }


def outbox_json(mail: OutboxMail) -> dict[str, Any]:
    """One outgoing mail's state (never its content)."""
    return {
        "id": mail.id,
        "case_id": mail.case_id,
        "kind": mail.kind,
        "to": list(mail.rcpt_tos),
        "state": mail.state,
        "message_id": mail.message_id,
        "subject": mail.subject,
        "attempts": mail.attempts,
        "last_error": mail.last_error,
        "created_at": mail.created_at.isoformat(),
        "next_attempt_at": mail.next_attempt_at.isoformat(),
        "sent_at": mail.sent_at.isoformat() if mail.sent_at else None,
    }


def case_report(case: Case, messages: list[tuple[Message, list[Evidence]]],
                notes: list[CaseNote], outbox: list[OutboxMail],
                derived: BlobStore) -> dict[str, Any]:
    """The whole case as a JSON-ready dict."""
    reports = [message_report(message, evidence, derived) for message, evidence in messages]
    report = case_summary(case)
    report["messages"] = [
        {"id": message.id, "sha256": message.sha256, "message_id": message.message_id,
         "subject": message.subject, "from": message.from_address, "kind": message.kind,
         "automatic": message.automatic, "received_at": message.received_at.isoformat()}
        for message, _ in messages
    ]
    report["evidence"] = [item for single in reports for item in single["evidence"]]
    first_original = next((single["original"] for single in reports if single["original"]),
                          None)
    report["original"] = first_original
    report["originals"] = [single["original"] for single in reports if single["original"]]
    report["notes"] = [
        {"author": note.author, "text": note.text, "created_at": note.created_at.isoformat(),
         "message_pk": note.message_pk}
        for note in notes
    ]
    report["outbox"] = [outbox_json(mail) for mail in outbox]
    return report


def render_case_report(report: dict[str, Any]) -> Tree:
    """A readable tree of the case for the terminal."""
    tree = Tree(f"case {report['number']}  {report['status']}  opened "
                f"{report['opened_at']}")
    tree.add(f"reporter: {report['reporter_name'] or ''} <{report['reporter']}>")
    tree.add(f"manager: {report['manager']}   deputy: {report['deputy'] or '-'}")
    tree.add(f"routing: {report['routing_source']} — {report['routing_reason']}")
    original = report["original"]
    if original:
        tree.add(f"forwarded original: from {original['from'] or '?'}, "
                 f"date {original['date'] or original['date_raw'] or '?'}, "
                 f"subject {original['subject'] or '?'}")
    messages = tree.add(f"messages ({len(report['messages'])})")
    for message in report["messages"]:
        messages.add(f"{message['kind']}  {message['received_at']}  {message['from'] or '?'}  "
                     f"{message['subject'] or ''}  {message['sha256'][:16]}…")
    evidence = tree.add(f"evidence ({len(report['evidence'])} items)")
    for item in report["evidence"]:
        evidence.add(f"[{item['path']}] {item['role']}  {item['filename'] or '(no name)'}  "
                     f"{item['size']} B  {item['sha256'][:16]}…")
    notes = tree.add(f"notes ({len(report['notes'])})")
    for note in report["notes"]:
        notes.add(f"{note['created_at']}  {note['author']}: {note['text'][:120]}")
    outbox = tree.add(f"outbox ({len(report['outbox'])})")
    for mail in report["outbox"]:
        outbox.add(f"{mail['kind']} to {', '.join(mail['to'])}: {mail['state']}"
                   f" (attempts {mail['attempts']})")
    return tree


def outbox_table(rows: list[dict[str, Any]]) -> Table:
    """The outbox as a table for people."""
    table = Table(title=f"{len(rows)} outgoing mails")
    for column in ("id", "case", "kind", "to", "state", "attempts", "next attempt", "error"):
        table.add_column(column)
    for row in rows:
        table.add_row(str(row["id"]), str(row["case_id"] or "-"), row["kind"],
                      ", ".join(row["to"]), row["state"], str(row["attempts"]),
                      row["next_attempt_at"], (row["last_error"] or "")[:60])
    return table
