"""R4 (issue 9): hostile inputs through intake and the pipeline, each in a child process.

Each input below is built by a function here, stored through the accept path and processed
by the daemon's pipeline (OCR off) in a child (tests/faults/hostile_child.py) that runs in a
network namespace of its own without interfaces (`unshare -n`, when we may) and with an
audit hook that logs any network attempt or any file opened for writing outside its data
dir. Asserted for each: wall time and peak RSS under the bounds below, no network attempt,
nothing written outside the data dir (the audit log, and cwd, HOME, TMPDIR and the data
dir's parent unchanged), the raw row and its exact blob, and the message processed into a
case with the defect or flag that says what was wrong with it.

`pytest -s` prints a table (input, seconds, peak MiB, outcome); with
CHIKANEMAIL_FAULT_FIGURES=path the figures are also written there as JSON.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from tests.support import REPO_ROOT

pytestmark = pytest.mark.faults

# Bounds per input, from measurements on the shared 2-core machine (slowest: the 10,000-part
# mail, about 15 s and 170 MiB; an interpreter with the pipeline loaded is about 140 MiB),
# with a wide margin for a busy machine.
MAX_SECONDS = 60.0
MAX_PEAK_MIB = 1024.0
FIGURES_ENV = "CHIKANEMAIL_FAULT_FIGURES"
SENDER = "Ansat <ansat@kommune.example>"
TO = "chikanemail@kommune.example"


def _report(subject: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = SENDER
    message["To"] = TO
    message["Subject"] = subject
    message["Message-ID"] = f"<{subject.replace(' ', '-')}@kommune.example>"
    return message


def many_parts_mail() -> bytes:
    """multipart/mixed with 10,000 small text parts."""
    boundary = b"b0undary"
    parts = [b"From: " + SENDER.encode() + b"\r\nTo: " + TO.encode()
             + b"\r\nSubject: 10000 parts\r\nMIME-Version: 1.0\r\n"
             b"Content-Type: multipart/mixed; boundary=\"b0undary\"\r\n\r\n"]
    for index in range(10_000):
        parts.append(b"--" + boundary + b"\r\nContent-Type: text/plain\r\n\r\npart %d\r\n" % index)
    parts.append(b"--" + boundary + b"--\r\n")
    return b"".join(parts)


def huge_header_mail() -> bytes:
    """A 1 MB Subject line of short words (the stdlib's header parser is quadratic in it)."""
    return (b"From: " + SENDER.encode() + b"\r\nTo: " + TO.encode() + b"\r\nSubject: "
            + b"chikane " * (1024 * 1024 // 8) + b"\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n\r\nSe emnelinjen.\r\n")


def nested_mail(levels: int = 100) -> bytes:
    """100 levels of message/rfc822, each forwarding the one inside it."""
    inner = _report("level 0")
    inner.set_content("the innermost original\n")
    for level in range(1, levels + 1):
        outer = _report(f"level {level}")
        outer.set_content(f"forwarded {level}\n")
        outer.add_attachment(inner)
        inner = outer
    return inner.as_bytes()


def traversal_names_mail() -> bytes:
    """Attachments named to climb out of any folder, or with NUL bytes in their names."""
    message = _report("filenames")
    message.set_content("see the attachments\n")
    names = ["../../../../tmp/evil", "/etc/cron.d/evil", "..\\..\\windows\\evil.bat",
             "evil\x00.txt"]
    for name in names:
        message.add_attachment(b"payload\n", maintype="application", subtype="octet-stream",
                               filename=name)
    raw = message.as_bytes()
    # And one named with an RFC 2231 encoded NUL and traversal, as a hostile sender writes it.
    return raw.replace(b"\n\n", b"\n\n", 1).replace(
        b'filename="/etc/cron.d/evil"', b"filename*=utf-8''..%2F..%2Fevil%00.sh", 1)


def html_mail() -> bytes:
    """HTML with scripts, remote images, a remote stylesheet, an iframe and CSS urls."""
    message = _report("html")
    message.set_content("<html><head><link rel=stylesheet href='http://evil.example/s.css'>"
                        "<script>fetch('http://evil.example/x')</script></head><body>"
                        "<img src='http://evil.example/pixel.png'>"
                        "<img src='https://evil.example/a.gif' alt='tracker'>"
                        "<iframe src='http://evil.example/frame'></iframe>"
                        "<div style=\"background:url(http://evil.example/bg.png)\">"
                        "Du er ikke velkommen</div>"
                        "<object data='http://evil.example/o.swf'></object>"
                        "<script src='http://evil.example/s.js'></script></body></html>",
                        subtype="html")
    return message.as_bytes()


def zip_bomb_mail() -> bytes:
    """A zip with one member of 1 GiB of zeros (about 1 MB deflated), attached."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive, \
            archive.open("zeros.bin", "w", force_zip64=True) as member:
        chunk = bytes(16 * 1024 * 1024)
        for _ in range(64):
            member.write(chunk)
    message = _report("zip bomb")
    message.set_content("se vedhæftede fil\n")
    message.add_attachment(buffer.getvalue(), maintype="application", subtype="zip",
                           filename="bevis.zip")
    return message.as_bytes()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def png_bomb() -> bytes:
    """A 30000 x 30000 greyscale PNG (900 M pixels) of zeros, under 1 MB compressed."""
    side = 30_000
    compressor = zlib.compressobj(9)
    row = bytes(side + 1)  # filter byte 0 and a row of black
    idat = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", idat)
            + _png_chunk(b"IEND", b""))


def png_bomb_mail() -> bytes:
    """The PNG bomb as a screenshot attachment."""
    message = _report("png bomb")
    message.set_content("skærmbillede\n")
    message.add_attachment(png_bomb(), maintype="image", subtype="png",
                           filename="screenshot.png")
    return message.as_bytes()


@dataclass(frozen=True)
class Hostile:
    name: str
    build: Callable[[], bytes]
    expect: Callable[[dict[str, Any]], bool]  # the recorded finding for this input
    expected: str  # what `expect` looks for, for the failure message


def _has_flag(flag: str) -> Callable[[dict[str, Any]], bool]:
    return lambda result: flag in result["flags"]


def _has_defect(defect: str) -> Callable[[dict[str, Any]], bool]:
    return lambda result: defect in result["defects"]


INPUTS = [
    Hostile("10,000-part MIME", many_parts_mail,
            lambda result: result["parts"] == 1000 and "PartLimitReached" in result["defects"],
            "the first 1,000 parts ([extract] max_parts) and defect PartLimitReached"),
    Hostile("1 MB header line", huge_header_mail, _has_defect("HeaderTooLongToParse"),
            "defect HeaderTooLongToParse"),
    Hostile("100 nested message/rfc822", nested_mail, _has_flag("depth-limit-reached"),
            "flag depth-limit-reached"),
    Hostile("traversal and NUL filenames", traversal_names_mail,
            lambda result: any("evil" in name for name in result["filenames"]),
            "the names kept as metadata"),
    Hostile("HTML scripts, remote images", html_mail, lambda result: result["parts"] == 1,
            "one body part"),
    Hostile("zip bomb (1 GiB member)", zip_bomb_mail, lambda result: result["parts"] == 2,
            "the zip kept as one attachment, not opened"),
    Hostile("PNG bomb 30000x30000", png_bomb_mail, _has_flag("image-decompression-bomb"),
            "flag image-decompression-bomb"),
]


@dataclass
class Figure:
    name: str
    seconds: float
    peak_mib: float
    outcome: str


FIGURES: list[Figure] = []


@pytest.fixture(scope="module", autouse=True)
def _figures() -> Iterator[None]:
    """Print the table at the end, and write it where the benchmark runner asks."""
    yield
    if not FIGURES:
        return
    lines = [f"{'input':32} {'seconds':>8} {'peak MiB':>9}  outcome"]
    lines += [f"{f.name:32} {f.seconds:8.2f} {f.peak_mib:9.1f}  {f.outcome}" for f in FIGURES]
    print("\nR4 hostile inputs\n" + "\n".join(lines))
    target = os.environ.get(FIGURES_ENV)
    if target:
        Path(target).write_text(json.dumps(
            [{"input": f.name, "seconds": round(f.seconds, 3), "peak_mib": round(f.peak_mib, 1),
              "outcome": f.outcome} for f in FIGURES], indent=2), encoding="utf-8")


def _can_unshare_network() -> bool:
    unshare = shutil.which("unshare")
    if unshare is None:
        return False
    probe = subprocess.run([unshare, "-n", "true"], capture_output=True, check=False)
    return probe.returncode == 0


UNSHARE = _can_unshare_network()


def _listing(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*")}


@pytest.fixture
def sandbox() -> Iterator[Path]:
    """A fresh folder on tmpfs when there is one (the 10,000 blobs are fsync'd each)."""
    parent = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    base = Path(tempfile.mkdtemp(prefix="chik-hostile-", dir=parent))
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("hostile", INPUTS, ids=lambda hostile: hostile.name)
def test_hostile_input_is_kept_bounded_and_contained(hostile: Hostile, sandbox: Path) -> None:
    mail_file = sandbox / "input.eml"
    mail_file.write_bytes(hostile.build())
    work = sandbox / "run"  # the data dir's parent: nothing may appear here but the data dir
    home, tmp, cwd = sandbox / "home", sandbox / "tmp", sandbox / "cwd"
    for folder in (work, home, tmp, cwd):
        folder.mkdir()
    data_dir = work / "data"
    events = sandbox / "events.log"
    events.touch()
    sandbox_before = _listing(sandbox)

    command = [sys.executable, "-m", "tests.faults.hostile_child", str(data_dir),
               str(mail_file), str(events)]
    if UNSHARE:
        command = ["unshare", "-n", *command]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
           "TMPDIR": str(tmp), "PYTHONPATH": str(REPO_ROOT), "PYTHONDONTWRITEBYTECODE": "1",
           "LANG": "C.UTF-8"}
    started = time.monotonic()
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    try:
        stdout, stderr = process.communicate(timeout=MAX_SECONDS * 2)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        pytest.fail(f"{hostile.name}: still running after {MAX_SECONDS * 2:.0f} s")
    seconds = time.monotonic() - started
    assert process.returncode == 0, stderr.decode(errors="replace")[-3000:]
    result = json.loads(stdout.decode().strip().splitlines()[-1])
    peak_mib = result["peak_kib"] / 1024  # the child's own peak RSS (getrusage, at its end)
    outcome = (f"{result['state']}, {result['parts']} parts, defects "
               f"{','.join(result['defects']) or '-'}; flags {','.join(result['flags']) or '-'}")
    FIGURES.append(Figure(hostile.name, seconds, peak_mib, outcome[:160]))

    assert events.read_text(encoding="utf-8") == "", "network or write outside the data dir"
    assert _listing(home) == set() and _listing(tmp) == set() and _listing(cwd) == set()
    assert {path.name for path in work.iterdir()} == {"data"}
    assert {path for path in _listing(sandbox) if not path.startswith("run/data/")} == (
        sandbox_before | {"run/data"}), "a file appeared outside the data dir"
    assert result["blob_intact"], "the stored raw is not the exact input"
    assert result["state"] == "processed" and result["case"], result
    assert hostile.expect(result), f"{hostile.name}: expected {hostile.expected}: {result}"
    assert seconds < MAX_SECONDS, f"{hostile.name} took {seconds:.1f} s"
    assert peak_mib < MAX_PEAK_MIB, f"{hostile.name} peaked at {peak_mib:.0f} MiB"
