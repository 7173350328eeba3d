"""Defects: what a parser found wrong with a mail or one of its parts, and which parser.

`message.defects` and `evidence.defects` are JSON lists with one entry per defect name,
sorted by name: `{"defect": "CloseBoundaryNotFoundDefect", "parsers": ["mail-parser",
"stdlib"]}`. Rows written before the parsers were recorded hold plain names
(`"CloseBoundaryNotFoundDefect"`); `read_defects` reads both, the old ones with no parser.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.models import Evidence, Message

# Python's email package (modern policy) on the whole mail: the parse the evidence comes from.
STDLIB = "stdlib"
# mail-parser: its legacy (compat32) parse and its own checks of header values.
MAIL_PARSER = "mail-parser"
# This service's own checks on the stdlib's parse: a header given twice, a header too long to
# parse, a part limit reached, a bare container instead of a mail.
CHIKANEMAIL = "chikanemail"


@dataclass(frozen=True, order=True)
class Defect:
    """One defect as one parser reported it."""

    name: str
    parser: str


@dataclass(frozen=True)
class StoredDefect:
    """One stored defect and the parsers that reported it (none recorded on old rows)."""

    name: str
    parsers: tuple[str, ...] = ()


def defects_json(defects: Iterable[Defect]) -> list[dict[str, Any]]:
    """The stored form: one entry per defect name, with every parser that reported it."""
    parsers: dict[str, set[str]] = {}
    for defect in defects:
        parsers.setdefault(defect.name, set()).add(defect.parser)
    return [{"defect": name, "parsers": sorted(found)} for name, found in sorted(parsers.items())]


def read_defects(stored: object) -> list[StoredDefect]:
    """A `defects` column's value, whichever shape it was written in."""
    if not isinstance(stored, list):
        return []
    found: list[StoredDefect] = []
    for entry in stored:
        if isinstance(entry, dict) and isinstance(entry.get("defect"), str):
            parsers = entry.get("parsers")
            found.append(StoredDefect(entry["defect"], tuple(
                str(parser) for parser in parsers) if isinstance(parsers, list) else ()))
        else:  # a plain name, as rows were written before the parsers were recorded
            found.append(StoredDefect(str(entry)))
    return found


def defect_names(stored: object) -> list[str]:
    """The defect names in a `defects` column's value, whichever shape it was written in."""
    return [defect.name for defect in read_defects(stored)]


# Where defects were found: None for the message as a whole, else an evidence part's path.
DefectsByPlace = Mapping[str | None, Iterable[str]]


def defects_of_message(session: Session, message_pk: int) -> dict[str | None, set[str]]:
    """The defect names now stored for a message (None) and for each of its evidence parts."""
    message = session.get(Message, message_pk)
    places: dict[str | None, set[str]] = {
        None: set(defect_names(message.defects)) if message is not None else set()}
    for part_path, defects in session.execute(
            select(Evidence.part_path, Evidence.defects)
            .where(Evidence.message_pk == message_pk)):
        places[part_path] = set(defect_names(defects))
    return places


def defect_changes(before: DefectsByPlace,
                   after: DefectsByPlace) -> dict[str, list[dict[str, Any]]]:
    """Each defect name removed and added, per place (`part_path` None: the message itself).

    Compared by name: a row written before the parsers were recorded keeps a defect that is
    still found, whoever finds it now."""
    removed: list[dict[str, Any]] = []
    added: list[dict[str, Any]] = []
    for place in sorted(set(before) | set(after), key=lambda path: (path is not None, path or "")):
        old, new = set(before.get(place, ())), set(after.get(place, ()))
        removed.extend({"part_path": place, "defect": name} for name in sorted(old - new))
        added.extend({"part_path": place, "defect": name} for name in sorted(new - old))
    return {"defects_removed": removed, "defects_added": added}
