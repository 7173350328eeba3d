"""What `chikanemail cases show` prints: the case, its messages, evidence, notes and outbox."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from intake.commands.cli.display import Reader, new_table
from intake.commands.cli.reports.message import (
    message_report,
    original_date_text,
    sender_json,
    sender_label,
    unverified_mark,
)
from intake.commands.cli.words import (
    CASE_STATUSES,
    EVIDENCE_ROLES,
    OUTBOX_STATES,
    STEP_OWNERS,
)
from notifier.durations import describe_due_rule, parse_duration
from storage.audit_words import LINK_REASONS, MAIL_KINDS, MEDIUMS, MESSAGE_KINDS, RELATIONS
from storage.blobstore import BlobStore
from storage.case_links import PatternGroup, RelatedCase
from storage.cases import case_summary
from storage.models import (
    Case,
    CaseNote,
    CaseRegistration,
    CaseStep,
    Evidence,
    Message,
    OutboxMail,
)
from storage.note_words import note_text
from storage.registration_codes import ABSENCES, HARASSMENT_TYPES, MEDIA, RELATION_DETAILS
from storage.registration_words import easy_deadline
from storage.routing_words import routing_words
from storage.time_text import long_date


def plan_json(steps: Sequence[CaseStep], language: str) -> list[dict[str, Any]]:
    """The case's checklist: each step with its deadline and whether it is done."""
    return [
        {"number": step.position, "key": step.key,
         "title": step.title_en if language == "en" else step.title_da,
         "titles": {"da": step.title_da, "en": step.title_en},
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


def registration_json(registration: CaseRegistration | None) -> dict[str, Any] | None:
    """The newest saved registration: its version, who saved it when, and its codes."""
    if registration is None:
        return None
    fields = registration.fields
    return {"version": registration.version, "author": registration.author,
            "saved_at": _aware(registration.created_at).isoformat(),
            "fields_sha256": registration.fields_sha256,
            **{name: fields.get(name) for name in (
                "relation", "harassment_type", "medium", "absence")}}


def easy_json(case: Case) -> dict[str, Any]:
    """The EASY report: its deadline (14 days after the first day of absence) and what was
    recorded of it."""
    deadline = easy_deadline(case.first_absence_day)
    return {"deadline": deadline.isoformat() if deadline else None,
            "reported": case.easy_case_number is not None,
            "easy_case_number": case.easy_case_number,
            "reported_on": case.easy_reported_on.isoformat() if case.easy_reported_on else None,
            "recorded_at": (_aware(case.easy_recorded_at).isoformat()
                            if case.easy_recorded_at else None),
            "recorded_by": case.easy_recorded_by}


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def case_report(case: Case, messages: list[tuple[Message, list[Evidence]]],
                notes: list[CaseNote], outbox: list[OutboxMail], derived: BlobStore, *,
                steps: Sequence[CaseStep] = (), related: Sequence[RelatedCase] = (),
                now: datetime | None = None,
                registration: CaseRegistration | None = None) -> dict[str, Any]:
    """The whole case as a JSON-ready dict."""
    reports = [message_report(message, evidence, derived) for message, evidence in messages]
    report = case_summary(case)
    report["sender_unverified"] = bool(case.sender_unverified)
    report["routing_params"] = case.routing_params
    report["plan"] = plan_json(steps, case.language)
    report["deadlines"] = deadlines_json(steps, now or case.opened_at)
    report["related"] = related_json(related)
    report["registration"] = registration_json(registration)
    report["easy"] = easy_json(case)
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
    return reader.gettext("waits: %(rule)s") % {
        "rule": describe_due_rule(duration, step["due_after"], reader.language)}


def _step_title(step: dict[str, Any], reader: Reader) -> str:
    """The step's title in the reader's language (the case's own when it has none)."""
    return str(step.get("titles", {}).get(reader.language) or step["title"])


def _plan_table(report: dict[str, Any], reader: Reader) -> Table:
    _ = reader.gettext
    table = new_table(None, [("#", True), (_("Step"), False), (_("Owner"), False),
                             (_("Due"), False), (_("Done"), False)])
    for step in report["plan"]:
        done = (f"{reader.short_iso(step['done_at'])} {step['done_by']}" if step["done_at"]
                else reader.pgettext("step", "open"))
        # The number, not the key, names the step for `cases step` in the reader's words.
        table.add_row(str(step["number"]), _step_title(step, reader),
                      reader.word(STEP_OWNERS, step["owner"]), _due_text(step, reader), done)
    return table


def _first_absence_day(day: str | None, reader: Reader) -> str:
    return long_date(date.fromisoformat(day), reader.language) if day else "-"


def _people(tree: Tree, report: dict[str, Any], reader: Reader) -> None:
    """Who the case is about and who handles it, why, and what is known of it."""
    _ = reader.gettext
    tree.add(_("Reporter: %(reporter)s") % {
        "reporter": f"{report['reporter_name'] or ''} <{report['reporter']}>".strip()})
    if report["sender_unverified"]:
        tree.add(Text(_("No receipt was sent: the reporter's sender address could not be "
                        "verified"), style="bold red"))
    tree.add(_("Manager: %(manager)s   Deputy: %(deputy)s") % {
        "manager": report["manager"], "deputy": report["deputy"] or _("(none)")})
    routing = routing_words(report["routing_source"], report.get("routing_params"),
                            report["routing_reason"], reader.language)
    tree.add(_("Why this manager: %(routing)s") % {"routing": routing})
    acknowledged = (_("%(when)s by %(who)s") % {
        "when": reader.short_iso(report["acknowledged_at"]), "who": report["acknowledged_by"]}
        if report["acknowledged_at"] else _("not yet"))
    tree.add(_("Acknowledged: %(acknowledged)s   Escalation level: %(level)s") % {
        "acknowledged": acknowledged, "level": report["escalation_level"]})
    tree.add(_("Harasser: %(relation)s   Medium: %(medium)s") % {
        "relation": reader.word(RELATIONS, report["relation"]),
        "medium": reader.word(MEDIUMS, report["medium"])})
    tree.add(_("First day of absence: %(day)s") % {
        "day": _first_absence_day(report["first_absence_day"], reader)})
    if report["witnesses"]:
        tree.add(_("Witnesses: %(witnesses)s") % {"witnesses": "; ".join(report["witnesses"])})
    _registration(tree, report, reader)


def _registration(tree: Tree, report: dict[str, Any], reader: Reader) -> None:
    """The newest registration in words, and where the EASY report stands."""
    _ = reader.gettext
    registration = report.get("registration")
    if registration is None:
        tree.add(_("Registration: not yet (chikanemail cases register)"))
    else:
        node = tree.add(_("Registration: version %(version)s, saved %(when)s by %(who)s") % {
            "version": registration["version"], "who": registration["author"],
            "when": reader.short_iso(registration["saved_at"])})
        node.add(_("Type: %(type)s   Relation: %(relation)s") % {
            "type": reader.word(HARASSMENT_TYPES, registration["harassment_type"]),
            "relation": reader.word(RELATION_DETAILS, registration["relation"])})
        node.add(_("Medium: %(medium)s   Absence: %(absence)s") % {
            "medium": reader.word(MEDIA, registration["medium"]),
            "absence": reader.word(ABSENCES, registration["absence"])})
    easy = report.get("easy") or {}
    if easy.get("reported"):
        tree.add(_("EASY: reported %(day)s, EASY case number %(number)s") % {
            "day": _first_absence_day(easy["reported_on"], reader),
            "number": easy["easy_case_number"]})
    elif easy.get("deadline"):
        tree.add(_("EASY: not reported yet; due by %(day)s") % {
            "day": _first_absence_day(easy["deadline"], reader)})


def _plan(tree: Tree, report: dict[str, Any], reader: Reader) -> None:
    """The checklist, and the deadlines still open."""
    steps = len(report["plan"])
    plan = tree.add(reader.ngettext("Plan ({n} step)", "Plan ({n} steps)", steps).format(
        n=steps))
    if steps:
        plan.add(_plan_table(report, reader))
    count = len(report["deadlines"])
    deadlines = tree.add(reader.ngettext("Open deadlines ({n})", "Open deadlines ({n})",
                                         count).format(n=count))
    titles = {step["number"]: _step_title(step, reader) for step in report["plan"]}
    for deadline in report["deadlines"]:
        text = reader.gettext("%(due)s  step %(step)s: %(title)s") % {
            "due": reader.short_iso(deadline["due"]), "step": deadline["step"],
            "title": titles.get(deadline["step"], deadline["key"])}
        deadlines.add(text + ("  " + reader.gettext("OVERDUE") if deadline["overdue"] else ""))


def _related(tree: Tree, report: dict[str, Any], reader: Reader) -> None:
    count = len(report["related"])
    related = tree.add(reader.ngettext("Related cases ({n})", "Related cases ({n})",
                                       count).format(n=count))
    for other in report["related"]:
        why = ", ".join(f"{reader.word(LINK_REASONS, reason['reason'])} {reason['detail']}"
                        for reason in other["reasons"])
        related.add(reader.gettext("%(number)s  %(status)s  manager %(manager)s  %(why)s") % {
            "number": other["number"], "status": reader.word(CASE_STATUSES, other["status"]),
            "manager": other["manager"], "why": why})


def _mails_in(tree: Tree, report: dict[str, Any], reader: Reader) -> None:
    """The forwarded original, the case's messages and their evidence."""
    _ = reader.gettext
    original = report["original"]
    if original:
        tree.add(_("Forwarded original: from %(sender)s, subject %(subject)s") % {
            "sender": original["from"] or "?", "subject": original["subject"] or "?"}).add(
                _("Date: %(date)s") % {"date": original_date_text(original, reader)})
    count = len(report["messages"])
    messages = tree.add(reader.ngettext("{n} message", "{n} messages", count).format(n=count))
    for message in report["messages"]:
        node = messages.add(f"{reader.short_iso(message['received_at'])}  "
                            f"{reader.word(MESSAGE_KINDS, message['kind'])}  "
                            f"{message['from'] or '?'}  {message['subject'] or ''}")
        if message["unverified"]:
            node.add(Text(unverified_mark(reader), style="bold red"))
        node.add(sender_label(message, reader))
        node.add(f"SHA-256 {message['sha256']}")
    count = len(report["evidence"])
    images = sum(1 for item in report["evidence"] if item.get("image"))
    evidence = tree.add(_("Evidence: %(items)s, %(images)s") % {
        "items": reader.ngettext("{n} item", "{n} items", count).format(n=count),
        "images": reader.ngettext("{n} image", "{n} images", images).format(n=images)})
    for item in report["evidence"]:
        evidence.add(f"[{item['path']}] {reader.word(EVIDENCE_ROLES, item['role'])}  "
                     f"{item['filename'] or _('(no name)')}  {item['size']} B  "
                     f"{item['sha256'][:16]}…")


def _notes_and_outbox(tree: Tree, report: dict[str, Any], reader: Reader) -> None:
    count = len(report["notes"])
    notes = tree.add(reader.ngettext("Notes ({n})", "Notes ({n})", count).format(n=count))
    for note in report["notes"]:
        # A note the system wrote is read in the reader's language; one a person wrote, or
        # one stored before notes had codes, as it was written.
        text = (note_text(note["code"], note["params"] or {}, reader.language,
                          fallback=note["text"], zone=reader.zone)
                if note.get("code") else note["text"])
        notes.add(f"{reader.short_iso(note['created_at'])}  {note['author']}: {text[:120]}")
    count = len(report["outbox"])
    outbox = tree.add(reader.ngettext("Outgoing mail ({n})", "Outgoing mail ({n})",
                                      count).format(n=count))
    for mail in report["outbox"]:
        outbox.add(reader.gettext("%(kind)s to %(to)s: %(state)s (attempts: %(attempts)s)") % {
            "kind": reader.word(MAIL_KINDS, mail["kind"]), "to": ", ".join(mail["to"]),
            "state": reader.word(OUTBOX_STATES, mail["state"]), "attempts": mail["attempts"]})


def render_case_report(report: dict[str, Any], reader: Reader) -> Tree:
    """A readable tree of the case for the terminal, in the reader's language, times in
    their zone; it fits 80 columns with no case number or time cut."""
    tree = Tree(reader.gettext("Case %(number)s  %(status)s  opened %(opened)s") % {
        "number": report["number"], "status": reader.word(CASE_STATUSES, report["status"]),
        "opened": reader.long_iso(report["opened_at"])})
    _people(tree, report, reader)
    _plan(tree, report, reader)
    _related(tree, report, reader)
    _mails_in(tree, report, reader)
    _notes_and_outbox(tree, report, reader)
    return tree


def outbox_table(rows: list[dict[str, Any]], reader: Reader, *, wide: bool = False) -> Table:
    """The outbox as a table for people: by default case number, kind, recipients, state
    and when it left (or is next tried); `wide` adds the id, attempts, times and error."""
    _ = reader.gettext
    columns = [(_("Case"), True), (_("Kind"), False), (_("To"), False), (_("State"), True),
               (_("Sent / next try"), True)]
    if wide:
        columns += [(_("Id"), True), (_("Attempts"), True), (_("Created"), True),
                    (_("Error"), False)]
    title = reader.ngettext("{n} outgoing mail", "{n} outgoing mails",
                            len(rows)).format(n=len(rows))
    table = new_table(title, columns, wide=wide)
    for row in rows:
        when = row["sent_at"] if row["sent_at"] else row["next_attempt_at"]
        cells = [row["case"] or "-", reader.word(MAIL_KINDS, row["kind"]), ", ".join(row["to"]),
                 reader.word(OUTBOX_STATES, row["state"]), reader.short_iso(when)]
        if wide:
            cells += [str(row["id"]), str(row["attempts"]), reader.short_iso(row["created_at"]),
                      row["last_error"] or ""]
        table.add_row(*cells)
    return table
