"""`chikanemail cases show|note|assign|ack|step|absence|relation|medium|witness|close` and
`chikanemail patterns`: one case, what is done on it, and the patterns across cases. (The
registration's `cases register|easy` are in `intake.commands.cli.registration`.)"""

from __future__ import annotations

import json
import sys
from datetime import date
from typing import Any

import click

from intake.commands.cli.context import CliContext, cli_actor, open_database, pass_context
from intake.commands.cli.display import (
    Reader,
    console,
    new_table,
    print_table,
    reader_of,
    wide_option,
)
from intake.commands.cli.reports.case import case_report, pattern_groups_json, render_case_report
from intake.commands.cli.words import case_error
from intake.commands.reply import declaration
from intake.commands.reply.absence import Absence
from intake.commands.reply.acknowledge import Acknowledge
from intake.commands.reply.close import Close
from intake.commands.reply.command import Command
from intake.commands.reply.medium import Medium as MediumCommand
from intake.commands.reply.relation import Relation
from intake.commands.reply.step_done import StepDone
from intake.commands.reply.witness import Witness
from notifier.case_actions import ActionResult, CaseActions
from notifier.clock import SystemClock
from notifier.plan.checklist import case_steps
from storage import audit
from storage.audit_words import LINK_REASONS, MEDIUMS, RELATIONS
from storage.blobstore import BlobStore
from storage.case_links import pattern_groups, related_cases
from storage.cases import (
    CaseError,
    add_note_by_number,
    case_messages,
    case_notes,
    get_case,
    lock_case,
)
from storage.evidence import evidence_for_message
from storage.i18n.catalogs import N_
from storage.models import HarasserRelation, Medium
from storage.outbox_rows import outbox_rows_for_case
from storage.registrations import latest_registration
from storage.time_text import long_date

# What came of a case action, in words (msgids).
_OUTCOME_TEXT = {
    "done": N_("done"),
    "already": N_("nothing to change (already so)"),
    "no-such-step": N_("no such step"),
    "case-closed": N_("the case is closed; nothing changed"),
    "needs-registration": N_(
        "the case is not registered yet; save its registration first "
        "(chikanemail cases register)"),
}


@click.command("show")
@click.argument("number")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a tree.")
@pass_context
def cases_show_command(context: CliContext, number: str, as_json: bool) -> None:
    """One case: people, routing, the registration and its EASY report, the plan's
    checklist and deadlines, relation, absence, related cases, messages, evidence,
    originals, notes, outbox."""
    config = context.config
    database = open_database(context)
    try:
        case = get_case(database, number)
        if case is None:
            click.echo("chikanemail: " + reader_of(config).gettext("no case %(number)s") % {
                "number": number}, err=True)
            sys.exit(1)
        messages = [(message, evidence_for_message(database, message.id))
                    for message in case_messages(database, case.id)]
        notes = case_notes(database, case.id)
        outbox = outbox_rows_for_case(database, case.id)
        with database.read() as session:
            steps = case_steps(session, case.id)
            related = related_cases(session, case.id)
            registration = latest_registration(session, case.id)
            session.expunge_all()
        audit.record_committed(database, "viewed", actor=cli_actor(), case_number=number,
                               details={"what": "case"})
    finally:
        database.dispose()
    report = case_report(case, messages, notes, outbox, BlobStore(config.storage.derived_root),
                         steps=steps, related=related, now=SystemClock().now(),
                         registration=registration)
    if as_json:
        click.echo(json.dumps(report, indent=2, ensure_ascii=False))
        return
    console().print(render_case_report(report, reader_of(config)))


@click.command("note")
@click.argument("number")
@click.argument("text")
@pass_context
def cases_note_command(context: CliContext, number: str, text: str) -> None:
    """Add a note to a case."""
    database = open_database(context)
    try:
        add_note_by_number(database, number, author=cli_actor(), text=text)
    except CaseError as error:
        raise case_error(error, number, reader_of(context.config)) from None
    finally:
        database.dispose()
    click.echo(reader_of(context.config).gettext("Note added to case %(number)s") % {
        "number": number})


def _mail_address(context: click.Context, param: click.Parameter,
                  value: str | None) -> str | None:
    """Click callback: the value as a case-folded mail address, or a usage error naming
    the parameter."""
    if value is None:
        return None
    from notifier.assignment import mail_address

    try:
        return mail_address(value)
    except ValueError as error:
        raise click.BadParameter(str(error), ctx=context, param=param) from None


@click.command("assign")
@click.argument("number")
@click.argument("address", callback=_mail_address)
@click.option("--deputy", callback=_mail_address, metavar="ADDRESS",
              help="Make ADDRESS the case's deputy.")
@click.option("--no-deputy", is_flag=True, help="Leave the case without a deputy.")
@pass_context
def cases_assign_command(context: CliContext, number: str, address: str, deputy: str | None,
                         no_deputy: bool) -> None:
    """Make ADDRESS the case's responsible manager; tell the new and the previous manager.

    Without --deputy or --no-deputy the deputy stays. Whoever leaves the case can no
    longer act on it through the reply addresses of earlier mails.
    """
    if deputy is not None and no_deputy:
        raise click.UsageError("--deputy and --no-deputy cannot be used together")
    from intake.service.daemon import composer_for
    from notifier.assignment import KEEP, reassign

    config = context.config
    composer = composer_for(config)
    database = open_database(context)
    try:
        with database.write() as session:
            result = reassign(session, lock_case(session, number), manager=address,
                              deputy=None if no_deputy else (deputy or KEEP),
                              actor=cli_actor(), now=SystemClock().now(), composer=composer,
                              plan=config.plan, notify=config.notify)
    except CaseError as error:
        raise case_error(error, number, reader_of(context.config)) from None
    finally:
        database.dispose()
    _say_assigned(number, result, reader_of(config))


def _say_assigned(number: str, result: Any, reader: Reader) -> None:
    """What a reassignment did, in words; a closed case is an error."""
    from notifier.assignment import ALREADY, CASE_CLOSED

    _ = reader.gettext
    if result.outcome == CASE_CLOSED:
        raise click.ClickException(_("Case %(number)s is closed: it cannot be assigned; "
                                     "nothing changed") % {"number": number})
    none = _("(none)")
    if result.outcome == ALREADY:
        click.echo(_("Case %(number)s: nothing to change: %(manager)s is already the manager, "
                     "deputy %(deputy)s") % {"number": number, "manager": result.manager,
                                             "deputy": result.deputy or none})
        return
    if result.manager_changed:
        said = _("Case %(number)s assigned to %(manager)s (was %(previous)s)") % {
            "number": number, "manager": result.manager, "previous": result.previous_manager}
    else:
        said = _("Case %(number)s: the manager stays %(manager)s") % {
            "number": number, "manager": result.manager}
    deputy_said = (_("deputy %(deputy)s") % {"deputy": result.deputy} if result.deputy
                   else _("no deputy"))
    if result.deputy_changed:
        deputy_said += " " + _("(was %(previous)s)") % {
            "previous": result.previous_deputy or none}
    mails = []
    if result.notified:
        mails.append(_("notification queued to %(to)s") % {"to": ", ".join(result.notified)})
    if result.told:
        mails.append(_("%(who)s told") % {"who": ", ".join(result.told)})
    if result.report_missing:
        mails.append(_("no notification: the case has no report message"))
    click.echo(f"{said}; {deputy_said}" + (f"; {', '.join(mails)}" if mails else ""))


def _act(context: CliContext, number: str, command: Command) -> ActionResult:
    """Run a reply command's action on a case in its own transaction, as the CLI user, now."""
    act = declaration(command).act
    if act is None:
        raise TypeError(f"{command!r} changes nothing in a case")
    actions = CaseActions.for_plan(context.config.plan, context.config.ui.zone)
    database = open_database(context)
    try:
        with database.write() as session:
            result = act(actions, session, lock_case(session, number), command,
                         actor=cli_actor(), now=SystemClock().now())
    except CaseError as error:
        raise case_error(error, number, reader_of(context.config)) from None
    finally:
        database.dispose()
    if result.outcome in ("no-such-step", "case-closed", "needs-registration"):
        reader = reader_of(context.config)
        raise click.ClickException(reader.gettext("Case %(number)s: %(outcome)s") % {
            "number": number, "outcome": reader.gettext(_OUTCOME_TEXT[result.outcome])})
    return result


def _say(number: str, what: str, result: ActionResult, reader: Reader) -> None:
    """Confirm an action on a case: what was asked, and what came of it."""
    click.echo(reader.gettext("Case %(number)s: %(what)s: %(outcome)s") % {
        "number": number, "what": what,
        "outcome": reader.word(_OUTCOME_TEXT, result.outcome)})


@click.command("ack")
@click.argument("number")
@pass_context
def cases_ack_command(context: CliContext, number: str) -> None:
    """Acknowledge a case for its manager (stops escalation)."""
    result = _act(context, number, Acknowledge())
    reader = reader_of(context.config)
    _say(number, reader.gettext("acknowledged"), result, reader)


@click.command("step")
@click.argument("number")
@click.argument("step")
@click.argument("state", type=click.Choice(["done"]), default="done")
@pass_context
def cases_step_command(context: CliContext, number: str, step: str, state: str) -> None:
    """Mark STEP (its number in the checklist, or its key) done."""
    result = _act(context, number, StepDone(step))
    reader = reader_of(context.config)
    _say(number, reader.gettext("step %(step)s") % {"step": result.value}, result, reader)


@click.command("absence")
@click.argument("number")
@click.argument("day", type=click.DateTime(formats=["%Y-%m-%d"]))
@pass_context
def cases_absence_command(context: CliContext, number: str, day: object) -> None:
    """Record the employee's first day of absence (YYYY-MM-DD); starts the EASY deadline."""
    first_day: date = day.date()  # type: ignore[attr-defined]  # click gives a datetime
    result = _act(context, number, Absence(first_day))
    reader = reader_of(context.config)
    _say(number, reader.gettext("first day of absence %(day)s") % {
        "day": long_date(first_day, reader.language)}, result, reader)


@click.command("relation")
@click.argument("number")
@click.argument("relation", type=click.Choice([item.value for item in HarasserRelation]))
@pass_context
def cases_relation_command(context: CliContext, number: str, relation: str) -> None:
    """Record who the harasser is: external (violence), colleague (krænkende handlinger)."""
    result = _act(context, number, Relation(relation))
    reader = reader_of(context.config)
    _say(number, reader.gettext("harasser: %(relation)s") % {
        "relation": reader.word(RELATIONS, relation)}, result, reader)


@click.command("medium")
@click.argument("number")
@click.argument("medium", type=click.Choice([item.value for item in Medium]))
@pass_context
def cases_medium_command(context: CliContext, number: str, medium: str) -> None:
    """Record where the harassment happened."""
    result = _act(context, number, MediumCommand(medium))
    reader = reader_of(context.config)
    _say(number, reader.gettext("medium: %(medium)s") % {
        "medium": reader.word(MEDIUMS, medium)}, result, reader)


@click.command("witness")
@click.argument("number")
@click.argument("witness")
@pass_context
def cases_witness_command(context: CliContext, number: str, witness: str) -> None:
    """Add a witness (name, role, how to reach them)."""
    result = _act(context, number, Witness(witness))
    reader = reader_of(context.config)
    _say(number, reader.gettext("witness added"), result, reader)


@click.command("close")
@click.argument("number")
@click.option("--reason", required=True, help="Why the case can close.")
@pass_context
def cases_close_command(context: CliContext, number: str, reason: str) -> None:
    """Close a case."""
    result = _act(context, number, Close(reason))
    reader = reader_of(context.config)
    if result.outcome == "already":
        raise click.ClickException(reader.gettext("Case %(number)s is already closed") % {
            "number": number})
    click.echo(reader.gettext("Case %(number)s closed") % {"number": number})


@click.command("patterns")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@wide_option
@pass_context
def patterns_command(context: CliContext, as_json: bool, wide: bool) -> None:
    """Groups of cases that share a sender, a sender domain or a screenshot."""
    database = open_database(context)
    try:
        groups = pattern_groups_json(pattern_groups(database))
    finally:
        database.dispose()
    if as_json:
        click.echo(json.dumps(groups, indent=2, ensure_ascii=False))
        return
    reader = reader_of(context.config)
    _ = reader.gettext
    title = reader.ngettext("{n} group of related cases", "{n} groups of related cases",
                            len(groups)).format(n=len(groups))
    columns = [(_("Cases"), False), (_("Open"), True), (_("Why"), False)]
    if wide:
        columns.append((_("Managers"), False))
    table = new_table(title, columns, wide=wide)
    for group in groups:
        cells = [", ".join(case["number"] for case in group["cases"]),
                 str(sum(1 for case in group["cases"] if case["status"] == "open")),
                 "; ".join(f"{reader.word(LINK_REASONS, reason['reason'])}: "
                           f"{reason['detail']}" for reason in group["reasons"])]
        if wide:
            cells.append(", ".join(sorted({case["manager"] for case in group["cases"]})))
        table.add_row(*cells)
    print_table(table, wide=wide)
