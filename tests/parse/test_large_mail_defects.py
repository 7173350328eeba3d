"""Defects of large mails (issue 16): recorded only from views of the whole mail.

Above MAILPARSER_WHOLE_MAX_BYTES mail-parser is shown the header block alone. What it infers
from that about the body it did not see (a multipart with no boundary in it) once became the
defects of every large multipart mail; now only its checks of header values count there.
`reprocess` corrects rows written before, from the raw blob, and leaves the sender check,
kind and case of a message as they were decided.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mailparser
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from intake.commands.cli.main import main
from intake.pipeline.extract import MAILPARSER_WHOLE_MAX_BYTES, EvidenceExtractor, Extraction
from intake.pipeline.worker import Worker
from intake.service.daemon import open_services, pipeline_for
from intake.service.settings import ExtractSettings
from storage import audit
from storage.blobstore import BlobStore
from storage.database import Database
from storage.defects import MAIL_PARSER, STDLIB, StoredDefect, read_defects
from storage.messages import DeliveryEnvelope
from storage.models import Evidence, Message, MessageSource, OutboxMail
from tests.dns_server import DkimDns
from tests.large_mails import MB, damage, report_mail
from tests.mail_flow import report
from tests.support import INTAKE_ADDRESS, MANAGER, make_config, write_toml

SIZES_MB = (5, 12, 24, 50)
# The header-only view of a multipart mail: what mail-parser said of every large one.
FALSE_DEFECTS = ["MultipartInvariantViolationDefect", "StartBoundaryNotFoundDefect"]
DAMAGE_DEFECTS = ["CloseBoundaryNotFoundDefect", "InvalidBase64CharactersDefect"]
BROKEN_CC = b'Cc: "Ansat Andersen <ansat@kommune.example\r\n'
FROM_DOMAIN = "kommune.example"  # of the reports' From; tests/dns_server.py refuses it


@pytest.fixture(scope="session")
def large_reports(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """Well-formed reports of 5, 12, 24 and 50 MB, built once and kept as files."""
    folder = tmp_path_factory.mktemp("large-mails")
    files = {}
    for size in SIZES_MB:
        files[size] = folder / f"report-{size}mb.eml"
        files[size].write_bytes(report_mail(size * MB))
    return files


@pytest.fixture(scope="session")
def damaged_reports(large_reports: dict[int, Path]) -> dict[int, Path]:
    """The 5 and 12 MB reports with the same damage: no close boundary, broken base64."""
    files = {}
    for size in (5, 12):
        files[size] = large_reports[size].with_name(f"damaged-{size}mb.eml")
        files[size].write_bytes(damage(large_reports[size].read_bytes()))
    return files


@pytest.fixture(scope="session")
def signed_report(large_reports: dict[int, Path], dkim_dns: DkimDns) -> Path:
    """The 12 MB report DKIM-signed for its From's domain, which the test DNS refuses: a
    check of its sender needs that key, and the lookup fails the way a DNS outage does."""
    path = large_reports[12].with_name("signed-12mb.eml")
    path.write_bytes(dkim_dns.sign(large_reports[12].read_bytes(), FROM_DOMAIN))
    return path


@pytest.fixture(scope="module")
def extract(tmp_path_factory: pytest.TempPathFactory) -> Callable[[bytes], Extraction]:
    """Extraction into stores of this module (OCR off: tests/parse/test_ocr.py covers it)."""
    root = tmp_path_factory.mktemp("extract-large")
    store, derived = BlobStore(root / "blobs"), BlobStore(root / "derived")
    store.ensure_root()
    derived.ensure_root()
    return EvidenceExtractor(store, derived, ExtractSettings(ocr=False), None).extract


def header_block(raw: bytes) -> bytes:
    return raw[:raw.index(b"\r\n\r\n") + 4]


def names(extraction: Extraction) -> list[str]:
    return sorted({defect.name for defect in extraction.message.defects})


def part_defects(extraction: Extraction) -> dict[str, list[str]]:
    return {record.part_path: sorted({defect.name for defect in record.defects})
            for record in extraction.records if record.defects}


@pytest.mark.parametrize("size", SIZES_MB)
def test_a_well_formed_large_mail_gets_no_defect(
        size: int, large_reports: dict[int, Path],
        extract: Callable[[bytes], Extraction]) -> None:
    raw = large_reports[size].read_bytes()
    assert len(raw) >= size * MB
    assert (len(raw) > MAILPARSER_WHOLE_MAX_BYTES) == (size > 8)
    if size > 8:  # what mail-parser's view of the header block alone claims
        seen = mailparser.parse_from_bytes(header_block(raw)).defects_categories
        assert set(FALSE_DEFECTS) <= seen

    extraction = extract(raw)

    assert extraction.message.defects == []
    assert part_defects(extraction) == {}
    records = extraction.records
    photos = raw.count(b"Content-Type: image/jpeg")
    pdfs = raw.count(b"Content-Type: application/pdf")
    assert [r.role for r in records[:3]] == ["body", "nested-message", "body"]
    assert records[2].parent_path == records[1].part_path  # the forwarded original's text
    assert sum(1 for r in records if r.image and r.image["format"] == "JPEG") == photos
    assert sum(1 for r in records if r.sniffed_type == "application/pdf") == pdfs
    assert not any("transfer-encoding-broken" in r.flags for r in records)
    assert extraction.message.original is not None
    assert extraction.message.original.from_address == "kasper@eksempel.example"


def test_damage_to_a_large_mail_gives_the_defects_of_the_same_damage_in_a_small_one(
        damaged_reports: dict[int, Path], extract: Callable[[bytes], Extraction]) -> None:
    small = extract(damaged_reports[5].read_bytes())
    large_raw = damaged_reports[12].read_bytes()
    assert len(large_raw) > MAILPARSER_WHOLE_MAX_BYTES
    large = extract(large_raw)

    assert names(small) == names(large) == DAMAGE_DEFECTS
    for extraction in (small, large):  # the parse of the whole mail saw both
        assert {d.name for d in extraction.message.defects if d.parser == STDLIB} == set(
            DAMAGE_DEFECTS)
    assert part_defects(small) == part_defects(large) == {
        "4": ["InvalidBase64CharactersDefect"]}


def test_mail_parser_checks_of_header_values_count_on_a_large_mail(
        extract: Callable[[bytes], Extraction]) -> None:
    for size in (5, 12):  # mail-parser reads the whole of the first, the header block of the other
        extraction = extract(report_mail(size * MB, tag="broken-cc", extra_headers=BROKEN_CC))
        assert [(d.name, d.parser) for d in extraction.message.defects] == [
            ("AddressHeaderDefect", MAIL_PARSER)], size


def test_a_header_block_longer_than_mail_parser_reads_gives_no_mail_parser_defect(
        extract: Callable[[bytes], Extraction]) -> None:
    # mail-parser's view ends inside the Cc field, cut in the middle of its quoted name.
    head = (b"From: Ansat <ansat@kommune.example>\r\n"
            + f"To: {INTAKE_ADDRESS}\r\nSubject: lang sporing\r\n".encode())
    lines = [head]
    length = len(head)
    cut_into_cc = MAILPARSER_WHOLE_MAX_BYTES - len(b'Cc: "Ansat A')
    while length < cut_into_cc:
        line = b"X-Trace: " + b"t" * min(960, max(0, cut_into_cc - length - 11)) + b"\r\n"
        lines.append(line)
        length += len(line)
    raw = (b"".join(lines) + b'Cc: "Ansat Andersen" <ansat@kommune.example>\r\n'
           b"Content-Type: text/plain\r\n\r\nSe sporet.\r\n")
    assert raw[MAILPARSER_WHOLE_MAX_BYTES - 12:MAILPARSER_WHOLE_MAX_BYTES] == b'Cc: "Ansat A'
    cut_view = mailparser.parse_from_bytes(raw[:MAILPARSER_WHOLE_MAX_BYTES])
    assert "AddressHeaderDefect" in cut_view.defects_categories  # what the cut would claim

    extraction = extract(raw)

    assert extraction.message.defects == []
    assert [record.role for record in extraction.records] == ["body"]


def _cli(config: Path, *arguments: str) -> str:
    # Wide enough that no line of the tree is wrapped.
    result = CliRunner(env={"COLUMNS": "400"}).invoke(main, ["--config", str(config),
                                                             *arguments])
    assert result.exit_code == 0, result.output
    return result.stdout


def _decided(row: Message) -> tuple[Any, ...]:
    """What the case step decided about a message (it checks the sender and files it)."""
    return (row.state, row.quarantine_reason, row.kind, row.case_id, row.sender_check,
            row.sender_authenticated, row.reply_token_id, row.unverified)


def test_reprocess_removes_false_defects_from_old_rows_and_keeps_true_ones(
        tmp_path: Path, database_url: str, signed_report: Path,
        damaged_reports: dict[int, Path], dkim_dns: DkimDns) -> None:
    config = make_config(tmp_path / "data", database_url, extract={"ocr": False},
                         intake={"allowed_sender_domains": (FROM_DOMAIN,)})
    services = open_services(config)
    try:
        ids = [services.intake.accept_message(path.read_bytes(), DeliveryEnvelope(
            source=MessageSource.INGEST)).message_pk
            for path in (signed_report, damaged_reports[12])]
        # A stranger's mail fetched by IMAP: kept out, never filed.
        foreign = services.intake.accept_message(
            report(sender="fremmed@andetsted.example"),
            DeliveryEnvelope(source=MessageSource.IMAP)).message_pk
        Worker(services.store, services.database, config.worker,
               pipeline_for(config)).process_until_idle()
    finally:
        services.close()
    tables: dict[str, dict[str, Any]] = {
        "storage": {"data_dir": str(tmp_path / "data"), "database_url": database_url},
        "intake": {"addresses": [INTAKE_ADDRESS], "allowed_sender_domains": [FROM_DOMAIN]},
        "routing": {"default_manager": MANAGER},
        "extract": {"ocr": False},
        "ui": {"language": "en"},  # the English texts the test reads
    }
    plain = write_toml(tmp_path / "plain.toml", tables)
    # Checking the signed report's sender now would fail: its domain's DNS refuses.
    checking = write_toml(tmp_path / "dkim.toml", {**tables, "trust": {
        "dkim": True, "dns_servers": list(dkim_dns.dns_servers), "dns_timeout_seconds": 2.0}})

    database = Database(database_url)
    try:
        # The rows as the code before issue 16 wrote them: plain names, the header-only
        # view's false defects on both reports, the damaged part's true one.
        with database.write() as session:
            for pk in ids:
                session.get_one(Message, pk).defects = FALSE_DEFECTS + (
                    DAMAGE_DEFECTS if pk == ids[1] else [])
            broken = session.scalars(select(Evidence).where(
                Evidence.message_pk == ids[1], Evidence.part_path == "4")).one()
            broken.defects = ["InvalidBase64CharactersDefect"]
        with database.read() as session:
            decided = {pk: _decided(session.get_one(Message, pk)) for pk in [*ids, foreign]}
            outbox = session.scalar(select(func.count()).select_from(OutboxMail))
        assert [state for state, *_ in decided.values()] == ["processed", "processed",
                                                             "quarantined"]
        assert decided[foreign][2:4] == (None, None)  # no kind, no case

        old = json.loads(_cli(plain, "messages", "show", str(ids[0]), "--json"))
        assert old["defects"] == [{"defect": name, "parsers": []} for name in FALSE_DEFECTS]
        assert "(StartBoundaryNotFoundDefect: parser not recorded)" in _cli(
            plain, "messages", "show", str(ids[0]))

        out = _cli(checking, "reprocess", "--all")
        assert "Reprocessed 3 messages; 0 failed" in out

        with database.read() as session:
            rows = {pk: session.get_one(Message, pk) for pk in [*ids, foreign]}
            parts = {pk: {row.part_path: read_defects(row.defects)
                          for row in session.scalars(select(Evidence).where(
                              Evidence.message_pk == pk))} for pk in rows}
            assert {pk: _decided(row) for pk, row in rows.items()} == decided
            assert session.scalar(select(func.count()).select_from(OutboxMail)) == outbox
            assert read_defects(rows[ids[0]].defects) == []
            assert read_defects(rows[ids[1]].defects) == [
                StoredDefect(name, (STDLIB,)) for name in DAMAGE_DEFECTS]
            shas = {pk: row.sha256 for pk, row in rows.items()}
        assert all(defects == [] for defects in parts[ids[0]].values())
        assert {path: found for path, found in parts[ids[1]].items() if found} == {
            "4": [StoredDefect("InvalidBase64CharactersDefect", (STDLIB,))]}
        assert parts[foreign]  # extracted, though never filed

        events = list(audit.iter_events(database))
        removed = [{"part_path": None, "defect": name} for name in FALSE_DEFECTS]
        for pk, changes in ((ids[0], removed), (ids[1], removed), (foreign, [])):
            mine = [event for event in events if event.message_sha256 == shas[pk]]
            assert [event.details for event in mine if event.action == "reprocessed"] == [
                {"defects_removed": changes, "defects_added": []}]
            extracted = [event for event in mine if event.action == "evidence-extracted"]
            assert extracted[-1].details.get("defects_removed", []) == changes
            assert [event.action for event in mine].count("filed") == (pk != foreign)
    finally:
        database.dispose()

    shown = json.loads(_cli(plain, "messages", "show", str(ids[1]), "--json"))
    assert shown["defects"] == [{"defect": name, "parsers": [STDLIB]} for name in DAMAGE_DEFECTS]
    assert [item["defects"] for item in shown["evidence"] if item["path"] == "4"] == [
        [{"defect": "InvalidBase64CharactersDefect", "parsers": [STDLIB]}]]
    tree = _cli(plain, "messages", "show", str(ids[1]))
    assert "(CloseBoundaryNotFoundDefect: stdlib)" in tree
