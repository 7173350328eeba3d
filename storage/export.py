"""A case's evidence bundle, checkable with standard tools by someone who does not trust us.

    originals/<sha256>.eml        every raw mail of the case, byte for byte
    evidence/<sha256>-<name>      every extracted part, byte for byte
    timestamps/<sha256>.tsr       RFC 3161 responses over a raw mail's SHA-256 (if any)
    timestamps/tsa-ca.pem         the time-stamp authority's CA certificate (if configured)
    custody.csv                   the case's audit events, each hash recomputable
    report.html                   a self-contained, readable report (storage.export_report)
    registration.html             every version of the case's registration, printable
    registration.json             the same versions as JSON with their SHA-256, and EASY
    README.txt                    what each file is and how to check it
    manifest.json                 every file above with SHA-256, size, role, parent, receipt
    SHA256SUMS                    `sha256sum -c SHA256SUMS` checks every other file

Blobs are streamed and re-hashed as they are copied, so a blob that no longer matches its
name stops the export instead of being passed on. The bundle is built in a temporary
sibling and renamed into place only when whole (a `.zip` is the same tree under one top
folder); the `exported` audit event is committed just before that rename, so no bundle
exists without its event. Files are 0600 and folders 0700: the bundle is personal data.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import shutil
import time
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from sqlalchemy import select

from storage import audit
from storage.blobstore import BlobStore, BlobStoreError, fsync_directory
from storage.cases import case_messages, case_notes, get_case
from storage.database import Database
from storage.errors import ChikanemailError
from storage.evidence import evidence_for_message
from storage.export_names import evidence_path
from storage.export_registration import REGISTRATION_HTML, REGISTRATION_JSON, registration_json
from storage.export_report import (
    LANGUAGES,
    TSA_CA_PATH,
    CaseRecords,
    ExportFacts,
    MessageRecords,
    envelope_of,
    render_readme,
    render_registration,
    render_report,
    utc_time,
)
from storage.local_time import local_time_with_zone
from storage.models import AuditEvent, CaseStep, Message, MessageTimestamp, utc_now
from storage.registrations import registration_versions
from storage.ui_settings import UiSettings

log = logging.getLogger("chikanemail.storage.export")

BUNDLE_FORMAT = "chikanemail-evidence-bundle"
BUNDLE_FORMAT_VERSION = 1
EXPORTED_ACTION = "exported"
FILE_MODE = 0o600
DIR_MODE = 0o700
_CHUNK = 1024 * 1024
MANIFEST = "manifest.json"
SUMS = "SHA256SUMS"


class ExportError(ChikanemailError):
    """The export cannot be made (no such case, the target exists, a blob is damaged, …)."""


@dataclass(frozen=True)
class ExportOptions:
    """Where the blobs are, who exports, with which program, and in which language."""

    blob_root: Path
    derived_root: Path
    language: str
    exporter: str
    tool_version: str
    tsa_ca_file: Path | None = None
    # The workplace's zone ([ui] timezone) the bundle's local times are written in.
    zone: tzinfo = field(default_factory=lambda: UiSettings().zone)


@dataclass(frozen=True)
class ExportResult:
    """The finished bundle: where it is, how many files it holds, its manifest's SHA-256."""

    path: Path
    files: int
    manifest_sha256: str


@dataclass(frozen=True)
class _FileFact:
    sha256: str
    size: int


class _BundleTree:
    """The bundle's folder while it is built: every file is created 0600, written once,
    fsync'd, and remembered with its SHA-256 and size."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files: dict[str, _FileFact] = {}

    def folder(self, relative: str) -> None:
        """Create a folder of the bundle (0700)."""
        target = self._target(relative)
        os.mkdir(target, DIR_MODE)
        os.chmod(target, DIR_MODE)

    def write_bytes(self, relative: str, data: bytes) -> _FileFact:
        """Write a small file of the bundle (a text the export made)."""
        return self.write_stream(relative, io.BytesIO(data))

    def write_stream(self, relative: str, source: BinaryIO,
                     expected_sha256: str | None = None) -> _FileFact:
        """Copy a stream into a new file; refuse it if its SHA-256 is not the expected one."""
        if relative in self.files:
            return self.files[relative]
        target = self._target(relative)
        digest = hashlib.sha256()
        size = 0
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE)
        with os.fdopen(fd, "wb") as sink:
            os.fchmod(sink.fileno(), FILE_MODE)
            while chunk := source.read(_CHUNK):
                digest.update(chunk)
                sink.write(chunk)
                size += len(chunk)
            sink.flush()
            os.fsync(sink.fileno())
        fact = _FileFact(digest.hexdigest(), size)
        if expected_sha256 is not None and fact.sha256 != expected_sha256:
            raise ExportError(f"stored blob {expected_sha256} no longer matches its name; "
                              "run `chikanemail verify` (nothing was exported)")
        self.files[relative] = fact
        return fact

    def copy_blob(self, store: BlobStore, sha256: str, relative: str) -> _FileFact:
        """Stream a blob into the bundle, checking it still matches its name."""
        if relative in self.files:
            return self.files[relative]
        try:
            with store.open(sha256) as source:
                return self.write_stream(relative, source, expected_sha256=sha256)
        except BlobStoreError as error:
            raise ExportError(f"{error} (nothing was exported)") from None

    def _target(self, relative: str) -> Path:
        """The path of a bundle member; a name that could leave the bundle is refused."""
        parts = PurePosixPath(relative).parts
        if not parts or any(part in ("", ".", "..") or "\\" in part or "\x00" in part
                            for part in parts) or PurePosixPath(relative).is_absolute():
            raise ExportError(f"refusing bundle member name {relative!r}")
        target = self.root.joinpath(*parts)
        if target.parent.resolve() != self.root.resolve().joinpath(*parts[:-1]):
            raise ExportError(f"refusing bundle member name {relative!r}")
        return target


def sha256sums(files: Iterable[tuple[str, str]]) -> str:
    """`sha256sum` output for (path, SHA-256) pairs: `<hex>  <path>`, sorted by path."""
    return "".join(f"{sha256}  {path}\n" for path, sha256 in sorted(files))


# -- reading -------------------------------------------------------------------


def read_case_records(database: Database, number: str) -> CaseRecords:
    """Everything the export needs about the case; ExportError if there is no such case.

    The audit head is read after the rows and only events up to it are taken, so the
    custody list covers everything exported and ends exactly at the head the manifest names.
    """
    case = get_case(database, number)
    if case is None:
        raise ExportError(f"no case {number}")
    messages = case_messages(database, case.id)
    with database.read() as session:
        steps = list(session.execute(
            select(CaseStep).where(CaseStep.case_id == case.id).order_by(CaseStep.position)
        ).scalars())
        stamps = {row.message_sha256: row for row in session.execute(
            select(MessageTimestamp).where(
                MessageTimestamp.message_sha256.in_([m.sha256 for m in messages]),
                MessageTimestamp.token_sha256.is_not(None))
        ).scalars()} if messages else {}
        registrations = registration_versions(session, case.id)
        session.expunge_all()
    items = [MessageRecords(message, evidence_for_message(database, message.id),
                            stamps.get(message.sha256)) for message in messages]
    notes = case_notes(database, case.id)
    head = audit.last_event(database)
    head_seq, head_hash = (head.seq, head.hash) if head else (0, audit.GENESIS_HASH)
    events = [event for event in audit.events_for_case(database, number)
              if event.seq <= head_seq]
    return CaseRecords(
        case=case,
        messages=items,
        notes=notes,
        steps=steps,
        events=events,
        head_seq=head_seq,
        head_hash=head_hash,
        registrations=registrations,
    )


# -- writing -------------------------------------------------------------------


def _received(message: Message, zone: tzinfo) -> dict[str, Any]:
    return {
        "message_sha256": message.sha256,
        "received_at": utc_time(message.received_at),
        "received_at_local": local_time_with_zone(message.received_at, zone),
        "envelope": envelope_of(message),
    }


def _sender(message: Message) -> dict[str, Any]:
    """Whether the mail's sender could be verified: `unverified` (it claimed a role on the
    case it could not prove; kept as evidence, it changed nothing) and how its From was
    checked (a sender check code)."""
    return {
        "unverified": bool(message.unverified),
        "sender_check": message.sender_check,
        "sender_authenticated": bool(message.sender_authenticated),
        "to_reply_address": message.reply_token_id is not None,
    }


def _write_originals(tree: _BundleTree, blobs: BlobStore, records: CaseRecords,
                     zone: tzinfo) -> list[dict[str, Any]]:
    entries = []
    for item in records.messages:
        message = item.message
        path = f"originals/{message.sha256}.eml"
        fact = tree.copy_blob(blobs, message.sha256, path)
        entries.append({"path": path, "sha256": fact.sha256, "size": fact.size,
                        "kind": "original", "role": "message", "message_kind": message.kind,
                        "parent": None, **_sender(message), **_received(message, zone)})
    return entries


def _write_evidence(tree: _BundleTree, blobs: BlobStore, records: CaseRecords,
                    zone: tzinfo) -> tuple[list[dict[str, Any]], dict[int, str]]:
    entries, paths = [], {}
    for item in records.messages:
        by_id = {row.id: row for row in item.evidence}
        for row in item.evidence:
            path = evidence_path(row)
            fact = tree.copy_blob(blobs, row.sha256, path)
            paths[row.id] = path
            parent = by_id.get(row.parent_id) if row.parent_id else None
            entries.append({
                "path": path, "sha256": fact.sha256, "size": fact.size, "kind": "evidence",
                "role": row.role, "part_path": row.part_path, "filename": row.filename,
                "declared_type": row.declared_type, "sniffed_type": row.sniffed_type,
                "parent": ({"kind": "part", "sha256": parent.sha256,
                            "part_path": parent.part_path} if parent else
                           {"kind": "message", "sha256": item.message.sha256,
                            "part_path": None}),
                "flags": list(row.flags or []),
                "image": row.image,
                "thumbnail_sha256": row.thumbnail_sha256,
                "ocr_status": row.ocr_status,
                "ocr_sha256": row.ocr_sha256,
                "original": row.original,
                **_received(item.message, zone),
            })
    return entries, paths


def _write_timestamps(tree: _BundleTree, derived: BlobStore, records: CaseRecords,
                      ca_file: Path | None,
                      zone: tzinfo) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    entries: list[dict[str, Any]] = []
    pairs: list[tuple[str, str]] = []
    stamped = [(item.message, item.timestamp, item.timestamp.token_sha256)
               for item in records.messages
               if item.timestamp is not None and item.timestamp.token_sha256]
    if not stamped and ca_file is None:
        return entries, pairs
    tree.folder("timestamps")
    for message, stamp, token_sha256 in stamped:
        path = f"timestamps/{message.sha256}.tsr"
        fact = tree.copy_blob(derived, token_sha256, path)
        pairs.append((message.sha256, path))
        entries.append({
            "path": path, "sha256": fact.sha256, "size": fact.size, "kind": "timestamp",
            "role": "rfc3161-response", "message_sha256": message.sha256,
            "parent": {"kind": "message", "sha256": message.sha256, "part_path": None},
            "tsa_url": stamp.tsa_url,
            "gen_time": utc_time(stamp.gen_time) if stamp.gen_time else None,
            "gen_time_local": (local_time_with_zone(stamp.gen_time, zone) if stamp.gen_time
                               else None),
        })
    if ca_file is not None:
        try:
            with open(ca_file, "rb") as source:
                fact = tree.write_stream(TSA_CA_PATH, source)
        except OSError as error:
            raise ExportError(f"cannot read timestamp.ca_file: {error.strerror}") from None
        entries.append({"path": TSA_CA_PATH, "sha256": fact.sha256, "size": fact.size,
                        "kind": "tsa-ca", "role": "certificate", "parent": None})
    return entries, pairs


_CUSTODY_COLUMNS = ("seq", "time_utc", "time_local", "actor", "action", "case",
                    "message_sha256", "details_json", "prev_hash", "hash", "canonical_json")


def custody_csv(events: Sequence[AuditEvent], zone: tzinfo) -> str:
    """The audit events as CSV, times also in the workplace's `zone`, with the canonical
    JSON each hash covers."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(_CUSTODY_COLUMNS)
    for event in events:
        writer.writerow([
            event.seq, utc_time(event.occurred_at), local_time_with_zone(event.occurred_at, zone),
            event.actor, event.action, event.case_number or "", event.message_sha256 or "",
            json.dumps(event.details, sort_keys=True, separators=(",", ":"),
                       ensure_ascii=False),
            event.prev_hash, event.hash, audit.event_json(event),
        ])
    return buffer.getvalue()


def _entry(tree: _BundleTree, path: str, kind: str, **extra: Any) -> dict[str, Any]:
    fact = tree.files[path]
    return {"path": path, "sha256": fact.sha256, "size": fact.size, "kind": kind,
            "role": kind, "parent": None, **extra}


def _messages_summary(records: CaseRecords, zone: tzinfo) -> list[dict[str, Any]]:
    summary = []
    for item in records.messages:
        message = item.message
        summary.append({
            "sha256": message.sha256, "path": f"originals/{message.sha256}.eml",
            "size": message.size, "kind": message.kind, "subject": message.subject,
            "message_id": message.message_id, "from_address": message.from_address,
            **_sender(message),
            **_received(message, zone),
            "forwarded_original": {
                "rule": message.original_rule, "from_name": message.original_from_name,
                "from_address": message.original_from_address,
                "date": message.original_date.isoformat() if message.original_date else None,
                "date_zone_assumed": bool(message.original_date_zone_assumed),
                "date_raw": message.original_date_raw, "subject": message.original_subject,
                "to": message.original_to, "message_id": message.original_message_id,
            } if message.original_rule else None,
            "items": len(item.evidence),
            "timestamp": (f"timestamps/{message.sha256}.tsr"
                          if item.timestamp is not None else None),
        })
    return summary


def _write_registration(tree: _BundleTree, records: CaseRecords,
                        facts: ExportFacts) -> list[dict[str, Any]]:
    """registration.json and registration.html (written also when there is none yet, so a
    reader sees that the case was not registered)."""
    data = registration_json(records.case, records.registrations, facts.zone)
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    tree.write_bytes(REGISTRATION_JSON, text.encode("utf-8"))
    tree.write_bytes(REGISTRATION_HTML,
                     render_registration(records, facts).encode("utf-8"))
    versions = len(records.registrations)
    return [_entry(tree, REGISTRATION_JSON, "registration", versions=versions),
            _entry(tree, REGISTRATION_HTML, "registration-report", versions=versions,
                   language=facts.language)]


def _build_tree(tree: _BundleTree, records: CaseRecords, options: ExportOptions,
                facts: ExportFacts) -> str:
    """Write every file of the bundle; return the manifest's SHA-256."""
    blobs, derived = BlobStore(options.blob_root), BlobStore(options.derived_root)
    tree.folder("originals")
    tree.folder("evidence")
    files = _write_originals(tree, blobs, records, facts.zone)
    evidence_entries, paths = _write_evidence(tree, blobs, records, facts.zone)
    files.extend(evidence_entries)
    stamp_entries, stamp_pairs = _write_timestamps(tree, derived, records, options.tsa_ca_file,
                                                   facts.zone)
    files.extend(stamp_entries)
    tree.write_bytes("custody.csv", custody_csv(records.events, facts.zone).encode("utf-8"))
    files.append(_entry(tree, "custody.csv", "custody", events=len(records.events)))
    report = render_report(records, facts, bundle_root=tree.root, evidence_paths=paths,
                           derived=derived)
    tree.write_bytes("report.html", report.encode("utf-8"))
    files.append(_entry(tree, "report.html", "report", language=facts.language))
    files.extend(_write_registration(tree, records, facts))
    tree.write_bytes("README.txt", render_readme(records, facts, stamp_pairs).encode("utf-8"))
    files.append(_entry(tree, "README.txt", "readme"))
    manifest = {
        "format": BUNDLE_FORMAT,
        "format_version": BUNDLE_FORMAT_VERSION,
        "case": records.case.number,
        "case_status": records.case.status,
        # The report's own From could not be vouched for: no receipt was sent to it.
        "sender_unverified": bool(records.case.sender_unverified),
        "exported_at": utc_time(facts.exported_at),
        "exported_at_local": local_time_with_zone(facts.exported_at, facts.zone),
        "exporter": facts.exporter,
        "tool": {"name": "chikanemail", "version": facts.tool_version},
        "language": facts.language,
        "audit_head": {"seq": records.head_seq, "hash": records.head_hash},
        "hash_algorithm": "sha256",
        "checksums": SUMS,
        "messages": _messages_summary(records, facts.zone),
        "files": files,
    }
    text = json.dumps(manifest, indent=2, ensure_ascii=False, sort_keys=False) + "\n"
    manifest_sha256 = tree.write_bytes(MANIFEST, text.encode("utf-8")).sha256
    sums = sha256sums((path, fact.sha256) for path, fact in tree.files.items())
    tree.write_bytes(SUMS, sums.encode("utf-8"))
    return manifest_sha256


# -- placing -------------------------------------------------------------------


def _is_zip(out: Path) -> bool:
    return out.suffix.lower() == ".zip"


def check_target(out: Path) -> None:
    """Refuse a target that exists (a zip) or holds anything (a folder)."""
    if not out.parent.is_dir():
        raise ExportError(f"folder {out.parent} does not exist")
    if out.is_symlink():
        raise ExportError(f"{out} is a symbolic link; choose another name")
    if _is_zip(out):
        if out.exists():
            raise ExportError(f"{out} already exists; choose another name")
        return
    if out.exists():
        if not out.is_dir():
            raise ExportError(f"{out} exists and is not a folder")
        if any(out.iterdir()):
            raise ExportError(f"folder {out} is not empty; choose an empty or new folder")


def _work_name(out: Path, tag: str) -> Path:
    return out.parent / f".{out.name}.{tag}.{os.getpid()}.{time.monotonic_ns()}.tmp"


def _write_zip(tree_root: Path, target: Path, top: str) -> None:
    """The tree as a zip under one top folder, files 0600 and folders 0700 in it."""
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    with os.fdopen(fd, "wb") as raw:
        with zipfile.ZipFile(raw, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for directory, folders, names in os.walk(tree_root):
                folders.sort()
                relative = Path(directory).relative_to(tree_root)
                archive.write(directory, (PurePosixPath(top) / relative.as_posix()).as_posix())
                for name in sorted(names):
                    archive.write(Path(directory) / name,
                                  (PurePosixPath(top) / relative.as_posix() / name).as_posix())
        raw.flush()
        os.fsync(raw.fileno())


def _place(work: Path, out: Path) -> None:
    """Rename the finished work into place without replacing anything but an empty folder."""
    if _is_zip(out):
        try:
            os.link(work, out)  # fails if the name was taken meanwhile; the work is removed
        except FileExistsError:  # by the caller
            raise ExportError(f"{out} already exists; choose another name") from None
        except OSError:  # a file system without hard links
            if out.exists():
                raise ExportError(f"{out} already exists; choose another name") from None
            os.rename(work, out)
    else:
        try:
            os.rename(work, out)  # replaces an empty folder, never a full one
        except OSError as error:
            raise ExportError(f"cannot put the bundle at {out}: {error.strerror}") from None
    fsync_directory(out.parent)


def export_case(database: Database, number: str, out: Path,
                options: ExportOptions) -> ExportResult:
    """Write case NUMBER's evidence bundle to `out` (a new or empty folder, or a new .zip)
    and record the `exported` audit event."""
    out = Path(os.path.abspath(out))
    if options.language not in LANGUAGES:
        raise ExportError(f"no export templates for language {options.language!r} (da, en)")
    check_target(out)
    records = read_case_records(database, number)
    facts = ExportFacts(exported_at=utc_now(), exporter=options.exporter,
                        tool_version=options.tool_version, language=options.language,
                        has_tsa_ca=options.tsa_ca_file is not None, zone=options.zone)
    tree_root = _work_name(out, "export")
    os.mkdir(tree_root, DIR_MODE)
    os.chmod(tree_root, DIR_MODE)
    zip_work: Path | None = None
    try:
        tree = _BundleTree(tree_root)
        manifest_sha256 = _build_tree(tree, records, options, facts)
        work = tree_root
        if _is_zip(out):
            zip_work = _work_name(out, "zip")
            _write_zip(tree_root, zip_work, out.stem or "bundle")
            work = zip_work
        audit.record_committed(database, EXPORTED_ACTION, actor=options.exporter,
                               case_number=number,
                               details={"bundle": out.name, "files": len(tree.files),
                                        "manifest_sha256": manifest_sha256})
        _place(work, out)
    finally:
        if tree_root.exists():  # a zip's tree, or a failed export
            shutil.rmtree(tree_root, ignore_errors=True)
        if zip_work is not None and zip_work.exists():
            zip_work.unlink()
    log.info("exported case %s: bundle %s, %d files, manifest sha256 %s",
             number, out.name, len(tree.files), manifest_sha256)
    return ExportResult(path=out, files=len(tree.files), manifest_sha256=manifest_sha256)
