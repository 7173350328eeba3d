"""`chikanemail backup --to DIR` and `chikanemail restore --from DIR`: a consistent
snapshot while the daemon runs, and a working installation from one (`storage.backup`)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from intake.commands.cli.context import (
    CONFIG_ERROR_EXIT,
    CliContext,
    open_database,
    pass_context,
)
from intake.commands.cli.display import Reader, reader_of
from intake.commands.cli.verify import verify_report
from intake.service.config import AppConfig, load_config, load_config_copy
from storage.backup.installation_files import (
    PlacedFile,
    check_file_copies,
    config_copy,
    put_files_back,
)
from storage.backup.manifest import BackupError, FileEntry, Manifest, read_manifest
from storage.backup.restore import restore_snapshot
from storage.backup.snapshot import take_snapshot
from storage.backup_record import record_backup
from storage.blobstore import BlobStore
from storage.database import Database
from storage.errors import SettingsError
from storage.plural import ngettext
from storage.verify import ProgressCallback, VerifyProgress, verify


def config_files(context: CliContext, config: AppConfig) -> list[tuple[str, Path]]:
    """The files the installation needs besides its data: the config file itself and the
    files its keys name (TLS certificate and key, passwords, CA files, OAuth secrets)."""
    files: list[tuple[str, Path]] = []
    if context.config_path is not None:
        files.append(("config", context.config_path.resolve()))
    named = [("smtp.tls_cert", config.smtp.tls_cert), ("smtp.tls_key", config.smtp.tls_key),
             ("notify.password_file", config.notify.password_file),
             ("timestamp.ca_file", config.timestamp.ca_file)]
    for index, mailbox in enumerate(config.imap):
        for key in ("password_file", "oauth_client_secret_file", "oauth_refresh_token_file",
                    "ca_file"):
            named.append((f"imap[{index}].{key}", getattr(mailbox, key)))
    files.extend((key, Path(value)) for key, value in named if value)
    return files


@contextmanager
def progress_bar(label: str) -> Iterator[ProgressCallback]:
    """A progress bar on stderr when it is a terminal; the callback that moves it."""
    console = Console(stderr=True)
    with Progress(TextColumn(label), BarColumn(), DownloadColumn(binary_units=True),
                  TransferSpeedColumn(), console=console,
                  disable=not console.is_terminal) as progress:
        task = progress.add_task(label, total=None)

        def show(done: VerifyProgress) -> None:
            progress.update(task, total=done.bytes_total, completed=done.bytes_done)

        yield show


def _fail(what: str, error: BackupError) -> None:
    click.echo(f"chikanemail: {what} failed: {error}", err=True)
    sys.exit(1)


def head_line(manifest: Manifest, reader: Reader) -> str:
    """When the backup was taken (in the reader's zone and language) and its audit head."""
    return (f"backup of {reader.long(manifest.created_at)}, audit head "
            f"seq {manifest.audit_seq} hash {manifest.audit_hash}")


@click.command("backup")
@click.option("--to", "folder", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="Folder for the snapshot; blobs already there are not copied again.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@pass_context
def backup_command(context: CliContext, folder: Path, as_json: bool) -> None:
    """Write a consistent snapshot while the daemon runs: the database, every blob its rows
    name (re-hashed as copied), the config and the files it names, and a manifest with the
    audit head, written last."""
    config = context.config
    files = config_files(context, config)
    database = open_database(context)
    try:
        with progress_bar("backup") as show:
            result = take_snapshot(database, BlobStore(config.storage.blob_root),
                                   BlobStore(config.storage.derived_root), folder,
                                   files=files, on_progress=show)
    except BackupError as error:
        _fail("backup", error)
        return
    finally:
        database.dispose()
    manifest = result.manifest
    # For `chikanemail health`, which warns when backups stop.
    record_backup(config.storage.data_path, manifest.created_at, manifest.audit_seq)
    report: dict[str, Any] = {
        "folder": str(result.folder), "created_at": manifest.created_at.isoformat(),
        "audit_seq": manifest.audit_seq, "audit_hash": manifest.audit_hash,
        "blobs": len(manifest.blobs), "copied": result.copied,
        "already_there": result.already_there, "bytes_copied": result.bytes_copied,
        "files": [item.key for item in manifest.files], "seconds": round(result.seconds, 3)}
    if as_json:
        click.echo(json.dumps(report, indent=2, ensure_ascii=False))
        return
    click.echo(head_line(manifest, reader_of(config)))
    blobs = len(manifest.blobs)
    click.echo(ngettext("{n} blob", "{n} blobs", blobs).format(n=blobs)
               + f": {result.copied} copied "
               f"({result.bytes_copied / (1024 * 1024):.1f} MiB), {result.already_there} "
               f"already there; {len(manifest.files)} other files; {result.seconds:.1f} s")
    click.echo(f"snapshot complete in {result.folder}")


@click.command("restore")
@click.option("--from", "folder", required=True,
              type=click.Path(path_type=Path, file_okay=False, exists=True),
              help="A snapshot folder written by `chikanemail backup`.")
@click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False),
              help="New, empty data directory (default: [storage] data_dir).")
@click.option("--database-url",
              help="An empty database to restore into (default: [storage] database_url, "
                   "or the SQLite file in the data directory).")
@click.option("--files/--no-files", "put_files", default=True, show_default=True,
              help="Put the config and the files it names back where they were, when "
                   "nothing is there yet (never overwritten).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@pass_context
def restore_command(context: CliContext, folder: Path, data_dir: Path | None,
                    database_url: str | None, put_files: bool, as_json: bool) -> None:
    """Rebuild a working installation from a snapshot into an empty data directory and
    database: blobs checked against the manifest, database restored, retention applied
    (legal holds kept), the config and its files put back, then `verify`. Refuses a
    target that is not empty."""
    try:
        manifest = read_manifest(folder)
        check_file_copies(folder, manifest)
        # First, so that the config (and the files it names) are where it says they are.
        placed = put_files_back(folder, manifest) if put_files else []
    except BackupError as error:
        _fail("restore", error)
        return
    config, config_source = _restore_config(context, folder, manifest)
    storage = config.storage
    if data_dir is not None:
        storage = replace(storage, data_dir=str(data_dir))
    if database_url is not None:
        storage = replace(storage, database_url=database_url)
    try:
        with progress_bar("restore") as show:
            result = restore_snapshot(folder, storage, config.retention, on_progress=show)
    except BackupError as error:
        _fail("restore", error)
        return
    database = Database(storage.effective_database_url)
    try:
        checked = verify(database, BlobStore(storage.blob_root),
                         BlobStore(storage.derived_root), storage.data_path,
                         trigger="restore", actor="restore")
    finally:
        database.dispose()
    if as_json:
        click.echo(json.dumps({
            "created_at": manifest.created_at.isoformat(), "audit_seq": manifest.audit_seq,
            "audit_hash": manifest.audit_hash, "blobs": result.blobs, "bytes": result.bytes,
            "retention_deleted": len(result.retention.deleted), "seconds": round(result.seconds, 3),
            "settings_from": config_source,
            "files": [{"key": item.key, "path": item.original_path,
                       "copy": item.relative_path,
                       "outcome": _outcome(item, placed)} for item in manifest.files],
            "verify": checked.as_json()}, indent=2, ensure_ascii=False))
    else:
        click.echo(head_line(manifest, reader_of(config)))
        click.echo(f"settings (retention, data directory) from {config_source}")
        expired = len(result.retention.deleted)
        click.echo(ngettext("restored {n} blob", "restored {n} blobs", result.blobs)
                   .format(n=result.blobs)
                   + f" ({result.bytes / (1024 * 1024):.1f} MiB) into {storage.data_path}; "
                   + ngettext("retention deleted {n} item expired since",
                              "retention deleted {n} items expired since", expired)
                   .format(n=expired))
        for line in _files_report(folder, manifest, placed):
            click.echo(line)
        if data_dir is not None and config.storage.data_path != storage.data_path:
            click.echo(f"the config names data_dir {config.storage.data_path}: set [storage] "
                       f"data_dir = \"{storage.data_path}\" before starting the daemon")
        for line in verify_report(checked):
            click.echo(line)
    if not checked.ok:
        sys.exit(1)


def _restore_config(context: CliContext, folder: Path,
                    manifest: Manifest) -> tuple[AppConfig, str]:
    """The settings a restore follows (retention, data directory), and where they come
    from: the --config file; else the config file at the place the snapshot's came from;
    else the snapshot's copy, read as if at that place; else the built-in defaults."""
    if context.config_path is not None:
        return context.config, str(context.config_path)
    copy = config_copy(folder, manifest)
    if copy is None:
        return context.config, "the built-in defaults"
    copy_path, original = copy
    try:
        if original.exists():
            return load_config(original), str(original)
        return load_config_copy(copy_path, original), f"the snapshot's copy of {original}"
    except SettingsError as error:
        click.echo(f"chikanemail: configuration error: {error}", err=True)
        sys.exit(CONFIG_ERROR_EXIT)


def _outcome(entry: FileEntry, placed: list[PlacedFile]) -> str:
    for item in placed:
        if item.entry is entry:
            return f"failed: {item.problem}" if item.outcome == "failed" else item.outcome
    return "not put back (--no-files)"


def _files_report(folder: Path, manifest: Manifest, placed: list[PlacedFile]) -> list[str]:
    """One line per file of the snapshot: what the restore did with it."""
    lines: list[str] = []
    for entry in manifest.files:
        outcome = _outcome(entry, placed)
        copy = folder / entry.relative_path
        if outcome == "restored":
            lines.append(f"{entry.key}: put back at {entry.original_path}")
        elif outcome == "already in place":
            lines.append(f"{entry.key}: {entry.original_path} is already the same")
        elif outcome == "differs":
            lines.append(f"{entry.key}: {entry.original_path} differs from the backup's and "
                         f"was left alone; the backup's copy is {copy}")
        elif outcome.startswith("failed"):
            lines.append(f"{entry.key}: could not be put back at {entry.original_path} "
                         f"({outcome.removeprefix('failed: ')}); the backup's copy is {copy}")
        else:
            lines.append(f"{entry.key} was {entry.original_path}: its copy is {copy}")
    return lines
