"""`chikanemail cases …`: the group, and `cases list`, a page of cases newest first.

`cases list` is what managers and admins run most, so this module imports little: the other
case commands live in `intake.commands.cli.case_actions` (and the registration's,
`cases register|easy`, in `intake.commands.cli.registration`) and are loaded only when they
run.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import click

from intake.commands.cli.context import CliContext, LazyGroup, open_database, pass_context
from intake.commands.cli.display import wide_option
from storage.cases import case_summary_of_values, case_summary_rows, count_cases

DEFAULT_PAGE = 50  # cases `cases list` shows without --limit or --all


@click.group("cases", cls=LazyGroup, lazy_subcommands={
    "show": "intake.commands.cli.case_actions:cases_show_command",
    "note": "intake.commands.cli.case_actions:cases_note_command",
    "assign": "intake.commands.cli.case_actions:cases_assign_command",
    "ack": "intake.commands.cli.case_actions:cases_ack_command",
    "step": "intake.commands.cli.case_actions:cases_step_command",
    "absence": "intake.commands.cli.case_actions:cases_absence_command",
    "relation": "intake.commands.cli.case_actions:cases_relation_command",
    "medium": "intake.commands.cli.case_actions:cases_medium_command",
    "witness": "intake.commands.cli.case_actions:cases_witness_command",
    "close": "intake.commands.cli.case_actions:cases_close_command",
    "register": "intake.commands.cli.registration:cases_register_command",
    "easy": "intake.commands.cli.registration:cases_easy_command",
    "hold": "intake.commands.cli.retention:hold_command",
    "unhold": "intake.commands.cli.retention:unhold_command",
})
def cases_group() -> None:
    """Cases: one per report."""


@cases_group.command("list")
@click.option("--json", "as_json", is_flag=True,
              help="Print a JSON array (one case a line) instead of a table.")
@click.option("--status", type=click.Choice(["open", "closed"]), default=None)
@click.option("--limit", type=click.IntRange(min=1), default=DEFAULT_PAGE, show_default=True,
              help="The newest N cases only.")
@click.option("--all", "every", is_flag=True, help="Every case (overrides --limit).")
@wide_option
@pass_context
def cases_list_command(context: CliContext, as_json: bool, status: str | None, limit: int,
                       every: bool, wide: bool) -> None:
    """List cases, newest first, a page at a time."""
    database = open_database(context)
    try:
        if as_json:
            _print_cases_json(case_summary_rows(database, status=status,
                                                limit=None if every else limit))
            return
        total = count_cases(database, status=status)
        cases = [case_summary_of_values(row) for row in
                 case_summary_rows(database, status=status, limit=None if every else limit)]
    finally:
        database.dispose()
    from intake.commands.cli.display import new_table, print_table, reader_of
    from intake.commands.cli.words import CASE_STATUSES

    reader = reader_of(context.config)
    _ = reader.gettext
    ngettext = reader.ngettext
    counted = (ngettext("{n} open case", "{n} open cases", total) if status == "open" else
               ngettext("{n} closed case", "{n} closed cases", total) if status == "closed"
               else ngettext("{n} case", "{n} cases", total)).format(n=total)
    title = (_("%(cases)s (newest first)") % {"cases": counted} if len(cases) == total else
             _("%(shown)s of %(cases)s (newest first; --all or --limit N for more)") % {
                 "shown": len(cases), "cases": counted})
    columns = [(_("Number"), True), (_("Status"), True), (_("Opened"), True),
               (_("Reporter"), False)]
    if wide:
        columns += [(_("Manager"), False), (_("Deputy"), False), (_("Acknowledged"), True),
                    (_("Closed"), True)]
    table = new_table(title, columns, wide=wide)
    for case in cases:
        cells = [case["number"], reader.word(CASE_STATUSES, case["status"]),
                 reader.short_iso(case["opened_at"]), case["reporter"]]
        if wide:
            cells += [case["manager"], case["deputy"] or "-",
                      reader.short_iso(case["acknowledged_at"]),
                      reader.short_iso(case["closed_at"])]
        table.add_row(*cells)
    print_table(table, wide=wide)


def _print_cases_json(rows: Iterator[Sequence[Any]]) -> None:
    """A JSON array of case summaries, one case a line, written as the rows arrive so that
    listing every case holds one batch of rows, not all of them."""
    encode = json.JSONEncoder(ensure_ascii=False).encode
    out = sys.stdout  # buffered; click.echo would flush after every case
    separator = "[\n"
    for row in rows:
        out.write(separator + encode(case_summary_of_values(row)))
        separator = ",\n"
    out.write("[]\n" if separator == "[\n" else "\n]\n")
    out.flush()
