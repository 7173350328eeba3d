"""Extraction in the daemon: SMTP in, evidence rows out, `messages show` and `reprocess`."""

from __future__ import annotations

import io
import json
import smtplib
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

from click.testing import CliRunner
from PIL import Image, ImageDraw, ImageFont

from intake.commands.cli.main import main
from storage.database import Database
from storage.evidence import evidence_for_message
from storage.messages import list_messages
from tests.support import INTAKE_ADDRESS, DaemonThread, wait_until

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
SENT = datetime(2026, 11, 18, 21, 47, tzinfo=timezone(timedelta(hours=1)))


def screenshot(text: str) -> bytes:
    image = Image.new("RGB", (1400, 220), "white")
    ImageDraw.Draw(image).text((40, 70), text, fill="black",
                               font=ImageFont.truetype(FONT, 64))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def harassing_original() -> EmailMessage:
    original = EmailMessage()
    original["From"] = "Kasper Krænker <kasper@eksempel.example>"
    original["To"] = "ansat@kommune.example"
    original["Subject"] = "Du er ikke velkommen"
    original["Date"] = format_datetime(SENT)
    original["Message-ID"] = "<original-1@eksempel.example>"
    original.set_content("Vi ved hvor du bor.\n")
    original.add_attachment(screenshot("Chikane på arbejdspladsen"), maintype="image",
                            subtype="png", filename="skærmbillede.png")
    return original


def report_mail() -> bytes:
    report = EmailMessage()
    report["From"] = "Ansat <ansat@kommune.example>"
    report["To"] = INTAKE_ADDRESS
    report["Subject"] = "VS: Du er ikke velkommen"
    report["Message-ID"] = "<report-1@kommune.example>"
    report.set_content("Jeg videresender beskeden, jeg fik i går aftes.\n")
    report.add_attachment(harassing_original())
    return report.as_bytes()


def write_config(tmp_path: Path, daemon: DaemonThread) -> Path:
    path = tmp_path / "cli.toml"
    storage = daemon.config.storage
    path.write_text(f'[storage]\ndata_dir = "{storage.data_dir}"\n'
                    f'database_url = "{storage.effective_database_url}"\n', encoding="utf-8")
    return path


def test_a_forwarded_mail_becomes_an_evidence_tree(daemon: DaemonThread, tmp_path: Path) -> None:
    raw = report_mail()
    with smtplib.SMTP(*daemon.smtp_address) as client:
        assert client.sendmail("ansat@kommune.example", [INTAKE_ADDRESS], raw) == {}
    database = Database(daemon.config.storage.effective_database_url)
    try:
        (message,) = wait_until(
            lambda: [m for m in list_messages(database) if m.state == "processed"],
            timeout=60, message="the report processed")
        rows = evidence_for_message(database, message.id)
    finally:
        database.dispose()

    by_path = {row.part_path: row for row in rows}
    assert [row.role for row in rows] == ["body", "nested-message", "body", "attachment"]
    nested = by_path["2"]
    assert nested.declared_type == "message/rfc822"
    assert by_path["2.1"].parent_id == nested.id and by_path["2.2"].parent_id == nested.id
    image = by_path["2.2"]
    assert image.filename == "skærmbillede.png"
    assert (image.declared_type, image.sniffed_type) == ("image/png", "image/png")
    assert image.image is not None and image.image["width"] == 1400
    assert image.thumbnail_sha256 and image.dhash
    assert image.ocr_status == "ok"

    assert message.original_rule == "attached-message"
    assert message.original_from_address == "kasper@eksempel.example"
    assert message.original_subject == "Du er ikke velkommen"
    assert message.original_date == SENT

    config = write_config(tmp_path, daemon)
    shown = CliRunner().invoke(main, ["--config", str(config), "messages", "show",
                                      str(message.id), "--json"])
    assert shown.exit_code == 0, shown.output
    report = json.loads(shown.stdout)
    assert report["sha256"] == message.sha256
    assert report["original"]["from"] == "kasper@eksempel.example"
    assert report["original"]["subject"] == "Du er ikke velkommen"
    assert datetime.fromisoformat(report["original"]["date"]) == SENT
    assert report["original"]["date_raw"] == "Wed, 18 Nov 2026 21:47:00 +0100"
    items = report["evidence"]
    assert {"sha256", "filename", "content_type", "sniffed_type", "size", "role", "parent",
            "flags", "image", "ocr_text"} <= set(items[3])
    assert items[3]["parent"] == nested.sha256
    words = items[3]["ocr_text"].lower()
    assert "chikane" in words and "arbejdspladsen" in words
    assert isinstance(report["defects"], list)

    tree = CliRunner().invoke(main, ["--config", str(config), "messages", "show",
                                     message.sha256[:12]])
    assert tree.exit_code == 0 and "skærmbillede.png" in tree.stdout

    before = [(r.id, r.part_path, r.sha256, r.parent_id) for r in rows]
    for _ in range(2):
        again = CliRunner().invoke(main, ["--config", str(config), "reprocess", str(message.id)])
        assert again.exit_code == 0, again.output
        assert "Behandlede 1 mail igen; 0 mislykkedes"  # Danish, the default in again.stdout
    database = Database(daemon.config.storage.effective_database_url)
    try:
        after = [(r.id, r.part_path, r.sha256, r.parent_id)
                 for r in evidence_for_message(database, message.id)]
    finally:
        database.dispose()
    assert after == before
