"""What `chikanemail cases show` prints: the case, its messages, evidence, notes and outbox."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from intake.commands.cli.display import Reader, new_table
from intake.commands.cli.reports.message import (
    UNVERIFIED_MARK,
    message_report,
    original_date_text,
    sender_json,
    sender_label,
)
from notifier.durations import describe_due_rule, parse_duration
from storage.blobstore import BlobStore
from storage.case_links import PatternGroup, RelatedCase
from storage.cases import case_summary
from storage.models import Case, CaseNote, CaseStep, Evidence, Message, OutboxMail
from storage.note_words import note_text
from storage.plural import ngettext
from storage.routing_words import routing_words

# The language of notes and routing in this text output until the CLI's own words follow
# [ui] language (issue 19, item 2).
CLI_LANGUAGE = "en"


def plan_json(steps: Sequence[CaseStep], language: str) -> list[dict[str, Any]]:
    """The case's checklist: each step with its deadline and whether it is done."""
    return [
        {"number": step.position, "key": step.key,
         "title": step.title_en if language == "en" else step.title_da,
         "owner": step.owner, "due": step.due_at.isoformat() if step.due_at else None,
         "due_rule": (f"{step.due}{' working days' if step.working_days else ''} after "
                      f"{step.due_after}") if step.due else None,
         "due_duration": step.due, "working_days": bool(step.working_days),
         "due_after": step.due_after,
         "done_at": step.done_at.isoformat() if step.done_at else None,
         "done_by": step.done_by}
        for step in steps
    ]


def deadlines_json(steps: Sequence[CaseStep], now: datetime) -> list[dict[str, Any]]:
    """The deadlines still open, soonest first, each saying whether it has passed."""
    pending = sorted((step for step in steps if step.done_at is None and step.due_at),
                     key=lambda step: (step.due_at, step.position))
    return [{"step": step.position, "key": step.key,
             "due": step.due_at.isoformat() if step.due_at else None,
             "overdue": bool(step.due_at and step.due_at < now)} for step in pending]


def related_json(related: Sequence[RelatedCase]) -> list[dict[str, Any]]:
    """The cases linked to a case and why."""
    return [{"number": other.number, "manager": other.manager, "status": other.status,
             "reasons": [{"reason": reason, "detail": detail}
                         for reason, detail in other.reasons]}
            for other in related]


def pattern_groups_json(groups: Sequence[PatternGroup]) -> list[dict[str, Any]]:
    """Groups of related cases for `chikanemail patterns`."""
    return [{"cases": [{"number": case.number, "manager": case.manager,
                        "status": case.status, "opened_at": case.opened_at.isoformat()}
                       for case in group.cases],
             "reasons": [{"reason": reason, "detail": detail}
                         for reason, detail in group.reasons]}
            for group in groups]


def outbox_json(mail: OutboxMail, case_number: str | None = None) -> dict[str, Any]:
    """One outgoing mail's state (never its content); `case` is its case's number."""
    return {
        "id": mail.id,
        "case_id": mail.case_id,
        "case": case_number,
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
                notes: list[CaseNote], outbox: list[OutboxMail], derived: BlobStore, *,
                steps: Sequence[CaseStep] = (), related: Sequence[RelatedCase] = (),
                now: datetime | None = None) -> dict[str, Any]:
    """The whole case as a JSON-ready dict."""
    reports = [message_report(message, evidence, derived) for message, evidence in messages]
    report = case_summary(case)
    report["sender_unverified"] = bool(case.sender_unverified)
    report["routing_params"] = case.routing_params
    report["plan"] = plan_json(steps, case.language)
    report["deadlines"] = deadlines_json(steps, now or case.opened_at)
    report["related"] = related_json(related)
    report["messages"] = [
        {"id": message.id, "sha256": message.sha256, "message_id": message.message_id,
         "subject": message.subject, "from": message.from_address, "kind": message.kind,
         "automatic": message.automatic, "received_at": message.received_at.isoformat(),
         **sender_json(message)}
        for message, _ in messages
    ]
    report["evidence"] = [item for single in reports for item in single["evidence"]]
    first_original = next((single["original"] for single in reports if single["original"]),
                          None)
    report["original"] = first_original
    report["originals"] = [single["original"] for single in reports if single["original"]]
    report["notes"] = [
        {"author": note.author, "text": note.text, "created_at": note.created_at.isoformat(),
         "message_pk": note.message_pk, "code": note.code, "params": note.params}
        for note in notes
    ]
    report["outbox"] = [outbox_json(mail, case.number) for mail in outbox]
    return report


def _due_text(step: dict[str, Any], reader: Reader) -> str:
    """A step's deadline: the moment, or the rule in words while its event is unknown."""
    if step["due"]:
        return reader.short_iso(step["due"])
    if not step.get("due_duration"):
        return "-"
    duration = parse_duration(step["due_duration"], working=step["working_days"])
    return "waits: " + describe_due_rule(duration, step["due_after"], reader.language)


def _plan_table(report: dict[str, Any], reader: Reader) -> Table:
    table = new_table(None, [("#", True), ("step", False), ("owner", False), ("due", False),
                             ("done", False)])
    for step in report["plan"]:
        done = (f"{reader.short_iso(step['done_at'])} {step['done_by']}" if step["done_at"]
                else "open")
        table.add_row(str(step["number"]), f"{step['title']} [{step['key']}]", step["owner"],
                      _due_text(step, reader), done)
    return table


def render_case_report(report: dict[str, Any], reader: Reader) -> Tree:
    """A readable tree of the case for the terminal, times in the reader's zone and
    language; it fits 80 columns with no case number or time cut."""
    tree = Tree(f"case {report['number']}  {report['status']}  opened "
                f"{reader.long_iso(report['opened_at'])}")
    tree.add(f"reporter: {report['reporter_name'] or ''} <{report['reporter']}>")
    if report["sender_unverified"]:
        tree.add(Text("no receipt was sent: the reporter's sender address could not be "
                      "verified", style="bold red"))
    tree.add(f"manager: {report['manager']}   deputy: {report['deputy'] or '-'}")
    routing = routing_words(report["routing_source"], report.get("routing_params"),
                            report["routing_reason"], CLI_LANGUAGE)
    tree.add(f"routing: {routing}")
    acknowledged = (f"{reader.short_iso(report['acknowledged_at'])} by "
                    f"{report['acknowledged_by']}" if report["acknowledged_at"] else "not yet")
    tree.add(f"acknowledged: {acknowledged}   escalation level: {report['escalation_level']}")
    tree.add(f"relation: {report['relation']}   medium: {report['medium'] or '-'}   "
             f"first day of absence: {report['first_absence_day'] or '-'}")
    if report["witnesses"]:
        tree.add("witnesses: " + "; ".join(report["witnesses"]))
    steps = len(report["plan"])
    plan = tree.add(ngettext("plan ({n} step)", "plan ({n} steps)", steps).format(n=steps))
    if steps:
        plan.add(_plan_table(report, reader))
    count = len(report["deadlines"])
    deadlines = tree.add(ngettext("open deadlines ({n})", "open deadlines ({n})",
                                  count).format(n=count))
    for deadline in report["deadlines"]:
        deadlines.add(f"{reader.short_iso(deadline['due'])}  step {deadline['step']} "
                      f"({deadline['key']})" + ("  OVERDUE" if deadline["overdue"] else ""))
    related = tree.add(f"related cases ({len(report['related'])})")
    for other in report["related"]:
        why = ", ".join(f"{reason['reason']} {reason['detail']}" for reason in other["reasons"])
        related.add(f"{other['number']}  {other['status']}  manager {other['manager']}  {why}")
    original = report["original"]
    if original:
        tree.add(f"forwarded original: from {original['from'] or '?'}, "
                 f"subject {original['subject'] or '?'}").add(
                     f"date {original_date_text(original, reader)}")
    count = len(report["messages"])
    messages = tree.add(ngettext("{n} message", "{n} messages", count).format(n=count))
    for message in report["messages"]:
        node = messages.add(f"{reader.short_iso(message['received_at'])}  {message['kind']}  "
                            f"{message['from'] or '?'}  {message['subject'] or ''}")
        if message["unverified"]:
            node.add(Text(UNVERIFIED_MARK, style="bold red"))
        node.add(sender_label(message))
        node.add(f"sha256 {message['sha256']}")
    count = len(report["evidence"])
    images = sum(1 for item in report["evidence"] if item.get("image"))
    evidence = tree.add(
        ngettext("evidence ({n} item", "evidence ({n} items", count).format(n=count)
        + ngettext(", {n} image)", ", {n} images)", images).format(n=images))
    for item in report["evidence"]:
        evidence.add(f"[{item['path']}] {item['role']}  {item['filename'] or '(no name)'}  "
                     f"{item['size']} B  {item['sha256'][:16]}…")
    notes = tree.add(f"notes ({len(report['notes'])})")
    for note in report["notes"]:
        text = (note_text(note["code"], note["params"] or {}, CLI_LANGUAGE,
                          fallback=note["text"], zone=reader.zone)
                if note.get("code") else note["text"])
        notes.add(f"{reader.short_iso(note['created_at'])}  {note['author']}: {text[:120]}")
    outbox = tree.add(f"outbox ({len(report['outbox'])})")
    for mail in report["outbox"]:
        outbox.add(f"{mail['kind']} to {', '.join(mail['to'])}: {mail['state']}"
                   f" (attempts {mail['attempts']})")
    return tree


def outbox_table(rows: list[dict[str, Any]], reader: Reader, *, wide: bool = False) -> Table:
    """The outbox as a table for people: by default case number, kind, recipients, state
    and when it left (or is next tried); `wide` adds the id, attempts, times and error."""
    columns = [("case", True), ("kind", False), ("to", False), ("state", True),
               ("sent / next try", True)]
    if wide:
        columns += [("id", True), ("attempts", True), ("created", True), ("error", False)]
    title = ngettext("{n} outgoing mail", "{n} outgoing mails", len(rows)).format(n=len(rows))
    table = new_table(title, columns, wide=wide)
    for row in rows:
        when = row["sent_at"] if row["sent_at"] else row["next_attempt_at"]
        cells = [row["case"] or "-", row["kind"], ", ".join(row["to"]), row["state"],
                 reader.short_iso(when)]
        if wide:
            cells += [str(row["id"]), str(row["attempts"]), reader.short_iso(row["created_at"]),
                      row["last_error"] or ""]
        table.add_row(*cells)
    return table
