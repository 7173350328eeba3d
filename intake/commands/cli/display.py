"""How the CLI's text output reads: words and times in the reader's language (`[ui] language`,
from the gettext catalogs) and the workplace's zone, and tables that fit the terminal (80
columns by default), with `--wide` for every column.

JSON output never passes through here: it keeps ISO 8601 with the offset and its codes. What
stays English: log lines, `--json`, option names and `--help` (click builds the help before
the configuration is read), and configuration errors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from intake.service.config import AppConfig

F = TypeVar("F", bound=Callable[..., Any])
# However many columns `--wide` asks for, a table is measured within this width.
_WIDEST = 1000


@dataclass(frozen=True)
class Reader:
    """Who reads the output: their language and the workplace's zone, and what "now" is
    (a date of this year is written without its year)."""

    language: str
    zone: tzinfo
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def gettext(self, message: str) -> str:
        """The text in the reader's language (the English source text when it has none)."""
        from storage.i18n.catalogs import translations

        return translations(self.language).gettext(message)

    def ngettext(self, singular: str, plural: str, count: int) -> str:
        """The singular or plural text for this count, in the reader's language."""
        from storage.i18n.catalogs import translations

        return translations(self.language).ngettext(singular, plural, count)

    def pgettext(self, context: str, message: str) -> str:
        """The text in the reader's language where the same English reads differently in
        another context."""
        from storage.i18n.catalogs import translations

        return translations(self.language).pgettext(context, message)

    def word(self, words: Mapping[str, str], code: str | None) -> str:
        """A code read through a table of msgids (storage's `*_words` tables, or this
        package's `words`); an unknown code as it is, none as "-"."""
        if not code:
            return "-"
        msgid = words.get(code)
        return self.gettext(msgid) if msgid is not None else code

    def long(self, moment: datetime | None) -> str:
        """The moment in full: "tirsdag 8. december 2026 kl. 08.00 (CET)"; "-" for none."""
        from storage.time_text import long_datetime  # Babel, only when text is printed

        return long_datetime(moment, self.language, self.zone) if moment else "-"

    def short(self, moment: datetime | None) -> str:
        """The moment for a table cell: "06.12 19:24" (year added when not this year)."""
        from storage.time_text import short_datetime

        return short_datetime(moment, self.language, self.zone, now=self.now) if moment else "-"

    def short_iso(self, text: str | None) -> str:
        """`short` of an ISO 8601 text (as the JSON reports carry them)."""
        return self.short(datetime.fromisoformat(text)) if text else "-"

    def long_iso(self, text: str | None) -> str:
        """`long` of an ISO 8601 text (as the JSON reports carry them)."""
        return self.long(datetime.fromisoformat(text)) if text else "-"


def reader_of(config: AppConfig) -> Reader:
    """The reader of this installation's CLI: the workplace's language and `[ui] timezone`."""
    return Reader(language=config.ui.language, zone=config.ui.zone)


def wide_option(command: F) -> F:
    """The `--wide` flag: every column, however wide the table gets."""
    return click.option("--wide", is_flag=True,
                        help="Show every column (the default fits 80 columns).")(command)


def console() -> Console:
    """The console text output goes to: the terminal's width, or 80 columns when the
    output is not a terminal and COLUMNS does not say otherwise. Square brackets are text,
    never markup: a subject such as "[Sag 2026-0042]" is printed as it is."""
    from rich.console import Console

    return Console(markup=False)


def new_table(title: str | None, columns: Sequence[tuple[str, bool]], *,
              wide: bool = False) -> Table:
    """A table with these (header, keep-on-one-line) columns. Cells that must stay whole
    (case numbers, dates, counts) are kept on one line; the others wrap rather than being
    cut short, and a `--wide` table may grow past the terminal."""
    from rich import box
    from rich.table import Table

    # A narrow table keeps its title on one line where the terminal allows (80 columns).
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False,
                  title_justify="left", min_width=min(len(title), 80) if title else None)
    for header, whole in columns:
        table.add_column(header, no_wrap=whole or wide, overflow="fold",
                         min_width=len(header) if whole else None)
    return table


def print_table(table: Table, *, wide: bool = False) -> None:
    """Print the table; a `--wide` one at its natural width, never cut to the terminal."""
    from rich.measure import Measurement

    out = console()
    if wide:
        natural = Measurement.get(out, out.options.update(max_width=_WIDEST), table).maximum
        out.width = max(out.width, natural)
    out.print(table)
