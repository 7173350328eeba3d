"""Extraction over every real-world mail in ../shared/corpus: no crash, every part kept."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest

from intake.parse.containers.tnef import open_tnef
from intake.pipeline.extract import EvidenceExtractor, Extraction
from intake.service.settings import ExtractSettings
from storage.blobstore import BlobStore
from storage.ui_settings import UiSettings
from tests.support import CORPUS

BROKEN_BASE64 = {"InvalidBase64PaddingDefect", "InvalidBase64CharactersDefect",
                 "InvalidBase64LengthDefect"}


@dataclass(frozen=True)
class CorpusFile:
    path: Path
    sha256: str
    tags: frozenset[str]

    @property
    def name(self) -> str:
        return str(self.path.relative_to(CORPUS))


def corpus_files() -> list[CorpusFile]:
    files = []
    for line in (CORPUS / "index.tsv").read_text(encoding="utf-8").splitlines():
        relative, _size, sha256, tags = line.split("\t")
        files.append(CorpusFile(CORPUS / relative, sha256, frozenset(tags.split(","))))
    return files


CORPUS_FILES = corpus_files()


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> tuple[BlobStore, BlobStore]:
    root = tmp_path_factory.mktemp("extract")
    store, derived = BlobStore(root / "blobs"), BlobStore(root / "derived")
    store.ensure_root()
    derived.ensure_root()
    return store, derived


@pytest.fixture(scope="module")
def extractions(stores: tuple[BlobStore, BlobStore]) -> dict[str, Extraction]:
    """Every corpus file extracted once (no OCR here: tests/parse/test_ocr.py covers it)."""
    extractor = EvidenceExtractor(*stores, ExtractSettings(ocr=False), ocr=None)
    return {item.name: extractor.extract(item.path.read_bytes()) for item in CORPUS_FILES}


def mime_leaves(raw: bytes) -> Iterator[tuple[bytes | None, list[str]]]:
    """The stdlib's own leaves (walk() also descends into message/rfc822 parts)."""
    message = BytesParser(policy=policy.default).parsebytes(raw)
    for part in message.walk():
        if part.is_multipart():
            continue
        data = part.get_payload(decode=True)
        yield data, [type(d).__name__ for d in part.defects]


def test_corpus_index_matches_the_files() -> None:
    assert len(CORPUS_FILES) == 200
    for item in CORPUS_FILES:
        assert hashlib.sha256(item.path.read_bytes()).hexdigest() == item.sha256, item.name


@pytest.mark.parametrize("item", CORPUS_FILES, ids=lambda item: item.name)
def test_every_leaf_part_is_evidence_with_the_sha256_of_its_bytes(
        item: CorpusFile, extractions: dict[str, Extraction],
        stores: tuple[BlobStore, BlobStore]) -> None:
    extraction = extractions[item.name]
    records = extraction.records
    assert records, "every message yields at least one evidence item"
    shas = {record.sha256 for record in records}
    store = stores[0]
    for record in records:
        assert store.exists(record.sha256)
        assert record.size == store.path(record.sha256).stat().st_size
        assert record.parent_path is None or any(r.part_path == record.parent_path
                                                 for r in records)
    if {"tnef-raw", "outlook-msg-raw"} & item.tags:
        assert records[0].sha256 == item.sha256  # the bare container is the one part
        return
    for data, defects in mime_leaves(item.path.read_bytes()):
        if data is None or BROKEN_BASE64.intersection(defects):
            continue  # kept as its raw encoded bytes and flagged; checked below
        assert hashlib.sha256(data).hexdigest() in shas
    paths = [record.part_path for record in records]
    assert len(paths) == len(set(paths)), "part paths are unique"


def test_malformed_mails_are_flagged_not_dropped(extractions: dict[str, Extraction]) -> None:
    malformed = [item for item in CORPUS_FILES if "malformed" in item.tags]
    assert malformed
    for item in malformed:
        extraction = extractions[item.name]
        assert extraction.message.defects, item.name
        assert extraction.records, item.name


def test_broken_transfer_encoding_is_kept_raw_and_flagged(
        extractions: dict[str, Extraction]) -> None:
    flagged = [(name, record) for name, extraction in extractions.items()
               for record in extraction.records if "transfer-encoding-broken" in record.flags]
    assert flagged, "the corpus has bad base64 (cpython, php-mime-mail-parser, enmime)"


def test_nested_messages_own_their_parts(extractions: dict[str, Extraction]) -> None:
    nested_files = [item for item in CORPUS_FILES if "rfc822-nested" in item.tags]
    assert nested_files
    checked = 0
    for item in nested_files:
        records = extractions[item.name].records
        nested = [r for r in records if r.role == "nested-message"]
        assert nested, item.name
        for message in nested:
            inside = [r for r in records if r.part_path.startswith(message.part_path + ".")]
            for record in inside:
                # The closest enclosing nested message (or container) is the parent chain.
                assert record.parent_path is not None
                assert record.parent_path.startswith(message.part_path), (item.name, record)
            direct = [r for r in inside if r.parent_path == message.part_path]
            if inside:
                assert direct, (item.name, message.part_path)
                checked += 1
    assert checked >= 10


def test_tnef_attachments_are_children_of_the_winmail_part(
        extractions: dict[str, Extraction], stores: tuple[BlobStore, BlobStore]) -> None:
    with_children = 0
    for item in CORPUS_FILES:
        if not {"tnef", "tnef-raw"} & item.tags:
            continue
        records = extractions[item.name].records
        containers = [r for r in records if "container:tnef" in r.flags]
        if not containers:
            # m4006's "winmail.dat" holds a PNG: declared TNEF, but not a container.
            declared = [r for r in records if r.declared_type == "application/ms-tnef"]
            assert declared and all(r.sniffed_type != "application/ms-tnef" for r in declared)
            continue
        for container in containers:
            children = [r for r in records if r.parent_path == container.part_path]
            assert all(r.role == "container-part" for r in children), item.name
            # Everything tnefparse finds in the winmail.dat is a child of it.
            expected = open_tnef(stores[0].read_bytes(container.sha256)).items
            assert sorted(r.sha256 for r in children) == sorted(
                hashlib.sha256(i.data).hexdigest() for i in expected), item.name
            with_children += bool(children)
    assert with_children >= 6


def test_outlook_msg_files_open_through_extract_msg(extractions: dict[str, Extraction]) -> None:
    for item in CORPUS_FILES:
        if "outlook-msg-raw" not in item.tags:
            continue
        records = extractions[item.name].records
        assert "container:outlook-msg" in records[0].flags, item.name


def test_attached_forwards_name_the_original(extractions: dict[str, Extraction]) -> None:
    found = 0
    for item in CORPUS_FILES:
        if "forward-attached" not in item.tags:
            continue
        original = extractions[item.name].message.original
        if original is not None and original.rule == "attached-message":
            assert original.from_address or original.subject, item.name
            found += 1
    assert found >= 5


def test_images_get_metadata_and_thumbnails(extractions: dict[str, Extraction],
                                            stores: tuple[BlobStore, BlobStore]) -> None:
    images = [record for extraction in extractions.values() for record in extraction.records
              if record.image is not None]
    assert len(images) >= 10
    good = [r for r in images if r.thumbnail_sha256]
    assert good
    for record in good:
        assert stores[1].exists(record.thumbnail_sha256)  # type: ignore[arg-type]
        assert record.dhash is not None and len(record.dhash) == 16
        assert record.ocr_status == "skipped"


def test_filenames_are_decoded_from_rfc2047_and_rfc2231(
        extractions: dict[str, Extraction]) -> None:
    names = {record.filename for extraction in extractions.values()
             for record in extraction.records if record.filename}
    assert not any("=?" in name for name in names), [n for n in names if "=?" in n]
    assert any(any(ch in name for ch in "æøåÆØÅäöüé") or not name.isascii() for name in names)


# -- the forwarded originals' dates (issue 16) --------------------------------------------

DATES_BEFORE = Path(__file__).parent.parent / "fixtures" / "forward_dates_before.json"
# Forwards in the corpus whose message got a structured date: before issue 16, and now.
DATED_BEFORE = 36
DATED_NOW = 47


def same_moment(before: str, after: datetime) -> bool:
    """The same instant written with the same UTC offset."""
    written = datetime.fromisoformat(before)
    return written == after and written.utcoffset() == after.utcoffset()


def test_every_forward_keeps_or_improves_its_date(extractions: dict[str, Extraction]) -> None:
    """Against the dates stored before zone-less dates were read in the workplace's zone: no
    structured date is lost, no zoned one changes, and each new one is flagged assumed."""
    before = json.loads(DATES_BEFORE.read_text(encoding="utf-8"))["files"]
    assert set(before) == {item.name for item in CORPUS_FILES}
    dated_before = dated_now = 0
    for name, was in before.items():
        extraction = extractions[name]
        original = extraction.message.original
        if was["original"] is None:
            assert original is None, name
        else:
            assert original is not None and original.rule == was["original"]["rule"], name
            assert original.date_raw == was["original"]["date_raw"], name
            date, assumed = original.stored_date(UiSettings().zone)
            if was["original"]["date"] is not None:
                dated_before += 1
                assert date is not None and not assumed, name
                assert same_moment(was["original"]["date"], date), name
            elif date is not None:
                assert assumed and not original.rule.startswith("attached-"), name
                assert date.tzinfo is not None, name
            dated_now += date is not None
        parts = {record.part_path: record.original for record in extraction.records
                 if record.original}
        assert set(parts) == set(was["parts"]), name
        for path, part in was["parts"].items():
            assert parts[path]["date_raw"] == part["date_raw"], (name, path)
            if part["date"] is not None:
                assert parts[path]["date"] == part["date"], (name, path)
    assert (dated_before, dated_now) == (DATED_BEFORE, DATED_NOW)
