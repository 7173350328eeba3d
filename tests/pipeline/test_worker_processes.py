"""Worker processes (`[worker] processes` > 1): a killed process's claims are resumed with
nothing processed twice, the daemon stops within its stop timeout with every process busy,
and a campaign filed by three processes links exactly as one process links it."""

from __future__ import annotations

import io
import os
import signal
import smtplib
import time
from collections import Counter
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont
from sqlalchemy import func, select

from intake.pipeline.worker import Worker
from intake.pipeline.worker_processes import WorkerProcesses
from intake.service.config import AppConfig
from intake.service.daemon import Services, open_services, pipeline_for
from storage.audit import check_chain
from storage.blobstore import BlobStore
from storage.database import Database
from storage.messages import DeliveryEnvelope
from storage.models import AuditEvent, Case, CaseLink, Message, MessageState, OutboxMail
from tests.support import (
    INTAKE_ADDRESS,
    daemon_process,
    free_port,
    make_config,
    wait_for_port,
    wait_until,
    write_toml,
)

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
HARASSER = "kasper@eksempel.example"
# The unit file's TimeoutStopSec is 120 s; the daemon gives its workers 30 s of it.
STOP_TIMEOUT_SECONDS = 30.0


def screenshot(text: str, lines: int = 6) -> bytes:
    """A screenshot with a few lines of text to read (OCR takes a moment over it)."""
    image = Image.new("RGB", (1200, 90 * lines + 60), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(FONT, 48)
    for line in range(lines):
        draw.text((40, 40 + 90 * line), f"{text} linje {line}", fill="black", font=font)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def report(number: int, image: bytes) -> bytes:
    """A report by employee `number`: the harasser's mail forwarded with the screenshot."""
    mail = EmailMessage()
    mail["From"] = f"ansat{number:03d}@chikanemail.test"
    mail["To"] = INTAKE_ADDRESS
    mail["Subject"] = f"VS: Du er ikke velkommen ({number})"
    mail["Message-ID"] = f"<report-{number}@chikanemail.test>"
    mail.set_content("Se nedenfor.\n\n---------- Videresendt besked ----------\n"
                     f"Fra: Kasper <{HARASSER}>\nDato: 18. nov. 2026 21.47\n"
                     "Emne: Du er ikke velkommen\nTil: ansat@chikanemail.test\n\n"
                     "Vi ved hvor du bor.\n")
    mail.add_attachment(image, maintype="image", subtype="png", filename="skærmbillede.png")
    return mail.as_bytes()


def store_reports(services: Services, images: list[bytes]) -> None:
    """Receive one report per image, as the listener would."""
    for number, image in enumerate(images, start=1):
        services.intake.accept_message(report(number, image), DeliveryEnvelope(
            source="smtp", mail_from=f"ansat{number:03d}@chikanemail.test"))


def states(database: Database) -> Counter[str]:
    """How many messages are in each state."""
    with database.read() as session:
        return Counter(session.execute(select(Message.state)).scalars())


def claimed_by_pids(database: Database) -> dict[int, int]:
    """The message being processed, by the pid that claimed it."""
    with database.read() as session:
        rows = session.execute(select(Message.id, Message.claimed_by)
                               .where(Message.state == MessageState.PROCESSING)).all()
    return {int(claimer.rsplit(":", 2)[1]): message_id for message_id, claimer in rows
            if claimer}


def processed_once_each(database: Database, count: int) -> None:
    """Every message processed exactly once: one `processed` event and one case each, case
    numbers gap-free, one notification per case, the audit chain whole."""
    with database.read() as session:
        processed = Counter(session.execute(
            select(AuditEvent.message_sha256).where(AuditEvent.action == "processed")
        ).scalars())
        sequences = sorted(session.execute(select(Case.sequence)).scalars())
        notifications = Counter(session.execute(
            select(OutboxMail.case_id).where(OutboxMail.kind == "notification")).scalars())
        opened = session.execute(select(func.count()).select_from(AuditEvent)
                                 .where(AuditEvent.action == "case-opened")).scalar_one()
    assert len(processed) == count and set(processed.values()) == {1}, processed
    assert sequences == list(range(1, count + 1))
    assert opened == count
    assert len(notifications) == count and set(notifications.values()) == {1}
    assert check_chain(database).ok


@pytest.fixture
def pool_services(tmp_path: Path, database_url: str) -> Iterator[tuple[AppConfig, Services]]:
    config = make_config(tmp_path / "data", database_url,
                         worker={"processes": 2, "poll_seconds": 0.2})
    services = open_services(config)
    try:
        yield config, services
    finally:
        services.close()


def test_a_killed_worker_process_is_restarted_and_its_claim_resumed(
        pool_services: tuple[AppConfig, Services]) -> None:
    config, services = pool_services
    pool = WorkerProcesses(config, services.database)
    pool.start()
    try:
        wait_until(lambda: pool.ready_count() == 2, timeout=30, message="two ready processes")
        store_reports(services, [screenshot(f"Besked nummer {n}") for n in range(1, 5)])
        pool.wake()
        # Kill the process that holds a claim, while it works on that message.
        busy = wait_until(lambda: {pid: message for pid, message
                                   in claimed_by_pids(services.database).items()
                                   if pid in pool.pids()},
                          timeout=30, message="a worker process busy on a message")
        killed_pid, killed_message = next(iter(busy.items()))
        os.kill(killed_pid, signal.SIGKILL)
        wait_until(lambda: states(services.database) == Counter({"processed": 4}),
                   timeout=90, message="every message processed")
        wait_until(lambda: pool.restarts() == 1 and pool.ready_count() == 2, timeout=30,
                   message="the killed process started again")
        assert killed_pid not in pool.pids()
    finally:
        pool.stop(10)
    processed_once_each(services.database, 4)
    with services.database.read() as session:
        attempts = session.get(Message, killed_message)
        assert attempts is not None and attempts.attempts == 2  # the killed try counts


def campaign_links(config: AppConfig, services: Services, processes: int) -> set[tuple[
        frozenset[str], str, str]]:
    """File 30 reports from different employees about the same harasser with the same
    screenshot, with `processes` processes; the links between cases, by reporter."""
    store_reports(services, [screenshot("Vi ved hvor du bor", lines=2)] * 30)
    if processes == 1:
        Worker(services.store, services.database, config.worker,
               pipeline_for(config)).process_until_idle()
    else:
        pool = WorkerProcesses(config, services.database)
        pool.start()
        try:
            wait_until(lambda: states(services.database) == Counter({"processed": 30}),
                       timeout=120, message="the campaign processed")
            assert len(set(pool.pids())) == processes
        finally:
            pool.stop(10)
    processed_once_each(services.database, 30)
    with services.database.read() as session:
        reporters = dict(session.execute(select(Case.id, Case.reporter)).all())
        links = session.execute(select(CaseLink.case_id, CaseLink.other_case_id,
                                       CaseLink.reason, CaseLink.detail)).all()
    return {(frozenset({reporters[one], reporters[other]}), reason, detail)
            for one, other, reason, detail in links}


@pytest.fixture(scope="module")
def one_process_links(tmp_path_factory: pytest.TempPathFactory) -> set[tuple[
        frozenset[str], str, str]]:
    """The links of the campaign filed by one process (on SQLite): what several must give."""
    folder = tmp_path_factory.mktemp("one-process")
    config = make_config(folder / "data", f"sqlite:///{folder}/chikanemail.sqlite3",
                         worker={"processes": 1}, extract={"ocr": False})
    services = open_services(config)
    try:
        return campaign_links(config, services, processes=1)
    finally:
        services.close()


def test_a_campaign_filed_by_three_processes_links_as_one_process_does(
        tmp_path: Path, database_url: str,
        one_process_links: set[tuple[frozenset[str], str, str]]) -> None:
    # Every pair of the 30 cases is linked, by sender and by screenshot.
    assert len({pair for pair, _, _ in one_process_links}) == 30 * 29 // 2
    assert {reason for _, reason, _ in one_process_links} == {"sender", "image"}
    config = make_config(tmp_path / "data", database_url, worker={"processes": 3},
                         extract={"ocr": False})
    services = open_services(config)
    try:
        assert campaign_links(config, services, processes=3) == one_process_links
    finally:
        services.close()


def test_the_daemon_stops_within_its_stop_timeout_with_three_processes_on_ocr(
        tmp_path: Path) -> None:
    data = tmp_path / "data"
    database_url = f"sqlite:///{data}/chikanemail.sqlite3"
    port = free_port()
    config_file = write_toml(tmp_path / "config.toml", {
        "storage": {"data_dir": str(data)},
        "smtp": {"port": port, "server_hostname": "chikanemail.test"},
        "intake": {"addresses": [INTAKE_ADDRESS]},
        "routing": {"default_manager": "leder@chikanemail.test"},
        "worker": {"processes": 3, "poll_seconds": 0.2},
        "web": {"enabled": False},
    })
    with daemon_process(config_file, tmp_path / "daemon.log") as daemon:
        wait_for_port(port, timeout=60)
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            for number in range(1, 7):
                client.sendmail(f"ansat{number:03d}@chikanemail.test", [INTAKE_ADDRESS],
                                report(number, screenshot(f"Trussel nummer {number}")))
        database = Database(database_url)
        wait_until(lambda: len(claimed_by_pids(database)) == 3, timeout=60,
                   message="three worker processes busy on OCR")
        started = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(60)
        took = time.monotonic() - started
    left = states(database)
    # Nothing lost: what was not finished waits, unclaimed, for the next start.
    assert code == 0
    assert took < STOP_TIMEOUT_SECONDS, f"stopped after {took:.1f} s"
    assert set(left) <= {"processed", "received"} and sum(left.values()) == 6
    # The rest, as the next start would file them (without OCR, to be quick about it).
    config = make_config(data, database_url, extract={"ocr": False})
    Worker(BlobStore(config.storage.blob_root), database, config.worker,
           pipeline_for(config)).process_until_idle()
    processed_once_each(database, 6)
    database.dispose()
    assert b"Traceback" not in (tmp_path / "daemon.log").read_bytes()
