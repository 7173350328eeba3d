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
from storage.i18n.catalogs import N_
from storage.verify import ProgressCallback, VerifyProgress, verify

# Where a restore's settings came from when not from a file of that name (`settings_from`
# in --json keeps these English words).
DEFAULTS = "the built-in defaults"
SNAPSHOT_COPY = "the snapshot's copy of "


def config_files(context: CliContext, config: AppConfig) -> list[tuple[str, Path]]:
    """The files the installation needs besides its data: the config file itself and the
    files its keys name (TLS certificate and key, passwords, CA files, OAuth and OIDC
    secrets)."""
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
    if config.web.oidc is not None:
        named.append(("web.oidc.client_secret_file", config.web.oidc.client_secret_file))
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
    # `what` is a msgid ("Backup failed: %(error)s"); the error's own text is the program's
    # (English), as the log has it. The settings may not be readable here: the language
    # comes from them when they are, else the default.
    click.echo("chikanemail: " + _reader_if_any().gettext(what) % {"error": error}, err=True)
    sys.exit(1)


def _reader_if_any() -> Reader:
    """The reader of the settings this command has read, or a Danish reader (the default
    language) when it has read none yet (a restore reads them after the snapshot's files
    are back)."""
    from zoneinfo import ZoneInfo

    context = click.get_current_context(silent=True)
    obj = context.find_object(CliContext) if context else None
    if obj is not None and obj.loaded_config is not None:
        return reader_of(obj.loaded_config)
    return Reader(language="da", zone=ZoneInfo("Europe/Copenhagen"))


def head_line(manifest: Manifest, reader: Reader) -> str:
    """When the backup was taken (in the reader's zone and language) and its audit head."""
    return reader.gettext("Backup of %(when)s, audit head seq %(seq)s hash %(hash)s") % {
        "when": reader.long(manifest.created_at), "seq": manifest.audit_seq,
        "hash": manifest.audit_hash}


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
        _fail(N_("Backup failed: %(error)s"), error)
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
    reader = reader_of(config)
    click.echo(head_line(manifest, reader))
    blobs = len(manifest.blobs)
    click.echo(reader.gettext("%(blobs)s: %(copied)s copied (%(size)s MiB), %(there)s already "
                              "there; %(files)s; %(seconds)s s") % {
        "blobs": reader.ngettext("{n} blob", "{n} blobs", blobs).format(n=blobs),
        "copied": result.copied, "size": f"{result.bytes_copied / (1024 * 1024):.1f}",
        "there": result.already_there,
        "files": reader.ngettext("{n} other file", "{n} other files",
                                 len(manifest.files)).format(n=len(manifest.files)),
        "seconds": f"{result.seconds:.1f}"})
    click.echo(reader.gettext("Snapshot complete in %(folder)s") % {"folder": result.folder})


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
        _fail(N_("Restore failed: %(error)s"), error)
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
        _fail(N_("Restore failed: %(error)s"), error)
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
        reader = reader_of(config)
        _ = reader.gettext
        click.echo(head_line(manifest, reader))
        source = (_("the built-in defaults") if config_source == DEFAULTS else
                  _("the snapshot's copy of %(path)s") % {"path": config_source.removeprefix(
                      SNAPSHOT_COPY)} if config_source.startswith(SNAPSHOT_COPY) else
                  config_source)
        click.echo(_("Settings (retention, data directory) from %(source)s") % {
            "source": source})
        expired = len(result.retention.deleted)
        click.echo(_("%(restored)s (%(size)s MiB) into %(folder)s; %(expired)s") % {
            "restored": reader.ngettext("Restored {n} blob", "Restored {n} blobs",
                                        result.blobs).format(n=result.blobs),
            "size": f"{result.bytes / (1024 * 1024):.1f}", "folder": storage.data_path,
            "expired": reader.ngettext("retention deleted {n} item expired since",
                                       "retention deleted {n} items expired since",
                                       expired).format(n=expired)})
        for line in _files_report(folder, manifest, placed, reader):
            click.echo(line)
        if data_dir is not None and config.storage.data_path != storage.data_path:
            click.echo(_('The config names data_dir %(old)s: set [storage] data_dir = '
                         '"%(new)s" before starting the daemon') % {
                "old": config.storage.data_path, "new": storage.data_path})
        for line in verify_report(checked, reader):
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
        return context.config, DEFAULTS
    copy_path, original = copy
    try:
        if original.exists():
            return load_config(original), str(original)
        return load_config_copy(copy_path, original), f"{SNAPSHOT_COPY}{original}"
    except SettingsError as error:
        click.echo(f"chikanemail: configuration error: {error}", err=True)
        sys.exit(CONFIG_ERROR_EXIT)


def _outcome(entry: FileEntry, placed: list[PlacedFile]) -> str:
    for item in placed:
        if item.entry is entry:
            return f"failed: {item.problem}" if item.outcome == "failed" else item.outcome
    return "not put back (--no-files)"


def _files_report(folder: Path, manifest: Manifest, placed: list[PlacedFile],
                  reader: Reader) -> list[str]:
    """One line per file of the snapshot: what the restore did with it."""
    _ = reader.gettext
    lines: list[str] = []
    for entry in manifest.files:
        outcome = _outcome(entry, placed)
        said = {"key": entry.key, "path": entry.original_path,
                "copy": folder / entry.relative_path}
        if outcome == "restored":
            lines.append(_("%(key)s: put back at %(path)s") % said)
        elif outcome == "already in place":
            lines.append(_("%(key)s: %(path)s is already the same") % said)
        elif outcome == "differs":
            lines.append(_("%(key)s: %(path)s differs from the backup's and was left alone; "
                           "the backup's copy is %(copy)s") % said)
        elif outcome.startswith("failed"):
            lines.append(_("%(key)s: could not be put back at %(path)s (%(problem)s); the "
                           "backup's copy is %(copy)s") % {
                **said, "problem": outcome.removeprefix("failed: ")})
        else:
            lines.append(_("%(key)s was %(path)s: its copy is %(copy)s") % said)
    return lines
