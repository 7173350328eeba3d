"""The daemon starts, stores one mail byte for byte and processes it."""

from __future__ import annotations

import hashlib
import smtplib

from storage.blobstore import BlobStore
from storage.database import Database
from storage.messages import get_message_by_sha256
from tests.support import INTAKE_ADDRESS, DaemonThread, wait_until

RAW = (b"From: Ansat <ansat@kommune.example>\r\nTo: <chikanemail@kommune.example>\r\n"
       b"Subject: Fwd: grim besked\r\nMessage-ID: <smoke-1@kommune.example>\r\n\r\n"
       b"Se nedenfor.\r\n")


def test_mail_is_stored_byte_for_byte_and_processed(daemon: DaemonThread) -> None:
    host, port = daemon.smtp_address
    with smtplib.SMTP(host, port) as client:
        refused = client.sendmail("ansat@kommune.example", [INTAKE_ADDRESS], RAW)
    assert refused == {}
    sha256 = hashlib.sha256(RAW).hexdigest()
    store = BlobStore(daemon.config.storage.blob_root)
    assert store.read_bytes(sha256) == RAW
    database = Database(daemon.config.storage.effective_database_url)
    try:
        row = wait_until(lambda: (r := get_message_by_sha256(database, sha256))
                         and r.state == "processed" and r, message="processed state")
    finally:
        database.dispose()
    assert row.message_id == "<smoke-1@kommune.example>"
    assert row.subject == "Fwd: grim besked"
    assert row.received_at.tzinfo is not None
