"""Import mail files (.eml, mbox) through the same durable accept path as SMTP."""

from __future__ import annotations

import logging
import mailbox
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from intake.receive.accept import IntakeService
from storage.i18n.catalogs import translations
from storage.messages import DeliveryEnvelope
from storage.models import MessageSource

log = logging.getLogger("chikanemail.intake.ingest")

MBOX_SUFFIXES = frozenset({".mbox", ".mbx"})


@dataclass
class IngestSummary:
    """Counts of what an import did."""

    files: int = 0
    new: int = 0
    duplicates: int = 0
    failed_files: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def messages(self) -> int:
        """Messages stored (new or already known) from the files."""
        return self.new + self.duplicates

    def line(self, language: str) -> str:
        """One line for the admin, in `language`."""
        catalog = translations(language)
        ngettext = catalog.ngettext
        line = catalog.gettext("%(messages)s from %(files)s: %(new)s, %(known)s already "
                               "stored") % {
            "messages": ngettext("Ingested {n} message", "Ingested {n} messages",
                                 self.messages).format(n=self.messages),
            "files": ngettext("{n} file", "{n} files", self.files).format(n=self.files),
            "new": ngettext("{n} new", "{n} new", self.new).format(n=self.new),
            "known": self.duplicates}
        if self.failed_files:
            line += "; " + ngettext("{n} file failed", "{n} files failed",
                                    self.failed_files).format(n=self.failed_files)
        return line


def is_mbox(path: Path, force_mbox: bool) -> bool:
    """Treat a file as an mbox when asked to or when its name ends in .mbox/.mbx.

    Content is no guide: many single messages begin with an mbox-style "From " line.
    """
    return force_mbox or path.suffix.lower() in MBOX_SUFFIXES


def iter_raw_messages(path: Path, force_mbox: bool = False) -> Iterator[bytes]:
    """Yield the raw bytes of every message in the file (one, or each of an mbox)."""
    if not is_mbox(path, force_mbox):
        yield path.read_bytes()
        return
    box = mailbox.mbox(path, create=False)
    try:
        for key in box.iterkeys():
            # The "From " separator line is the mbox's, not the message's, and is not kept.
            yield box.get_bytes(key)
    finally:
        box.close()


def ingest_files(
    service: IntakeService,
    paths: list[Path],
    *,
    force_mbox: bool = False,
    on_file_done: Callable[[Path], None] | None = None,
) -> IngestSummary:
    """Store every message of every file; a bad file is counted and reported, never fatal."""
    summary = IngestSummary()
    envelope = DeliveryEnvelope(source=MessageSource.INGEST)
    for path in paths:
        summary.files += 1
        try:
            for raw in iter_raw_messages(path, force_mbox):
                accepted = service.accept_message(raw, envelope)
                if accepted.duplicate:
                    summary.duplicates += 1
                else:
                    summary.new += 1
        except Exception as error:
            summary.failed_files += 1
            summary.errors.append(f"{path}: {type(error).__name__}: {error}")
            log.error("ingest failed for a file: %s", type(error).__name__)
        if on_file_done is not None:
            on_file_done(path)
    return summary
