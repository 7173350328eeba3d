"""`chikanemail export`: a case opened through a real daemon and SMTP is exported to a folder
and to a zip, then checked the way the police would: `sha256sum -c`, the custody hashes
recomputed with printf and sha256sum, `openssl ts -verify`, and the report opened offline in
headless Chromium; mails whose senders could not be verified are marked in it and the
manifest."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import re
import shutil
import stat
import subprocess
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from PIL import Image, ImageDraw, ImageFont
from playwright.sync_api import Browser
from sqlalchemy import select, update

from intake import __version__
from intake.commands.cli.main import main
from storage import audit
from storage.blobstore import BlobStore
from storage.cases import add_note_by_number, case_messages, get_case
from storage.database import Database
from storage.export import ExportError, ExportOptions, export_case
from storage.export_names import MAX_NAME_BYTES, safe_filename
from storage.models import AuditEvent, Case, Message, MessageTimestamp, utc_now
from tests.browser import chromium, open_file
from tests.mail_flow import REPORTER, send
from tests.support import (
    INTAKE_ADDRESS,
    MANAGER,
    DaemonThread,
    make_config,
    postgres_schema,
    wait_until,
    write_toml,
)

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
HOSTILE_NAME = "../../etc/passwd"
# The extractor keeps printable characters only; the export must cope with what is left.
HOSTILE_2231 = "filename*=utf-8''..%2F..%2F.hidden%00evil%0A.sh"
HEX64 = re.compile(r"[0-9a-f]{64}")
# Shown in the report as text, never as markup.
HOSTILE_NOTE = ('Talt med hende.\n<script>alert(1)</script><img src="http://evil.example/x.png">'
                '<link rel="stylesheet" href="//evil.example/">')


# -- the case every test exports ---------------------------------------------------


@dataclass
class ExportableCase:
    """A case with two mails (PNG, JPEG; TIFF and hostile names), its config and facts."""

    config_file: Path
    database_url: str
    blob_root: Path
    derived_root: Path
    tsa_ca: Path
    number: str
    sent: list[bytes]
    pictures: dict[str, str]  # "png"/"jpeg"/"tiff" -> SHA-256 of the attached bytes
    passwd_sha256: str

    def database(self) -> Database:
        return Database(self.database_url)

    def options(self, **changes: Any) -> ExportOptions:
        values: dict[str, Any] = {
            "blob_root": self.blob_root, "derived_root": self.derived_root,
            "language": "da", "exporter": "cli:test", "tool_version": __version__,
            "tsa_ca_file": self.tsa_ca, **changes}
        return ExportOptions(**values)


def screenshot_with_text(line: str) -> Image.Image:
    """A screenshot-like picture with a line OCR can read and some coloured blocks."""
    image = Image.new("RGB", (1100, 300), "white")
    draw = ImageDraw.Draw(image)
    draw.text((40, 60), line, font=ImageFont.truetype(FONT, 48), fill="black")
    draw.rectangle((40, 180, 500, 260), fill=(40, 90, 200))
    draw.rectangle((560, 180, 1060, 260), fill=(200, 60, 40))
    return image


def encoded(image: Image.Image, image_format: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    return buffer.getvalue()


def first_report(png: bytes, jpeg: bytes) -> bytes:
    mail = EmailMessage()
    mail["From"] = REPORTER
    mail["To"] = INTAKE_ADDRESS
    mail["Subject"] = "VS: Du er ikke velkommen"
    mail.set_content("Se nedenfor og skærmbillederne.\n\n"
                     "---------- Forwarded message ---------\n"
                     "From: Kasper <kasper@eksempel.example>\n"
                     "Date: Wed, 18 Nov 2026 21:47:00 +0100\n"
                     "Subject: Du er ikke velkommen\nTo: <ansat@kommune.example>\n\n"
                     "Vi ved hvor du bor.\n")
    mail.add_attachment(png, maintype="image", subtype="png", filename="skaermbillede.png")
    mail.add_attachment(jpeg, maintype="image", subtype="jpeg", filename="foto.jpg")
    return mail.as_bytes(policy=policy.SMTP)


def follow_up(number: str, tiff: bytes) -> bytes:
    mail = EmailMessage()
    mail["From"] = REPORTER
    mail["To"] = INTAKE_ADDRESS
    mail["Subject"] = f"mere til sag {number}"
    mail.set_content("Og et billede mere, plus to filer med mærkelige navne.\n")
    mail.add_attachment(tiff, maintype="image", subtype="tiff", filename="scan.tiff")
    mail.add_attachment(b"root:x:0:0:root:/root:/bin/sh\n", maintype="text",
                        subtype="plain", filename=HOSTILE_NAME)
    mail.add_attachment(b"#!/bin/sh\necho owned\n", maintype="application",
                        subtype="octet-stream", filename="placeholder")
    raw = mail.as_bytes(policy=policy.SMTP)
    return raw.replace(b'filename="placeholder"', HOSTILE_2231.encode("ascii"))


def make_tsa(folder: Path) -> tuple[Path, Path, Path]:
    """A test time-stamp authority (CA and signer) made with openssl: (config, cert, key)."""
    folder.mkdir()

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-subj",
        "/CN=Test TSA CA", "-days", "30", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", "-new", *ec, "-keyout", "tsa.key", "-out", "tsa.csr", "-subj", "/CN=Test TSA")
    (folder / "ext.cnf").write_text("extendedKeyUsage=critical,timeStamping\n"
                                    "basicConstraints=CA:FALSE\n"
                                    "keyUsage=critical,digitalSignature\n")
    run("x509", "-req", "-in", "tsa.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "tsa.pem", "-days", "30", "-extfile", "ext.cnf")
    (folder / "serial").write_text("01\n")
    (folder / "tsa.cnf").write_text(
        "[ tsa ]\ndefault_tsa = main\n[ main ]\nserial = ./serial\nsigner_digest = sha256\n"
        "default_policy = 1.2.3.4.1\ndigests = sha256\naccuracy = secs:1\nordering = no\n"
        "tsa_name = no\ness_cert_id_chain = no\ness_cert_id_alg = sha256\n")
    return folder / "tsa.cnf", folder / "tsa.pem", folder / "tsa.key"


def time_stamp(tsa: tuple[Path, Path, Path], sha256: str) -> bytes:
    """An RFC 3161 response (DER) of the test authority over the digest."""
    config, cert, key = tsa
    folder = config.parent
    subprocess.run(["openssl", "ts", "-query", "-digest", sha256, "-sha256", "-cert",
                    "-no_nonce", "-out", "query.tsq"], cwd=folder, check=True,
                   capture_output=True)
    subprocess.run(["openssl", "ts", "-reply", "-config", str(config), "-queryfile",
                    "query.tsq", "-signer", str(cert), "-inkey", str(key), "-out",
                    "reply.tsr"], cwd=folder, check=True, capture_output=True)
    return (folder / "reply.tsr").read_bytes()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def backend_url(request: pytest.FixtureRequest,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database URL of its own for the module, on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'test.sqlite3'}"
        return
    with postgres_schema() as url:
        yield url


@pytest.fixture(scope="module")
def case(backend_url: str, tmp_path_factory: pytest.TempPathFactory) -> ExportableCase:
    """One case opened through the daemon and SMTP, its first mail time-stamped."""
    base = tmp_path_factory.mktemp("case")
    config = make_config(base / "data", backend_url)
    png = encoded(screenshot_with_text("Du er ikke velkommen her"), "PNG")
    jpeg = encoded(screenshot_with_text("Vi ved hvor du bor").resize((660, 180)), "JPEG",
                   quality=80)
    tiff = encoded(screenshot_with_text("Skannet brev").resize((550, 150)), "TIFF")
    sent = [first_report(png, jpeg)]
    with DaemonThread(config) as daemon:
        database = Database(config.storage.effective_database_url)
        try:
            send(daemon, sent[0])

            def the_case() -> str:
                with database.read() as session:
                    return session.execute(select(Case.number)).scalar() or ""

            number = wait_until(the_case, timeout=30, message="the case")
            sent.append(follow_up(number, tiff))
            send(daemon, sent[1])

            def extracted() -> bool:
                found = get_case(database, number)
                assert found is not None
                rows = case_messages(database, found.id)
                return len(rows) == 2 and all(row.extracted_at and row.state == "processed"
                                              for row in rows)

            wait_until(extracted, timeout=60, message="both mails extracted")
            add_note_by_number(database, number, author=MANAGER, text=HOSTILE_NOTE)
        finally:
            database.dispose()
    tsa = make_tsa(base / "tsa")
    database = Database(config.storage.effective_database_url)
    try:
        first = hashlib.sha256(sent[0]).hexdigest()
        token = BlobStore(config.storage.derived_root).put(time_stamp(tsa, first))
        with database.write() as session:
            session.add(MessageTimestamp(message_sha256=first, tsa_url="http://tsa.test/",
                                         token_sha256=token, gen_time=utc_now(),
                                         created_at=utc_now()))
    finally:
        database.dispose()
    ca = tsa[0].parent / "ca.pem"
    config_file = write_toml(base / "config.toml", {
        "storage": {"data_dir": config.storage.data_dir, "database_url": backend_url},
        "timestamp": {"ca_file": str(ca)},
    })
    return ExportableCase(
        config_file=config_file, database_url=backend_url,
        blob_root=config.storage.blob_root, derived_root=config.storage.derived_root,
        tsa_ca=ca, number=number, sent=sent,
        pictures={name: hashlib.sha256(data).hexdigest()
                  for name, data in (("png", png), ("jpeg", jpeg), ("tiff", tiff))},
        passwd_sha256=hashlib.sha256(b"root:x:0:0:root:/root:/bin/sh\n").hexdigest())


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the module."""
    with chromium() as running:
        yield running


# -- helpers -------------------------------------------------------------------------


def run_export(case: ExportableCase, *args: str) -> Any:
    return CliRunner().invoke(main, ["--config", str(case.config_file), "export", *args])


def exported_events(case: ExportableCase) -> list[AuditEvent]:
    database = case.database()
    try:
        return [event for event in audit.events_for_case(database, case.number)
                if event.action == "exported"]
    finally:
        database.dispose()


def bundle_files(root: Path) -> dict[str, Path]:
    return {path.relative_to(root).as_posix(): path
            for path in sorted(root.rglob("*")) if path.is_file()}


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sha256sum_check(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sha256sum", "-c", "--strict", "SHA256SUMS"], cwd=folder,
                          capture_output=True, text=True, check=False)


def leftovers(folder: Path) -> list[str]:
    return [path.name for path in folder.iterdir() if path.name.endswith(".tmp")]


# -- tests ---------------------------------------------------------------------------


def test_safe_filenames_never_leave_the_folder() -> None:
    cases = {
        "../../etc/passwd": "passwd",
        "..\\..\\Windows\\win.ini": "win.ini",
        "a\x00b.png": "ab.png",
        "\u202egnp.exe": "gnp.exe",
        "line\nbreak.txt": "linebreak.txt",
        ".bashrc": "bashrc",
        'a:b*c?"d<e>f|g.txt': "a_b_c__d_e_f_g.txt",
        "  spaced   out .txt ": "spaced out .txt",
        "ends in dots...": "ends in dots",
    }
    for hostile, expected in cases.items():
        assert safe_filename(hostile, "attachment", "text/plain") == expected, hostile
    for empty in (None, "", "..", "../", "/", "\x00\x01", " . "):
        assert safe_filename(empty, "attachment", "image/png") == "attachment.png", empty
    assert safe_filename(None, "body", "text/plain") == "body.txt"
    assert safe_filename(None, "../x", None) == "x.bin"
    long_name = "æøå" * 100 + ".jpg"
    capped = safe_filename(long_name, "attachment", "image/jpeg")
    assert capped.endswith(".jpg") and len(capped.encode("utf-8")) <= MAX_NAME_BYTES
    capped.encode("utf-8").decode("utf-8")  # cut on a character boundary


def test_export_to_a_folder_is_checked_by_standard_tools(case: ExportableCase,
                                                         tmp_path: Path) -> None:
    before = len(exported_events(case))
    out = tmp_path / "bundle"
    out.mkdir()  # an empty folder is fine
    result = run_export(case, case.number, "--out", str(out))
    assert result.exit_code == 0, result.output
    files = bundle_files(out)
    assert result.output.strip() == f"{out}  ({len(files)} filer)"  # Danish, the default

    # sha256sum -c checks everything but itself; a flipped byte fails it.
    check = sha256sum_check(out)
    assert check.returncode == 0, check.stdout + check.stderr
    assert sorted(line.rsplit(": ", 1)[0] for line in check.stdout.splitlines()) == sorted(
        name for name in files if name != "SHA256SUMS")
    assert all(line.endswith(": OK") for line in check.stdout.splitlines())

    # Sensitive data: files 0600, folders 0700.
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    for path in out.rglob("*"):
        assert stat.S_IMODE(path.stat().st_mode) == (0o700 if path.is_dir() else 0o600), path

    # The originals are the sent bytes, named by their hash.
    for raw in case.sent:
        sha256 = hashlib.sha256(raw).hexdigest()
        assert files[f"originals/{sha256}.eml"].read_bytes() == raw
    assert len([name for name in files if name.startswith("originals/")]) == 2

    # The manifest lists every other file with matching hash and size.
    manifest = json.loads(files["manifest.json"].read_text("utf-8"))
    listed = {entry["path"]: entry for entry in manifest["files"]}
    assert set(listed) == set(files) - {"manifest.json", "SHA256SUMS"}
    for path, entry in listed.items():
        assert entry["sha256"] == sha256_file(files[path]), path
        assert entry["size"] == files[path].stat().st_size, path
    assert manifest["case"] == case.number
    assert manifest["exporter"].startswith("cli:")
    assert manifest["tool"] == {"name": "chikanemail", "version": __version__}
    assert manifest["exported_at"].endswith("Z")
    for entry in manifest["files"]:
        if entry["kind"] in ("original", "evidence"):
            assert entry["received_at"].endswith("Z")
            assert re.search(r" CES?T \(\+0[12]00\)$", entry["received_at_local"])
            assert entry["envelope"]["source"] == "smtp"
            assert entry["envelope"]["mail_from"] == REPORTER
            assert entry["envelope"]["rcpt_tos"] == [INTAKE_ADDRESS]
            assert {"peer", "helo", "tls"} <= set(entry["envelope"])
        if entry["kind"] == "evidence":
            assert entry["path"].startswith(f"evidence/{entry['sha256']}-")
            parent = entry["parent"]
            assert parent["sha256"] in {hashlib.sha256(raw).hexdigest() for raw in case.sent}
            assert parent["kind"] == "message" and parent["part_path"] is None
    roles = sorted(entry["role"] for entry in manifest["files"] if entry["kind"] == "evidence")
    assert roles == ["attachment"] * 5 + ["body"] * 2
    pictures = {entry["sha256"] for entry in manifest["files"] if entry.get("image")}
    assert pictures == set(case.pictures.values())

    # The custody trail: every hash recomputes with printf and sha256sum.
    with files["custody.csv"].open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows
    previous: dict[str, str] | None = None
    for row in rows:
        recomputed = subprocess.run(
            ["sh", "-c", "printf '%s%s' \"$1\" \"$2\" | sha256sum", "sh", row["prev_hash"],
             row["canonical_json"]], capture_output=True, text=True, check=True).stdout
        assert recomputed.split()[0] == row["hash"], row["seq"]
        canonical = json.loads(row["canonical_json"])
        assert (str(canonical["seq"]), canonical["action"], canonical["actor"]) == (
            row["seq"], row["action"], row["actor"])
        assert json.loads(row["details_json"]) == canonical["details"]
        assert re.search(r" CES?T \(\+0[12]00\)$", row["time_local"])
        if previous is not None and int(previous["seq"]) + 1 == int(row["seq"]):
            assert row["prev_hash"] == previous["hash"]
        previous = row
    actions = {row["action"] for row in rows}
    assert {"received", "evidence-extracted", "case-opened", "note"} <= actions
    assert int(rows[-1]["seq"]) <= manifest["audit_head"]["seq"]

    # The time-stamp verifies with openssl and the copied CA.
    first = hashlib.sha256(case.sent[0]).hexdigest()
    assert f"timestamps/{first}.tsr" in files and "timestamps/tsa-ca.pem" in files
    assert f"timestamps/{hashlib.sha256(case.sent[1]).hexdigest()}.tsr" not in files
    verified = subprocess.run(["openssl", "ts", "-verify", "-digest", first, "-in",
                               f"timestamps/{first}.tsr", "-CAfile", "timestamps/tsa-ca.pem"],
                              cwd=out, capture_output=True, text=True, check=False)
    assert verified.returncode == 0 and "Verification: OK" in verified.stdout, verified.stderr
    readme = files["README.txt"].read_text("utf-8")
    assert "sha256sum -c SHA256SUMS" in readme and "Sådan kontrolleres mappen" in readme
    assert "How to check the bundle" in readme  # Danish first, then English
    assert (f"openssl ts -verify -digest {first} -in timestamps/{first}.tsr "
            "-CAfile timestamps/tsa-ca.pem") in readme
    # Not registered yet (issue 22): the report and registration.html say so.
    assert "Sagen er ikke registreret." in files["report.html"].read_text("utf-8")
    assert json.loads(files["registration.json"].read_text("utf-8"))["versions"] == []

    # The export is one audit event, naming the bundle and the manifest.
    events = exported_events(case)
    assert len(events) == before + 1
    event = events[-1]
    assert event.actor.startswith("cli:")
    assert event.details == {"bundle": "bundle", "files": len(files),
                             "manifest_sha256": sha256_file(files["manifest.json"])}
    assert event.prev_hash == manifest["audit_head"]["hash"]
    assert event.seq == manifest["audit_head"]["seq"] + 1

    # A flipped byte is found.
    victim = files[f"originals/{first}.eml"]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    victim.chmod(0o600)
    victim.write_bytes(bytes(data))
    failed = sha256sum_check(out)
    assert failed.returncode != 0
    assert f"originals/{first}.eml: FAILED" in failed.stdout


def test_export_to_a_zip_holds_the_same_tree(case: ExportableCase, tmp_path: Path) -> None:
    before = len(exported_events(case))
    out = tmp_path / "sag.zip"
    result = run_export(case, case.number, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    with zipfile.ZipFile(out) as archive:
        names = archive.namelist()
        assert all(name.startswith("sag/") for name in names)
        for info in archive.infolist():
            mode = stat.S_IMODE(info.external_attr >> 16)
            assert mode == (0o700 if info.is_dir() else 0o600), info.filename
        archive.extractall(tmp_path / "unpacked")
    root = tmp_path / "unpacked" / "sag"
    files = bundle_files(root)
    assert result.output.strip() == f"{out}  ({len(files)} filer)"  # Danish, the default
    check = sha256sum_check(root)
    assert check.returncode == 0, check.stdout + check.stderr
    expected = {"manifest.json", "SHA256SUMS", "custody.csv", "report.html", "README.txt",
                "registration.json", "registration.html", "timestamps/tsa-ca.pem"}
    assert expected <= set(files)
    assert {name.split("/")[0] for name in files} == {
        "originals", "evidence", "timestamps", *(name for name in expected if "/" not in name)}
    assert leftovers(tmp_path) == []
    events = exported_events(case)
    assert len(events) == before + 1 and events[-1].details["bundle"] == "sag.zip"

    # Nothing is overwritten: an existing zip, a folder with something in it.
    again = run_export(case, case.number, "--out", str(out))
    assert again.exit_code != 0 and "already exists" in again.output
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    refused = run_export(case, case.number, "--out", str(full))
    assert refused.exit_code != 0 and "not empty" in refused.output
    assert [path.name for path in full.iterdir()] == ["keep.txt"]
    unknown = run_export(case, "1999-0001", "--out", str(tmp_path / "none"))
    assert unknown.exit_code != 0 and "no case 1999-0001" in unknown.output
    assert not (tmp_path / "none").exists()
    assert len(exported_events(case)) == before + 1
    assert leftovers(tmp_path) == []


def test_hostile_file_names_stay_inside_evidence(case: ExportableCase, tmp_path: Path) -> None:
    database = case.database()
    try:
        out = export_case(database, case.number, tmp_path / "b", case.options()).path
    finally:
        database.dispose()
    evidence = out / "evidence"
    names = sorted(path.name for path in evidence.iterdir())
    assert all(path.is_file() and path.resolve().parent == evidence.resolve()
               for path in evidence.iterdir())
    for name in names:
        sha256, _, rest = name.partition("-")
        assert HEX64.fullmatch(sha256) and rest and not rest.startswith(".")
        assert "/" not in rest and "\\" not in rest and not any(ord(ch) < 32 for ch in rest)
        assert sha256_file(evidence / name) == sha256
    assert f"{case.passwd_sha256}-passwd" in names
    assert any(name.endswith("-hiddenevil.sh") for name in names)
    assert not (tmp_path / "etc").exists() and sorted(os.listdir(tmp_path)) == ["b"]
    manifest = json.loads((out / "manifest.json").read_text("utf-8"))
    declared = {entry["filename"] for entry in manifest["files"] if entry["kind"] == "evidence"}
    assert HOSTILE_NAME in declared  # the manifest keeps the name as it was sent


def test_a_failed_export_leaves_nothing(case: ExportableCase, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    before = len(exported_events(case))
    database = case.database()
    try:
        # A blob that no longer matches its name stops the export.
        damaged = tmp_path / "blobs"
        shutil.copytree(case.blob_root, damaged)
        victim = BlobStore(damaged).path(case.pictures["jpeg"])
        victim.chmod(0o600)
        victim.write_bytes(victim.read_bytes()[:-10])
        with pytest.raises(ExportError, match="no longer matches its name"):
            export_case(database, case.number, tmp_path / "out",
                        case.options(blob_root=damaged))
        # A database that cannot record the export stops it too, before the rename.
        def broken(*args: object, **kwargs: object) -> None:
            raise RuntimeError("database went away")

        monkeypatch.setattr(audit, "record_committed", broken)
        with pytest.raises(RuntimeError):
            export_case(database, case.number, tmp_path / "out.zip", case.options())
    finally:
        database.dispose()
    assert sorted(os.listdir(tmp_path)) == ["blobs"]
    monkeypatch.undo()
    assert len(exported_events(case)) == before


def export_in_both_languages(case: ExportableCase, tmp_path: Path) -> tuple[Path, Path]:
    """The case's bundle in Danish and in English: their folders."""
    database = case.database()
    try:
        danish = export_case(database, case.number, tmp_path / "da", case.options()).path
        english = export_case(database, case.number, tmp_path / "en",
                              case.options(language="en")).path
    finally:
        database.dispose()
    return danish, english


# A time in the report's text and in its timeline, as each language writes it.
TIMES_IN_WORDS = {
    "Bevismappe for sag": (
        r"(mandag|tirsdag|onsdag|torsdag|fredag|lørdag|søndag) \d{1,2}\. [a-zæøå]+ \d{4} "
        r"kl\. \d\d\.\d\d\.\d\d \(CES?T\)",
        r"\d\d\.\d\d\.\d{4} \d\d\.\d\d\.\d\d \(CES?T\)"),
    "Evidence bundle for case": (
        r"(Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day \d{1,2} [A-Z][a-z]+ \d{4}, "
        r"\d\d:\d\d:\d\d \(CES?T\)",
        r"\d{1,2} [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d \(CES?T\)"),
}


def test_report_shows_every_picture_offline(case: ExportableCase, tmp_path: Path,
                                            browser: Browser) -> None:
    danish, english = export_in_both_languages(case, tmp_path)
    readme = (english / "README.txt").read_text("utf-8")
    assert readme.startswith(f"Evidence bundle for case {case.number}\n")
    assert "Sådan" not in readme  # English alone when the language is English
    html = (danish / "report.html").read_text("utf-8")
    assert ("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
            "img-src data:; style-src 'unsafe-inline'\">") in html
    assert "<script" not in html.lower() and "&lt;script&gt;alert(1)" in html
    expected_shown = {case.pictures["png"]: "original", case.pictures["jpeg"]: "original",
                      case.pictures["tiff"]: "thumbnail"}
    for folder, title in ((danish, "Bevismappe for sag"), (english, "Evidence bundle for case")):
        with open_file(browser, folder / "report.html") as opened:
            page = opened.page
            assert page.title() == f"{title} {case.number}"
            assert page.evaluate("document.scripts.length") == 0
            images = page.evaluate("""() => Array.from(document.images).map(img => ({
                complete: img.complete, width: img.naturalWidth, src: img.src,
                sha256: img.closest('figure').dataset.sha256,
                shown: img.closest('figure').dataset.shown,
                caption: img.closest('figure').querySelector('figcaption').innerText}))""")
            assert len(images) == 3
            assert all(image["complete"] and image["width"] > 0 for image in images), [
                (image["sha256"], image["complete"], image["width"]) for image in images]
            assert {image["sha256"]: image["shown"] for image in images} == expected_shown
            for image in images:
                assert f"SHA-256 {image['sha256']}" in image["caption"]
                data = base64.b64decode(image["src"].split(",", 1)[1])
                if image["shown"] == "original":  # inlined as received, byte for byte
                    assert hashlib.sha256(data).hexdigest() == image["sha256"]
                else:
                    assert data.startswith(b"\xff\xd8\xff")  # the derived JPEG thumbnail
            labels = page.locator("figcaption code.sha256").all_inner_texts()
            assert sorted(labels) == sorted(expected_shown)
            body = page.inner_text("body")
            assert "kasper@eksempel.example" in body and "Du er ikke velkommen" in body
            assert "velkommen" in page.locator("pre.ocr").first.inner_text().casefold()
            # Times as the reader writes them, to the second, in the workplace's zone.
            assert re.search(TIMES_IN_WORDS[title][0], body)  # in the text
            assert re.search(TIMES_IN_WORDS[title][1], body)  # in the timeline's column
            assert not re.search(r"\d{4}-\d\d-\d\d \d\d:", body)  # no ISO times
            assert page.locator("table.timeline tr.audit").count() >= 3
            assert page.locator("table.checklist tr.step").count() == 5
            assert page.locator("pre.note").first.inner_text() == HOSTILE_NOTE
            assert page.locator("link, iframe, object, embed").count() == 0
            assert page.evaluate("document.documentElement.scrollWidth") <= 1200  # no overflow
            assert all(url.startswith(("file:", "data:")) for url in opened.requests), \
                opened.requests
            shot = tmp_path / f"{folder.name}.png"
            page.screenshot(path=str(shot), full_page=True)
        with Image.open(shot) as picture:
            grey = picture.convert("L")
            histogram = grey.histogram()
            dark = sum(histogram[:128])
            assert dark > 0.005 * grey.width * grey.height  # text and pictures, not blank
            assert len(picture.convert("RGB").getcolors(1 << 24) or []) > 50


@dataclass
class UnverifiedFlags:
    """What `unverified_follow_up` set: the case's number and its two mails' SHA-256."""

    number: str
    report: str
    follow_up: str


@pytest.fixture
def unverified_follow_up(case: ExportableCase) -> Iterator[UnverifiedFlags]:
    """The case as if its report's sender were not vouched for and its follow-up forged
    (DKIM fails, its command refused); the flags are put back afterwards (the audit events
    stay: the chain only grows)."""
    report, follow_up = (hashlib.sha256(raw).hexdigest() for raw in case.sent)
    database = case.database()
    with database.read() as session:
        before_case = session.execute(select(Case.sender_unverified).where(
            Case.number == case.number)).scalar_one()
        before = {row.sha256: (row.unverified, row.sender_check) for row in session.execute(
            select(Message.sha256, Message.unverified, Message.sender_check).where(
                Message.sha256.in_([report, follow_up])))}

    def flag(sender_unverified: bool, values: dict[str, tuple[bool, str | None]]) -> None:
        with database.write() as session:
            session.execute(update(Case).where(Case.number == case.number)
                            .values(sender_unverified=sender_unverified))
            for sha256, (unverified, check) in values.items():
                session.execute(update(Message).where(Message.sha256 == sha256)
                                .values(unverified=unverified, sender_check=check))

    try:
        flag(True, {report: (False, "no-signature"), follow_up: (True, "dkim-fail")})
        with database.write() as session:
            audit.record(session, "command-refused", case_number=case.number,
                         message_sha256=follow_up,
                         details={"reason": "token-for-another-case", "commands": ["luk"]})
        yield UnverifiedFlags(case.number, report, follow_up)
    finally:
        flag(before_case, before)
        database.dispose()


def test_unverified_senders_are_marked_in_the_manifest_and_the_report(
        case: ExportableCase, unverified_follow_up: UnverifiedFlags, tmp_path: Path,
        browser: Browser) -> None:
    flags = unverified_follow_up
    danish, english = export_in_both_languages(case, tmp_path)
    manifest = json.loads((danish / "manifest.json").read_text("utf-8"))
    assert manifest["sender_unverified"] is True
    assert {message["sha256"]: (message["unverified"], message["sender_check"])
            for message in manifest["messages"]} == {
        flags.report: (False, "no-signature"), flags.follow_up: (True, "dkim-fail")}
    assert {entry["sha256"]: entry["unverified"] for entry in manifest["files"]
            if entry["kind"] == "original"} == {flags.report: False, flags.follow_up: True}

    words = {
        danish: ("afsender ikke verificeret",
                 "kunne ikke bevises at komme fra den, den udgiver sig for; gemt som bevis, "
                 "ændrede intet",
                 "Anmelderens afsenderadresse kunne ikke verificeres; der blev ikke sendt "
                 "kvittering",
                 "mailens DKIM-signatur er ugyldig", "mailen har ingen DKIM-signatur",
                 "Kommando afvist (luk): svaradressen hører til en anden sag"),
        english: ("sender not verified",
                  "could not be proven to come from whom it claims to be from; kept as "
                  "evidence, changed nothing",
                  "The reporter's sender address could not be verified; no receipt was sent",
                  "the mail's DKIM signature is invalid", "the mail has no DKIM signature",
                  "Command refused (luk): the reply address belongs to another case"),
    }
    for folder, (mark, why, case_line, forged_check, report_check, refused) in words.items():
        with open_file(browser, folder / "report.html") as opened:
            page = opened.page
            assert case_line in page.locator("p.sender-unverified").inner_text()
            sections = page.locator("section.message")
            assert sections.count() == 2
            first, second = sections.nth(0).inner_text(), sections.nth(1).inner_text()
            assert mark not in first and report_check in first
            assert second.count(mark) >= 2 and why in second and forged_check in second
            assert page.locator("section.message p.unverified-note").count() == 1
            body = page.inner_text("body")
            assert refused in body
            for code in ("dkim-fail", "no-signature", "token-for-another-case"):
                assert code not in body, code
