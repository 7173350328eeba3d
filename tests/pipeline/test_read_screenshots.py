"""Screenshots are read by OCR after the filing: the manager's notification is committed
before tesseract starts, the text is recorded after, and a crash in between loses nothing."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import func, select

from intake.parse.ocr import OcrEngine, OcrResult
from intake.pipeline import build_steps
from intake.pipeline.read_screenshots import ReadScreenshots
from intake.pipeline.worker import Worker
from intake.service.config import AppConfig
from intake.service.daemon import Services, open_services, pipeline_parts_for
from storage.blobstore import BlobStore
from storage.database import Database
from storage.evidence import evidence_for_message
from storage.messages import DeliveryEnvelope
from storage.models import Case, Message, MessageState, OutboxMail
from tests.pipeline.test_extract_pipeline import report_mail
from tests.support import make_config


class WatchedOcr(OcrEngine):
    """The real tesseract, noting for each image what the database held when it began."""

    def __init__(self, database: Database) -> None:
        super().__init__("dan+eng", 60.0)
        self.database = database
        self.seen: list[tuple[int, str]] = []  # notifications queued, the message's state

    def recognize(self, image_bytes: bytes) -> OcrResult:
        with self.database.read() as session:
            queued = session.execute(select(func.count()).select_from(OutboxMail).where(
                OutboxMail.kind == "notification")).scalar_one()
            state = session.execute(select(Message.state)).scalar_one()
        self.seen.append((queued, state))
        return super().recognize(image_bytes)


@pytest.fixture
def services(tmp_path: Path, database_url: str) -> Iterator[tuple[AppConfig, Services]]:
    config = make_config(tmp_path / "data", database_url)
    opened = open_services(config)
    try:
        opened.intake.accept_message(report_mail(), DeliveryEnvelope(
            source="smtp", mail_from="ansat@kommune.example"))
        yield config, opened
    finally:
        opened.close()


def image_row_text(config: AppConfig, services: Services) -> tuple[str | None, str]:
    """The screenshot's OCR status and the text read from it."""
    with services.database.read() as session:
        message_pk = session.execute(select(Message.id)).scalar_one()
    (image,) = [row for row in evidence_for_message(services.database, message_pk)
                if row.dhash is not None]
    derived = BlobStore(config.storage.derived_root)
    text = derived.read_bytes(image.ocr_sha256).decode() if image.ocr_sha256 else ""
    return image.ocr_status, text


def test_the_notification_is_committed_before_the_screenshot_is_read(
        services: tuple[AppConfig, Services]) -> None:
    config, opened = services
    ocr = WatchedOcr(opened.database)
    steps = build_steps(replace(pipeline_parts_for(config), ocr=ocr))
    assert Worker(opened.store, opened.database, config.worker, steps).process_until_idle() == 1
    # Tesseract began with the notification already committed and the message not done.
    assert ocr.seen == [(1, MessageState.PROCESSING)]
    status, text = image_row_text(config, opened)
    assert status == "ok" and "Chikane" in text


def test_a_crash_between_filing_and_reading_reads_it_at_the_next_run(
        services: tuple[AppConfig, Services]) -> None:
    config, opened = services
    parts = replace(pipeline_parts_for(config), ocr=WatchedOcr(opened.database))
    steps = build_steps(parts)
    before_reading = [step for step in steps if not isinstance(step, ReadScreenshots)]
    # The first run ends where a crash would cut it: filed, notified, screenshot unread.
    Worker(opened.store, opened.database, config.worker, before_reading).process_until_idle()
    assert image_row_text(config, opened)[0] == "pending"
    with opened.database.write() as session:  # the crashed run's claim, handed back
        session.execute(Message.__table__.update().values(state=MessageState.RECEIVED))
    Worker(opened.store, opened.database, config.worker, steps).process_until_idle()
    status, text = image_row_text(config, opened)
    assert status == "ok" and "Chikane" in text
    with opened.database.read() as session:
        assert session.execute(select(func.count()).select_from(Case)).scalar_one() == 1
        assert session.execute(select(func.count()).select_from(OutboxMail).where(
            OutboxMail.kind == "notification")).scalar_one() == 1
