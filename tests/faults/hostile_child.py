"""The child process of the hostile-input test (R4): one mail through intake and the pipeline.

Run as `python -m tests.faults.hostile_child DATA_DIR MAIL_FILE EVENTS_FILE`. Before anything
else it installs an audit hook that writes every network attempt (socket connect, name
lookups, urllib requests) and every file opened for writing outside DATA_DIR to EVENTS_FILE,
one line each. Then it stores the mail through the accept path, runs the daemon's pipeline
on it (OCR off) and prints one JSON object: the row's state, defects and evidence summary.
"""

from __future__ import annotations

import json
import os
import resource
import sys
from pathlib import Path
from typing import Any

_NETWORK_EVENTS = frozenset({
    "socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr",
    "socket.sendto", "socket.sendmsg", "urllib.Request", "http.client.connect",
    "ftplib.connect", "smtplib.connect", "imaplib.open", "poplib.connect",
})
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def _install_hook(data_dir: str, events_file: str) -> None:
    log = open(events_file, "a", encoding="utf-8")  # noqa: SIM115  # lives as long as we do
    allowed = (os.path.realpath(data_dir) + os.sep, os.path.realpath(events_file))

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event in _NETWORK_EVENTS:
            log.write(f"network {event} {args!r}\n"[:500])
            log.flush()
        elif event == "open" and args and isinstance(args[0], str | bytes):
            mode, flags = args[1], args[2]
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & _WRITE_FLAGS)
            path = os.fsdecode(args[0])
            if writing and not os.path.realpath(path).startswith(allowed):
                log.write(f"write-outside {path!r} mode={mode!r}\n"[:500])
                log.flush()

    sys.addaudithook(hook)


def main() -> None:
    data_dir, mail_file, events_file = sys.argv[1:4]
    _install_hook(data_dir, events_file)

    import logging

    from sqlalchemy import select

    from intake.pipeline.worker import Worker
    from intake.service.daemon import open_services, pipeline_for
    from storage.defects import defect_names
    from storage.evidence import evidence_for_message
    from storage.messages import DeliveryEnvelope
    from storage.models import Message, MessageSource
    from tests.support import make_config

    logging.disable(logging.CRITICAL)
    base = Path(data_dir)
    config = make_config(base, f"sqlite:///{base / 'chikanemail.sqlite3'}",
                         extract={"ocr": False}, worker={"max_attempts": 1})
    services = open_services(config)
    raw = Path(mail_file).read_bytes()
    accepted = services.intake.accept_message(raw, DeliveryEnvelope(source=MessageSource.INGEST))
    worker = Worker(services.store, services.database, config.worker, pipeline_for(config))
    worker.process_until_idle()
    with services.database.read() as session:
        row = session.scalars(select(Message).where(Message.id == accepted.message_pk)).one()
        result: dict[str, Any] = {
            "sha256": row.sha256, "state": row.state, "reason": row.quarantine_reason,
            "error": (row.last_error or "").splitlines()[:1],
            "defects": defect_names(row.defects),
            "case": row.case_id is not None,
        }
    evidence = evidence_for_message(services.database, accepted.message_pk)
    flags = sorted({flag for item in evidence for flag in item.flags})
    result.update(parts=len(evidence), flags=flags,
                  filenames=sorted({item.filename for item in evidence if item.filename})[:10],
                  blob_intact=services.store.read_bytes(accepted.sha256) == raw)
    services.close()
    result["peak_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(result))


if __name__ == "__main__":
    main()
