"""`chikanemail ingest` and `messages list --json` over the real-world corpus and an mbox."""

from __future__ import annotations

import hashlib
import json
import mailbox
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from intake.commands.cli.main import main
from intake.service.config import CONFIG_ENV_VAR
from storage.blobstore import BlobStore
from storage.database import Database
from storage.messages import list_messages
from storage.models import Message
from tests.support import CORPUS, INTAKE_ADDRESS, write_toml

# -- helpers (local to this file) ---------------------------------------------


@dataclass(frozen=True)
class CorpusFile:
    path: Path
    size: int
    sha256: str
    tags: tuple[str, ...]


def corpus_files() -> list[CorpusFile]:
    """Every file listed in the corpus's index.tsv (path, size, sha256, tags)."""
    files = []
    for line in (CORPUS / "index.tsv").read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        path, size, sha256, tags = line.split("\t")
        files.append(CorpusFile(CORPUS / path, int(size), sha256, tuple(tags.split(","))))
    return files


def describe(result: Result) -> str:
    return (f"exit={result.exit_code} exception={result.exception!r}\n"
            f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}")


@dataclass
class IngestSetup:
    config: Path
    data_dir: Path
    database_url: str

    @property
    def store(self) -> BlobStore:
        return BlobStore(self.data_dir / "blobs")

    def run(self, *args: str) -> Result:
        runner = CliRunner(env={CONFIG_ENV_VAR: None})
        return runner.invoke(main, ["--config", str(self.config), *args])

    def ingest(self, *paths: Path | str) -> Result:
        return self.run("ingest", *(str(path) for path in paths))

    def rows(self) -> list[Message]:
        database = Database(self.database_url)
        try:
            return list_messages(database)
        finally:
            database.dispose()


def summary_line(*, messages: int, files: int, new: int, duplicates: int, failed: int = 0) -> str:
    def counted(count: int, word: str) -> str:  # "1 file", "2 files"
        return f"{count} {word}" + ("" if count == 1 else "s")

    line = (f"Ingested {counted(messages, 'message')} from {counted(files, 'file')}: {new} new, "
            f"{duplicates} already stored")
    return line + (f"; {counted(failed, 'file')} failed" if failed else "")


@pytest.fixture
def setup(tmp_path: Path, database_url: str) -> IngestSetup:
    data_dir = tmp_path / "data"
    config = write_toml(tmp_path / "chikanemail.toml", {
        "storage": {"data_dir": str(data_dir), "database_url": database_url},
        "intake": {"addresses": [INTAKE_ADDRESS]},
        "ui": {"language": "en"},  # the English summary the tests read
    })
    return IngestSetup(config, data_dir, database_url)


# -- the corpus ---------------------------------------------------------------


# The whole corpus through the CLI twice: end to end, so out of the fast loop.
@pytest.mark.integration
def test_ingest_whole_corpus_byte_exact_then_again_as_duplicates(setup: IngestSetup) -> None:
    files = corpus_files()
    assert len(files) == 200
    copies = Counter(entry.sha256 for entry in files)  # two corpus files are identical
    distinct = len(copies)

    result = setup.ingest(*(entry.path for entry in files))
    assert result.exit_code == 0, describe(result)
    assert result.stdout.splitlines()[-1] == summary_line(
        messages=len(files), files=len(files), new=distinct, duplicates=len(files) - distinct
    ), describe(result)
    assert "failed:" not in result.stderr

    store = setup.store
    for entry in files:
        original = entry.path.read_bytes()
        assert len(original) == entry.size, entry.path
        assert hashlib.sha256(original).hexdigest() == entry.sha256, entry.path
        assert store.exists(entry.sha256), f"no blob for {entry.path}"
        assert store.read_bytes(entry.sha256) == original, f"blob differs from {entry.path}"
    assert set(store.iter_all()) == set(copies)

    rows = setup.rows()
    by_sha = {row.sha256: row for row in rows}
    assert len(rows) == len(by_sha) == distinct, "one row per distinct sha256"
    for entry in files:
        row = by_sha[entry.sha256]
        assert row.source == "ingest", entry.path
        assert row.size == entry.size, entry.path
        assert row.state == "received", entry.path  # no worker ran: waiting for one
        assert row.quarantine_reason is None, entry.path
        assert row.times_seen == copies[entry.sha256], entry.path
        assert row.mail_from is None and row.peer is None and row.rcpt_tos == []
        assert row.received_at.tzinfo is not None

    again = setup.ingest(*(entry.path for entry in files))
    assert again.exit_code == 0, describe(again)
    assert again.stdout.splitlines()[-1] == summary_line(
        messages=len(files), files=len(files), new=0, duplicates=len(files)
    ), describe(again)

    rows_again = setup.rows()
    assert len(rows_again) == distinct
    for row in rows_again:
        # Each file was read twice: times_seen is 2 (4 for the bytes that two files share).
        assert row.times_seen == 2 * copies[row.sha256], row.sha256
        assert row.id == by_sha[row.sha256].id
        assert row.received_at == by_sha[row.sha256].received_at
        assert row.last_seen_at >= by_sha[row.sha256].last_seen_at
    assert set(setup.store.iter_all()) == set(copies)


def test_messages_list_json_after_ingest(setup: IngestSetup) -> None:
    wanted = {
        "talon/standard_replies/gmail.eml",
        "talon/standard_replies/thunderbird.eml",
        "zetacomponents-mail/gmail/mail_with_norwegian_characters.mail",
    }
    files = [entry for entry in corpus_files()
             if str(entry.path.relative_to(CORPUS)) in wanted]
    assert len(files) == len(wanted)
    result = setup.ingest(*(entry.path for entry in files))
    assert result.exit_code == 0, describe(result)

    listed = setup.run("messages", "list", "--json")
    assert listed.exit_code == 0, describe(listed)
    items = json.loads(listed.stdout)
    assert isinstance(items, list) and len(items) == len(files)
    required = {"id", "sha256", "size", "message_id", "subject", "received_at", "source",
                "state", "times_seen"}
    for item in items:
        assert required <= item.keys(), item.keys()
        assert item["source"] == "ingest"
        assert item["state"] == "received"
        assert item["times_seen"] == 1
        assert datetime.fromisoformat(item["received_at"]).tzinfo is not None
    ids = [item["id"] for item in items]
    assert ids == sorted(ids, reverse=True), "newest first"

    by_path = {str(entry.path.relative_to(CORPUS)): entry for entry in files}
    by_sha = {item["sha256"]: item for item in items}
    assert set(by_sha) == {entry.sha256 for entry in files}
    gmail = by_sha[by_path["talon/standard_replies/gmail.eml"].sha256]
    assert gmail["message_id"] == (
        "<CAKsfaBW4hj0Gek6TwbR3erng4P1y0CZzJ0d=pXtCNnYnbe7PLg@mail.gmail.com>")
    assert gmail["subject"] == "Re: Test"
    assert gmail["size"] == by_path["talon/standard_replies/gmail.eml"].size
    norwegian = by_sha[by_path[
        "zetacomponents-mail/gmail/mail_with_norwegian_characters.mail"].sha256]
    assert norwegian["message_id"] == "<30b849c70603160143j45126b8av@mail.gmail.com>"
    assert norwegian["subject"] == (
        "Gmail: Mail with special characterset for norwegian characters æøå")

    newest = setup.run("messages", "list", "--json", "--limit", "1")
    assert newest.exit_code == 0, describe(newest)
    assert [item["id"] for item in json.loads(newest.stdout)] == [max(ids)]


# -- mbox --------------------------------------------------------------------


def _write_mbox(path: Path, count: int) -> list[EmailMessage]:
    box = mailbox.mbox(path, create=True)
    messages = []
    try:
        for number in range(1, count + 1):
            message = EmailMessage()
            message["From"] = f"Ansat {number} <ansat{number}@kommune.example>"
            message["To"] = INTAKE_ADDRESS
            message["Subject"] = f"Fwd: besked nummer {number}"
            message["Message-ID"] = f"<mbox-{number}@kommune.example>"
            # A body line starting with "From " is what mbox escapes; it must not split a mail.
            message.set_content(f"Besked {number}.\n\nFrom the manager: we need to talk.\n")
            box.add(message)
            messages.append(message)
        box.flush()
    finally:
        box.close()
    return messages


def _mbox_raw_messages(path: Path) -> list[bytes]:
    """Each message of the mbox as the mailbox module reads it back (without its From_ line)."""
    box = mailbox.mbox(path, create=False)
    try:
        return [box.get_bytes(key) for key in box.iterkeys()]
    finally:
        box.close()


@pytest.mark.parametrize("force_flag", [False, True], ids=["suffix", "flag"])
def test_mbox_yields_one_message_each(setup: IngestSetup, tmp_path: Path,
                                      force_flag: bool) -> None:
    path = tmp_path / ("evidence.txt" if force_flag else "evidence.mbox")
    _write_mbox(path, 3)
    expected = _mbox_raw_messages(path)
    assert len(expected) == 3

    args = ["ingest", *(["--mbox"] if force_flag else []), str(path)]
    result = setup.run(*args)
    assert result.exit_code == 0, describe(result)
    assert result.stdout.splitlines()[-1] == summary_line(
        messages=3, files=1, new=3, duplicates=0
    ), describe(result)

    rows = {row.sha256: row for row in setup.rows()}
    assert len(rows) == 3
    for number, raw in enumerate(expected, start=1):
        sha256 = hashlib.sha256(raw).hexdigest()
        assert setup.store.read_bytes(sha256) == raw
        assert not raw.startswith(b"From "), "the mbox separator line is not kept"
        assert b"From the manager" in raw
        row = rows[sha256]
        assert row.source == "ingest"
        assert row.message_id == f"<mbox-{number}@kommune.example>"
        assert row.subject == f"Fwd: besked nummer {number}"


def test_file_without_mbox_suffix_is_one_message(setup: IngestSetup, tmp_path: Path) -> None:
    path = tmp_path / "evidence.txt"
    _write_mbox(path, 3)
    result = setup.ingest(path)
    assert result.exit_code == 0, describe(result)
    assert result.stdout.splitlines()[-1] == summary_line(
        messages=1, files=1, new=1, duplicates=0
    ), describe(result)
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    assert setup.store.read_bytes(sha256) == path.read_bytes()


# -- errors ------------------------------------------------------------------


def test_missing_file_is_a_clear_error_and_stores_nothing(setup: IngestSetup,
                                                          tmp_path: Path) -> None:
    present = corpus_files()[0]
    missing = tmp_path / "no-such-mail.eml"
    result = setup.ingest(present.path, missing)
    assert result.exit_code != 0, describe(result)
    assert str(missing) in result.stderr, describe(result)
    assert "does not exist" in result.stderr, describe(result)
    assert "Ingested" not in result.stdout
    store = setup.store
    assert not store.exists(present.sha256), "nothing is stored when an argument is bad"
    assert list(store.iter_all()) == []


@pytest.mark.skipif(not Path("/proc/self/mem").exists(), reason="needs Linux /proc")
def test_unreadable_file_is_counted_failed_and_the_rest_stored(setup: IngestSetup) -> None:
    # /proc/self/mem passes click's "exists, not a directory" check but reading it from
    # offset 0 fails with EIO: a real I/O error, even for root.
    good = corpus_files()[0]
    unreadable = Path("/proc/self/mem")
    result = setup.ingest(unreadable, good.path)
    assert result.exit_code == 1, describe(result)
    last = result.stdout.splitlines()[-1]
    assert last == "Ingested 1 message from 2 files: 1 new, 0 already stored; 1 file failed", (
        describe(result))
    assert f"failed: {unreadable}: OSError" in result.stderr, describe(result)
    assert setup.store.read_bytes(good.sha256) == good.path.read_bytes()
    assert [row.sha256 for row in setup.rows()] == [good.sha256]


def test_ingest_without_files_is_a_usage_error(setup: IngestSetup) -> None:
    result = setup.run("ingest")
    assert result.exit_code == 2, describe(result)
    assert "FILES" in result.stderr
