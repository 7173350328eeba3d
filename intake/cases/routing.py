"""Who is told about a new case (the reporter's manager and deputy), and exactly why.

The order: the HR directory (the reporter's exact address) first, then the [[routing.rules]]
in order (the first match wins), then `routing.default_manager`. A directory line or rule
that names no deputy falls back to `routing.deputy`, and the decision's reason then ends in
"; deputy from routing.deputy". Rules and directory lines are numbered from 1.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parseaddr
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Literal

from intake.receive.addresses import domain_of, normalize_address
from storage.errors import ChikanemailError, SettingsError
from storage.settings import FORBID_UNKNOWN_KEYS

# The same test for "a mail address" as intake.service.config applies to the other tables.
_ADDRESS = re.compile(r"[^@\s<>]+@[^@\s<>]+")
# What a rule's glob may contain: no spaces, brackets of an address, quotes or list separators.
_GLOB = re.compile(r"[^\s<>,;\"']+")
_DELIMITERS = (";", ",", "\t")  # Danish Excel writes ";", others ","; "Unicode text" tabs
_SNIFF_LINES = 50
_DEPUTY_FALLBACK = "; deputy from routing.deputy"

RoutingSource = Literal["directory", "rule", "default"]


@dataclass(frozen=True)
class RoutingRule:
    """One [[routing.rules]] table: reporters whose address or domain match go to `manager`.

    `match` is a case-insensitive glob on the whole address when it contains "@"
    (`*@skole.kommune.dk`, `anna@kommune.dk`), otherwise on the domain (`skole.kommune.dk`,
    `*.kommune.dk`, which does not match kommune.dk itself).
    """

    __pydantic_config__ = FORBID_UNKNOWN_KEYS

    match: str
    manager: str
    deputy: str = ""


@dataclass(frozen=True)
class RoutingSettings:
    """Who is told about a new case: the [routing] table; rules are [[routing.rules]]."""

    __pydantic_config__ = FORBID_UNKNOWN_KEYS

    default_manager: str = "manager@localhost"
    # Told when a directory line or rule names no deputy, and with the default manager.
    deputy: str = ""
    rules: tuple[RoutingRule, ...] = ()
    # A CSV from the HR system: employee email, manager email, deputy email, department.
    directory: str = ""


@dataclass(frozen=True)
class RoutingDecision:
    """The manager (and deputy) told about a case, what decided it, and the line or rule."""

    manager: str
    deputy: str | None
    source: RoutingSource
    reason: str  # in English, as logs and old cases keep it
    # What storage.routing_words needs to say it in the reader's language.
    params: dict[str, object] = field(default_factory=dict, compare=False)


class DirectoryError(ChikanemailError):
    """A directory file that cannot be used, naming the file and (when known) the line."""

    def __init__(self, path: str, line: int | None, problem: str) -> None:
        where = f"{path}, line {line}" if line is not None else path
        super().__init__(f"{where}: {problem}")
        self.path = path
        self.line = line
        self.problem = problem


@dataclass(frozen=True)
class DirectoryEntry:
    """One employee line of the directory; `deputy` and `department` may be empty."""

    line: int
    employee: str  # normalized (case-folded), the lookup key
    manager: str
    deputy: str
    department: str


@dataclass(frozen=True)
class Directory:
    """The employees of a directory file by normalized address, each with its line number."""

    path: str
    entries: Mapping[str, DirectoryEntry]

    def lookup(self, address: str) -> DirectoryEntry | None:
        """The line for exactly this employee address (case-insensitive), if there is one."""
        return self.entries.get(_reporter_address(address))

    def __len__(self) -> int:
        return len(self.entries)


class Router:
    """Decides the manager and deputy for a reporter; holds no state beyond its settings."""

    def __init__(self, settings: RoutingSettings, directory: Directory | None = None) -> None:
        self.settings = settings
        self.directory = directory
        self._patterns = tuple(rule.match.strip().casefold() for rule in settings.rules)

    @classmethod
    def from_settings(cls, settings: RoutingSettings) -> Router:
        """A router with the configured directory file loaded (raises `DirectoryError`)."""
        directory = load_directory(Path(settings.directory)) if settings.directory else None
        return cls(settings, directory)

    def route(self, reporter: str) -> RoutingDecision:
        """The manager and deputy for the person who reported, and which line or rule said so."""
        address = _reporter_address(reporter)
        entry = self.directory.lookup(address) if self.directory is not None else None
        if entry is not None:
            department = f" ({entry.department})" if entry.department else ""
            return self._decision(entry.manager, entry.deputy, "directory",
                                  f"directory line {entry.line}{department}: {entry.employee}",
                                  {"line": entry.line, "department": entry.department,
                                   "employee": entry.employee})
        domain = domain_of(address)
        for number, (rule, pattern) in enumerate(zip(self.settings.rules, self._patterns,
                                                     strict=True), 1):
            if _matches(pattern, address, domain):
                return self._decision(rule.manager, rule.deputy, "rule",
                                      f"rule {number}: {rule.match}",
                                      {"rule": number, "match": rule.match})
        return RoutingDecision(self.settings.default_manager, self.settings.deputy or None,
                               "default", "default manager", {})

    def _decision(self, manager: str, deputy: str, source: RoutingSource,
                  reason: str, params: dict[str, object]) -> RoutingDecision:
        if deputy:
            return RoutingDecision(manager, deputy, source, reason, params)
        if self.settings.deputy:
            return RoutingDecision(manager, self.settings.deputy, source,
                                   reason + _DEPUTY_FALLBACK,
                                   {**params, "deputy_fallback": True})
        return RoutingDecision(manager, None, source, reason, params)


def _matches(pattern: str, address: str, domain: str | None) -> bool:
    if "@" in pattern:
        return fnmatchcase(address, pattern)
    return domain is not None and fnmatchcase(domain, pattern.rstrip("."))


def _reporter_address(text: str) -> str:
    """The bare, case-folded address in `anna@x.dk`, `<anna@x.dk>` or `Anna <anna@x.dk>`."""
    return normalize_address(_cell_address(text))


def _cell_address(text: str) -> str:
    """The address written in a cell or header value, without name or angle brackets."""
    text = text.strip()
    if "<" in text[1:]:
        _name, parsed = parseaddr(text)
        text = parsed or text
    return text.strip().strip("<>").strip()


def _is_address(text: str) -> bool:
    return bool(_ADDRESS.fullmatch(text))


def validate_routing(settings: RoutingSettings, source: str) -> None:
    """Raise `SettingsError` naming the first bad key; loads the directory to check it."""

    def fail(key: str, problem: str) -> None:
        raise SettingsError(source, key, problem)

    if not _is_address(settings.default_manager):
        fail("routing.default_manager", f"{settings.default_manager!r} is not a mail address")
    if settings.deputy and not _is_address(settings.deputy):
        fail("routing.deputy", f"{settings.deputy!r} is not a mail address")
    for number, rule in enumerate(settings.rules, 1):
        key = f"routing.rules[{number}]"
        problem = _glob_problem(rule.match)
        if problem:
            fail(f"{key}.match", problem)
        if not _is_address(rule.manager):
            fail(f"{key}.manager", f"{rule.manager!r} is not a mail address")
        if rule.deputy and not _is_address(rule.deputy):
            fail(f"{key}.deputy", f"{rule.deputy!r} is not a mail address")
    if settings.directory:
        try:
            load_directory(Path(settings.directory))
        except DirectoryError as error:
            fail("routing.directory", str(error))


def _glob_problem(match: str) -> str | None:
    pattern = match.strip()
    if not pattern:
        return "must not be empty"
    local, at, domain = pattern.partition("@")
    if (not _GLOB.fullmatch(pattern) or "@" in domain
            or (at and (not local or not domain))):
        return (f"{match!r} is not an address or domain glob (write *@skole.kommune.dk, "
                "anna@kommune.dk, skole.kommune.dk or *.kommune.dk)")
    return None


def load_directory(path: Path) -> Directory:
    """Read the employee directory CSV, or raise `DirectoryError` naming the file and line.

    Accepts UTF-8 with or without a BOM, UTF-16 with a BOM, and Windows-1252; ";", "," or
    tab between columns; an optional header row (a first row without any "@"); blank lines.
    Columns: employee, manager, deputy (may be empty), department (optional); more are
    ignored. A line without a valid employee and manager address, or an employee listed
    twice, is an error.
    """
    name = str(path)
    text = _decode(name, _read(name, path))
    delimiter = _sniff_delimiter(text)
    entries: dict[str, DirectoryEntry] = {}
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    previous_end = 0
    first_row = True
    try:
        for row in reader:
            line, previous_end = previous_end + 1, reader.line_num
            cells = [cell.strip() for cell in row]
            if not any(cells):
                continue
            if first_row:
                first_row = False
                if not any("@" in cell for cell in cells):
                    continue  # the header row
            entry = _entry(name, line, cells)
            earlier = entries.get(entry.employee)
            if earlier is not None:
                raise DirectoryError(name, line, f"employee {entry.employee} is listed twice "
                                     f"(line {earlier.line} and line {line})")
            entries[entry.employee] = entry
    except csv.Error as error:
        raise DirectoryError(name, reader.line_num, f"not readable as CSV ({error})") from None
    if not entries:
        raise DirectoryError(name, None, "lists no employees")
    return Directory(name, entries)


def _read(name: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DirectoryError(name, None, "no such file") from None
    except PermissionError:
        raise DirectoryError(name, None, "not readable by this user") from None
    except IsADirectoryError:
        raise DirectoryError(name, None, "is a folder, not a CSV file") from None
    except OSError as error:
        raise DirectoryError(name, None, f"cannot be read ({error.strerror})") from None


def _decode(name: str, data: bytes) -> str:
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise DirectoryError(name, None, "starts like UTF-16 but is not") from None
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252")  # what Excel on Danish Windows writes as "CSV"
    except UnicodeDecodeError:
        return data.decode("latin-1")  # the five bytes cp1252 leaves undefined


def _sniff_delimiter(text: str) -> str:
    """The delimiter that makes the most lines start with two addresses."""
    sample = [line for line in text.splitlines() if line.strip()][:_SNIFF_LINES]
    best, best_score = "", 0
    for delimiter in _DELIMITERS:
        try:
            rows = list(csv.reader(sample, delimiter=delimiter))
        except csv.Error:
            continue
        score = sum(1 for row in rows if len(row) >= 2
                    and _is_address(_cell_address(row[0])) and _is_address(_cell_address(row[1])))
        if score > best_score:
            best, best_score = delimiter, score
    if best:
        return best
    first = sample[0] if sample else ""
    return max(_DELIMITERS, key=first.count)  # no good line: the lines are errors anyway


def _entry(name: str, line: int, cells: list[str]) -> DirectoryEntry:
    cells = cells + [""] * (4 - len(cells))
    employee, manager, deputy = (_cell_address(cell) for cell in cells[:3])
    if not _is_address(employee):
        raise DirectoryError(name, line, f"employee {cells[0]!r} is not a mail address")
    if not manager:
        raise DirectoryError(name, line, f"no manager address for {employee}")
    if not _is_address(manager):
        raise DirectoryError(name, line, f"manager {cells[1]!r} is not a mail address")
    if deputy and not _is_address(deputy):
        raise DirectoryError(name, line, f"deputy {cells[2]!r} is not a mail address")
    return DirectoryEntry(line=line, employee=normalize_address(employee), manager=manager,
                          deputy=deputy, department=cells[3])
