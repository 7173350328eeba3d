"""Extraction time and peak memory for two mails: the corpus's largest, and a 30 MB report
carrying ten 3 MB photos.

Each case runs in a fresh Python process (so the peak RSS, VmHWM, is the extraction's own),
with OCR off and then on (OCR needs tesseract with Danish data). Run from the repository root:

    .venv/bin/python bench/extract_figures.py

It prints, per case: the mail's size, the parts found, wall time and peak RSS over the
process's idle baseline. It exits non-zero if an extraction fails.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
from email.message import EmailMessage
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO.parent / "shared" / "corpus"

_CHILD = r"""
import json, sys, time
from pathlib import Path

def vm(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0

from intake.pipeline.extract import EvidenceExtractor
from intake.parse.ocr import OcrEngine
from intake.service.settings import ExtractSettings
from storage.blobstore import BlobStore

mail, work, ocr = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "on"
store, derived = BlobStore(work / "blobs"), BlobStore(work / "derived")
store.ensure_root(); derived.ensure_root()
engine = OcrEngine() if ocr else None
if engine is not None and not engine.available:
    print(json.dumps({"error": "tesseract with dan+eng is not installed"})); sys.exit(1)
raw = mail.read_bytes()
idle = vm("VmHWM")
started = time.perf_counter()
extraction = EvidenceExtractor(store, derived, ExtractSettings(ocr=ocr), engine).extract(raw)
elapsed = time.perf_counter() - started
print(json.dumps({
    "seconds": elapsed, "idle_mib": idle, "peak_mib": vm("VmHWM"), "parts": len(extraction.records),
    "images": sum(1 for r in extraction.records if r.image),
    "ocr_ok": sum(1 for r in extraction.records if r.ocr_status == "ok"),
}))
"""


def photo_report(photos: int, photo_bytes: int) -> bytes:
    """A report mail with `photos` distinct JPEG photos of about `photo_bytes` each."""
    from PIL import Image

    report = EmailMessage()
    report["From"] = "Ansat <ansat@kommune.example>"
    report["To"] = "chikanemail@kommune.example"
    report["Subject"] = "Billeder af beskederne"
    report.set_content("Her er billederne af beskederne på min telefon.\n")
    for index in range(photos):
        side = 1400
        while True:
            noise = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
            buffer = io.BytesIO()
            noise.save(buffer, "JPEG", quality=90)
            if buffer.tell() >= photo_bytes or side > 4000:
                break
            side = int(side * (photo_bytes / buffer.tell()) ** 0.5) + 16
        report.add_attachment(buffer.getvalue(), maintype="image", subtype="jpeg",
                              filename=f"IMG_{index:04d}.jpg")
    return report.as_bytes()


def run_case(label: str, mail: Path, ocr: str) -> dict[str, float]:
    """Extract one mail in a fresh process and return its figures."""
    with tempfile.TemporaryDirectory(prefix="chik-bench-") as work:
        done = subprocess.run([sys.executable, "-c", _CHILD, str(mail), work, ocr],
                              capture_output=True, text=True, cwd=REPO, timeout=1800,
                              check=False)
    if done.returncode != 0:
        raise SystemExit(f"{label}: extraction failed:\n{done.stdout}\n{done.stderr[-3000:]}")
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def main() -> int:
    """Build the cases, run each with OCR off and on, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=10)
    parser.add_argument("--photo-mb", type=float, default=3.0)
    parser.add_argument("--no-ocr", action="store_true", help="Skip the OCR-on runs.")
    args = parser.parse_args()

    index = [line.split("\t") for line in
             (CORPUS / "index.tsv").read_text(encoding="utf-8").splitlines()]
    largest = max(index, key=lambda row: int(row[1]))
    cases = [(f"largest corpus mail ({largest[0]})", CORPUS / largest[0])]
    with tempfile.TemporaryDirectory(prefix="chik-bench-mail-") as folder:
        photos = Path(folder) / "photos.eml"
        photos.write_bytes(photo_report(args.photos, int(args.photo_mb * 1024 * 1024)))
        cases.append((f"{args.photos} photos of {args.photo_mb:g} MB", photos))
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
        for label, mail in cases:
            size = mail.stat().st_size
            for ocr in (["off"] if args.no_ocr else ["off", "on"]):
                figures = run_case(label, mail, ocr)
                print(f"{label}: {size / 2**20:.1f} MiB, {int(figures['parts'])} parts, "
                      f"{int(figures['images'])} images, OCR {ocr}"
                      f" ({int(figures['ocr_ok'])} read): {figures['seconds']:.2f} s, "
                      f"peak RSS {figures['peak_mib']:.0f} MiB "
                      f"(+{figures['peak_mib'] - figures['idle_mib']:.0f} MiB over idle "
                      f"{figures['idle_mib']:.0f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
