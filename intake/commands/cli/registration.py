"""`chikanemail cases register|easy`: a case's registration (issue 22) and its EASY report.

`cases register NUMBER --relation parent …` saves the registration as the case's next
version (through `CaseActions.register`, as the web form does), starting from the newest
version or, before the first, from what the case knows; without field options it shows that
registration and saves nothing. `cases easy NUMBER --easy-number …` records that the work
injury was reported to Arbejdstilsynet through EASY.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

import click

from intake.commands.cli.context import CliContext, cli_actor, open_database, pass_context
from intake.commands.cli.display import Reader, console, new_table, reader_of
from intake.commands.cli.words import case_error
from notifier.case_actions import ALREADY, CASE_CLOSED, CaseActions
from notifier.clock import SystemClock
from storage.cases import CaseError, lock_case
from storage.i18n.catalogs import N_
from storage.registration_prefill import starting_fields
from storage.registration_words import field_lines, guidance_words, problem_words
from storage.registrations import (
    BAD_CHOICE,
    CHOICES,
    FieldProblem,
    RegistrationFields,
    latest_registration,
    read_fields,
    registration_versions,
)
from storage.time_text import long_date

# Problems found in the options: nothing saved.
PROBLEMS_EXIT = 2

# Each option and the field of RegistrationFields it sets, in the form's order.
OPTION_FIELDS: Mapping[str, str] = {
    "affected_employee": "affected_employee",
    "harasser": "harasser",
    "relation": "relation",
    "period_start": "period_start",
    "period_end": "period_end",
    "medium": "medium",
    "type": "harassment_type",
    "description": "description",
    "absence": "absence",
    "first_absence_day": "first_absence_day",
    "handler": "handler",
    "actions": "actions_taken",
}
OPTION_OF_FIELD: Mapping[str, str] = {
    field: "--" + option.replace("_", "-") for option, field in OPTION_FIELDS.items()}

_OUTCOMES = {"done": N_("done"), "already": N_("nothing to change (already so)")}


def _codes(field: str) -> str:
    return ", ".join(CHOICES[field])


def _iso(moment: datetime, reader: Reader) -> str:
    """A stored moment as ISO 8601 with the workplace's offset (naive means UTC)."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(reader.zone).isoformat()


@click.command("register")
@click.argument("number")
@click.option("--affected-employee", metavar="TEXT", help="The employee harassed.")
@click.option("--harasser", metavar="TEXT", help="Who harassed (name, address, profile).")
@click.option("--relation", metavar="CODE",
              help=f"The harasser's relation: {_codes('relation')}.")
@click.option("--period-start", metavar="DAY", help="First day of the harassment, YYYY-MM-DD.")
@click.option("--period-end", metavar="DAY",
              help="Last day, YYYY-MM-DD (empty: a single day).")
@click.option("--medium", metavar="CODE", help=f"Where it happened: {_codes('medium')}.")
@click.option("--type", "type", metavar="CODE",
              help=f"Type of harassment: {_codes('harassment_type')}.")
@click.option("--description", metavar="TEXT", help="A short description of the course.")
@click.option("--absence", metavar="CODE",
              help=f"Sick leave or other absence: {_codes('absence')}.")
@click.option("--first-absence-day", metavar="DAY",
              help="First day of absence, YYYY-MM-DD (starts the EASY deadline).")
@click.option("--handler", metavar="TEXT", help="Who is responsible for handling the case.")
@click.option("--actions", metavar="TEXT", help="The actions taken.")
@click.option("--show", is_flag=True, help="Show the registration; save nothing.")
@click.option("--versions", "list_versions", is_flag=True,
              help="List every saved version (version, author, time, SHA-256).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@pass_context
def cases_register_command(context: CliContext, /, number: str, show: bool,
                           list_versions: bool, as_json: bool, **options: str | None) -> None:
    """Register case NUMBER as the Danish guidance asks: save the given fields as its next
    version, over the newest version (or, before the first, what the case knows).

    Without field options, or with --show, print the registration and save nothing. A
    field that cannot be saved is named, nothing is saved, and the exit code is 2.
    """
    given = {OPTION_FIELDS[option]: value for option, value in options.items()
             if value is not None}
    if list_versions:
        _print_versions(context, number, as_json)
        return
    config = context.config
    reader = reader_of(config)
    database = open_database(context)
    try:
        with database.write() as session:
            case = lock_case(session, number)
            base = starting_fields(session, case, language=config.ui.language,
                                   zone=config.ui.zone)
            latest = latest_registration(session, case.id)
            current = latest.version if latest is not None else None
            if show or not given:
                _print_registration(number, current, False, base, [], as_json, reader)
                return
            fields, problems = read_fields(given, base=base)
            if problems:
                _print_registration(number, current, False, fields, problems, as_json, reader)
                sys.exit(PROBLEMS_EXIT)
            actions = CaseActions.for_plan(config.plan, config.ui.zone)
            result = actions.register(session, case, fields, actor=cli_actor(),
                                      now=SystemClock().now())
    except CaseError as error:
        raise case_error(error, number, reader) from None
    finally:
        database.dispose()
    _ = reader.gettext
    if result.outcome == CASE_CLOSED:
        raise click.ClickException(_("Case %(number)s is closed: its registration cannot "
                                     "change; nothing saved") % {"number": number})
    version = int(result.value) if result.value else None
    if as_json:
        click.echo(json.dumps(_registration_json(number, version, result.outcome != ALREADY,
                                                 fields, []), indent=2, ensure_ascii=False))
    elif result.outcome == ALREADY:
        click.echo(_("Case %(number)s: nothing changed; the registration is already "
                     "version %(version)s") % {"number": number, "version": version})
    else:
        click.echo(_("Case %(number)s: registration saved as version %(version)s") % {
            "number": number, "version": version})


def _registration_json(number: str, version: int | None, saved: bool,
                       fields: RegistrationFields,
                       problems: list[FieldProblem]) -> dict[str, Any]:
    return {"case": number, "version": version, "saved": saved, "fields": fields.as_json(),
            "problems": [{"field": problem.field, "problem": problem.problem}
                         for problem in problems]}


def problem_text(problem: FieldProblem, reader: Reader) -> str:
    """One problem of the options in the reader's words, naming the option."""
    option = OPTION_OF_FIELD.get(problem.field, problem.field)
    text = f"{option}: {problem_words(problem.problem, reader.language)}"
    if problem.problem == BAD_CHOICE and problem.field in CHOICES:
        text += f" ({_codes(problem.field)})"
    return text


def _print_registration(number: str, version: int | None, saved: bool,
                        fields: RegistrationFields, problems: list[FieldProblem],
                        as_json: bool, reader: Reader) -> None:
    """The registration (or what is wrong with the options) as JSON or text."""
    if as_json:
        click.echo(json.dumps(_registration_json(number, version, saved, fields, problems),
                              indent=2, ensure_ascii=False))
        return
    _ = reader.gettext
    if problems:
        for problem in problems:
            click.echo("chikanemail: " + problem_text(problem, reader), err=True)
        click.echo("chikanemail: " + _("Case %(number)s: nothing saved") % {"number": number},
                   err=True)
        return
    title = (_("Case %(number)s: registration, version %(version)s") % {
        "number": number, "version": version} if version is not None else
        _("Case %(number)s: not registered yet; filled in from what the case knows") % {
            "number": number})
    table = new_table(title, [(_("Field"), False), (_("Value"), False)])
    for name, label, value in field_lines(fields, reader.language):
        table.add_row(f"{label} ({OPTION_OF_FIELD[name]})", value or "-")
    out = console()
    out.print(table)
    out.print(guidance_words(fields, reader.language))


def _print_versions(context: CliContext, number: str, as_json: bool) -> None:
    """Every saved version of the case's registration, oldest first."""
    reader = reader_of(context.config)
    database = open_database(context)
    try:
        with database.read() as session:
            case = lock_case(session, number)
            rows = [(row.version, row.author, row.created_at, row.fields_sha256)
                    for row in registration_versions(session, case.id)]
    except CaseError as error:
        raise case_error(error, number, reader) from None
    finally:
        database.dispose()
    if as_json:
        click.echo(json.dumps({"case": number, "versions": [
            {"version": version, "author": author, "time": _iso(moment, reader),
             "fields_sha256": digest} for version, author, moment, digest in rows]},
            indent=2, ensure_ascii=False))
        return
    _ = reader.gettext
    title = reader.ngettext("Case {number}: {n} version of the registration",
                            "Case {number}: {n} versions of the registration",
                            len(rows)).format(number=number, n=len(rows))
    table = new_table(title, [(_("Version"), True), (_("Saved"), True), (_("By"), False),
                              ("SHA-256", False)])
    for version, author, moment, digest in rows:
        table.add_row(str(version), reader.short(moment), author, digest)
    console().print(table)


@click.command("easy")
@click.argument("number")
@click.option("--easy-number", required=True, metavar="TEXT",
              help="The case number EASY gave the report.")
@click.option("--reported-on", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              metavar="DAY", help="The day it was reported, YYYY-MM-DD (default: today).")
@pass_context
def cases_easy_command(context: CliContext, number: str, easy_number: str,
                       reported_on: datetime | None) -> None:
    """Record that case NUMBER's work injury was reported to Arbejdstilsynet through EASY."""
    config = context.config
    reader = reader_of(config)
    _ = reader.gettext
    now = SystemClock().now()
    day: date = (reported_on.date() if reported_on is not None
                 else now.astimezone(config.ui.zone).date())
    actions = CaseActions.for_plan(config.plan, config.ui.zone)
    database = open_database(context)
    try:
        with database.write() as session:
            result = actions.easy_reported(session, lock_case(session, number), easy_number,
                                           day, actor=cli_actor(), now=now)
    except CaseError as error:
        raise case_error(error, number, reader) from None
    except ValueError:
        raise click.ClickException(_("an EASY case number is 1 to 64 characters")) from None
    finally:
        database.dispose()
    if result.outcome == CASE_CLOSED:
        raise click.ClickException(_("Case %(number)s is closed: nothing recorded") % {
            "number": number})
    click.echo(_("Case %(number)s: reported through EASY on %(day)s, EASY case number "
                 "%(easy)s: %(outcome)s") % {
        "number": number, "day": long_date(day, reader.language), "easy": result.value,
        "outcome": reader.word(_OUTCOMES, result.outcome)})
