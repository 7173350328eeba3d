"""The date line of a forwarded original: the hand-written reader against `dateparser`.

What it measures
    1. Which dates each reader gets right, on a fixed sample of date lines as Outlook,
       Gmail, Apple Mail and Thunderbird write them in Danish, Norwegian, Swedish, German
       and English (each with the value it must give, or None where the line misses a part,
       is relative or is ambiguous), and whether the two agree on every date line of a
       forward in the corpus (../shared/corpus).
    2. The time one date line takes, per reader: every line of the sample and of the corpus
       read 200 times in this process after a warm-up; median, p90 and max per call. For
       scale it also times `find_inline_forward` (the whole header block) per forward.
    3. dateparser's cold costs, in a fresh process each: importing it, and its first parse
       (which loads the languages' data).
    4. Forwards in the corpus with a structured date, before issue 16 (from
       tests/fixtures/forward_dates_before.json) and now (the corpus extracted, each
       original's date as the store keeps it).

    dateparser runs as it would have to in the intake: `languages=` narrowed to the block's
    language (plus English, as programs write RFC 5322 dates in any language),
    STRICT_PARSING and REQUIRE_PARTS (day, month, year), DATE_ORDER by language (DMY; MDY
    for English), only the "absolute-time" parser (no "i går"), and a line without a time
    of day refused before it is asked (it would fill in midnight).

How to run (from the repository root)
    .venv/bin/pip install -e '.[bench]'       # dateparser, for the comparison only
    .venv/bin/python bench/forward_dates.py   # about 20 s

Figures without a target. Exit status 0; 1 when the hand-written reader misses a line of
the sample or the corpus lost a structured date.
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the before-state lives with the tests

from intake.parse.forwarded.dates import parse_forward_date  # noqa: E402
from intake.parse.forwarded.original import find_inline_forward  # noqa: E402
from intake.pipeline.extract import EvidenceExtractor  # noqa: E402
from intake.service.settings import ExtractSettings  # noqa: E402
from storage.blobstore import BlobStore  # noqa: E402

CORPUS = REPO.parent / "shared" / "corpus"
BEFORE = REPO / "tests" / "fixtures" / "forward_dates_before.json"
RUNS = 200
CET = timezone(timedelta(hours=1))
EVENING = datetime(2026, 11, 19, 21, 14)
EVENING_05 = datetime(2026, 11, 19, 21, 14, 5, tzinfo=CET)

# (language of the block's labels, date line, what it must give)
SAMPLE: list[tuple[str, str, datetime | None]] = [
    ("da", "19. november 2026 21:14", EVENING),  # new Outlook
    ("da", "torsdag 19. november 2026 21:14", EVENING),  # classic Outlook
    ("da", "torsdag den 19. november 2026 21:14", EVENING),
    ("da", "tor. 19. nov. 2026 kl. 21.14", EVENING),  # Gmail
    ("da", "19. november 2026 kl. 21.14.05 CET", EVENING_05),  # Apple Mail
    ("da", "Thu, 19 Nov 2026 21:14:05 +0100", EVENING_05),  # Thunderbird
    ("da", "19.11.2026 21:14", EVENING),
    ("da", "05/11/2026 21:14", datetime(2026, 11, 5, 21, 14)),
    ("no", "torsdag 19. november 2026 21:14", EVENING),
    ("no", "tor. 19. nov. 2026 kl. 21:14", EVENING),
    ("no", "19. desember 2026 21:14", datetime(2026, 12, 19, 21, 14)),
    ("sv", "den 19 november 2026 21:14", EVENING),
    ("sv", "tors 19 nov. 2026 kl. 21:14", EVENING),
    ("sv", "19 nov. 2026 kl. 21:14", EVENING),
    ("de", "Donnerstag, 19. November 2026 21:14", EVENING),
    ("de", "Do., 19. Nov. 2026 um 21:14 Uhr", EVENING),
    ("de", "19. November 2026 um 21:14:05 MEZ", EVENING_05),
    ("de", "19.11.26 um 21:14", EVENING),
    ("en", "Thursday, November 19, 2026 9:14 PM", EVENING),
    ("en", "Thursday, 19 November 2026 21:14", EVENING),
    ("en", "Thu, Nov 19, 2026 at 9:14 PM", EVENING),
    ("en", "19 November 2026 at 21:14:05 CET", EVENING_05),
    ("en", "November 19, 2026 at 9:14:05 PM GMT+1", EVENING_05),
    ("en", "11/15/2026 9:14 PM", datetime(2026, 11, 15, 21, 14)),
    # Raw text only: a part missing, relative, or a day/month order English leaves open.
    ("da", "19. november 21:14", None),
    ("da", "november 2026 21:14", None),
    ("da", "19. november 2026", None),
    ("da", "i går kl. 21.14", None),
    ("da", "torsdag kl. 21.14", None),
    ("sv", "igår 21:14", None),
    ("de", "gestern um 21:14", None),
    ("en", "Yesterday at 9:14 PM", None),
    ("en", "05/11/2026 21:14", None),
    ("en", "Mon, 3 Mar 2025 10:15:00 -0000", None),
]

_LIBRARY_LANGUAGES = {"da": ["da", "nb"], "no": ["nb", "da"]}
_TIME_OF_DAY = re.compile(r"\d{1,2}[:.]\d{2}")
_COLD = r"""
import json, sys, time
started = time.perf_counter()
from dateparser.date import DateDataParser
imported = time.perf_counter()
parser = DateDataParser(languages=["da", "nb", "en"], settings={
    "STRICT_PARSING": True, "REQUIRE_PARTS": ["day", "month", "year"], "DATE_ORDER": "DMY",
    "PARSERS": ["absolute-time"]})
parser.get_date_data("19. november 2026 21:14")
print(json.dumps({"import_ms": (imported - started) * 1000,
                  "first_parse_ms": (time.perf_counter() - imported) * 1000}))
"""


def library_reader() -> Callable[[str, str], datetime | None] | None:
    """dateparser set up so it never fills a gap; None when it is not installed."""
    try:
        from dateparser.date import DateDataParser
    except ImportError:
        return None
    parsers: dict[str, Any] = {}

    def read(raw: str, language: str) -> datetime | None:
        if not _TIME_OF_DAY.search(raw):
            return None  # dateparser would answer midnight
        if language not in parsers:
            languages = _LIBRARY_LANGUAGES.get(language, [language])
            parsers[language] = DateDataParser(
                languages=languages + ([] if language == "en" else ["en"]),
                settings={"STRICT_PARSING": True, "REQUIRE_PARTS": ["day", "month", "year"],
                          "DATE_ORDER": "MDY" if language == "en" else "DMY",
                          "PARSERS": ["absolute-time"]})
        found: datetime | None = parsers[language].get_date_data(raw).date_obj
        return found

    return read


def hand_reader(raw: str, language: str) -> datetime | None:
    """The intake's own reader (intake.parse.forwarded.dates)."""
    return parse_forward_date(raw, language)


def same(found: datetime | None, expected: datetime | None) -> bool:
    """The same instant with the same offset, or both naive and equal, or both None."""
    if found is None or expected is None:
        return found is expected
    if (found.tzinfo is None) != (expected.tzinfo is None):
        return False
    return found == expected and found.utcoffset() == expected.utcoffset()


def timed(reader: Callable[[str, str], object], lines: list[tuple[str, str]]) -> list[float]:
    """Seconds per call, every line RUNS times, after one warm-up pass."""
    for raw, language in lines:
        reader(raw, language)
    times = []
    for _ in range(RUNS):
        for raw, language in lines:
            started = time.perf_counter()
            reader(raw, language)
            times.append(time.perf_counter() - started)
    return times


def summary(times: list[float]) -> str:
    ordered = sorted(times)
    return (f"median {statistics.median(ordered) * 1e6:7.1f} µs   "
            f"p90 {ordered[int(len(ordered) * 0.9)] * 1e6:7.1f} µs   "
            f"max {ordered[-1] * 1e3:5.2f} ms")


def corpus_originals() -> dict[str, Any]:
    """Every corpus mail extracted (no OCR): its message-level original, by file name."""
    with tempfile.TemporaryDirectory() as work:
        store, derived = BlobStore(Path(work) / "b"), BlobStore(Path(work) / "d")
        store.ensure_root()
        derived.ensure_root()
        extractor = EvidenceExtractor(store, derived, ExtractSettings(ocr=False), ocr=None)
        originals = {}
        for line in (CORPUS / "index.tsv").read_text(encoding="utf-8").splitlines():
            name = line.split("\t")[0]
            originals[name] = extractor.extract((CORPUS / name).read_bytes()).message.original
    return originals


def main() -> int:
    failures = 0
    library = library_reader()
    originals = corpus_originals()
    corpus_lines = sorted({(o.date_raw, o.rule.rpartition("-")[2]) for o in originals.values()
                           if o is not None and o.date_raw and not o.rule.startswith("attached")})

    print(f"1. sample of {len(SAMPLE)} date lines (da, no, sv, de, en), right answers:")
    readers: dict[str, Callable[[str, str], datetime | None]] = {"hand-written": hand_reader}
    if library is not None:
        readers["dateparser"] = library
    for name, reader in readers.items():
        wrong = [(language, raw, reader(raw, language)) for language, raw, expected in SAMPLE
                 if not same(reader(raw, language), expected)]
        print(f"   {name:12} {len(SAMPLE) - len(wrong)}/{len(SAMPLE)}")
        for language, raw, found in wrong:
            print(f"      {language} {raw!r:42} gave {found}")
        failures += name == "hand-written" and bool(wrong)
    if library is not None:
        differ = [(raw, hand_reader(raw, lang), library(raw, lang)) for raw, lang in corpus_lines
                  if not same(hand_reader(raw, lang), library(raw, lang))]
        print(f"   corpus inline forwards' date lines: {len(corpus_lines)}, the readers differ "
              f"on {len(differ)}")
        for raw, hand, lib in differ:
            print(f"      {raw!r:42} hand-written {hand}  dateparser {lib}")
    else:
        print("   dateparser is not installed: pip install -e '.[bench]' to compare")

    lines = [(raw, language) for language, raw, _ in SAMPLE] + corpus_lines
    print(f"\n2. time per date line ({len(lines)} lines x {RUNS}):")
    for name, reader in readers.items():
        print(f"   {name:12} {summary(timed(reader, lines))}")
    blocks = [f"From: Jens <jens@firma.dk>\nSent: {raw}\nTo: Mette\nSubject: x\n"
              for raw, _language in lines]
    block_times = timed(lambda text, _language: find_inline_forward(text),
                        [(text, "en") for text in blocks])
    print(f"   for scale, find_inline_forward on the whole block: {summary(block_times)}")

    if library is not None:
        cold = [json.loads(subprocess.run([sys.executable, "-c", _COLD], check=True,
                                          capture_output=True, text=True).stdout)
                for _ in range(3)]
        print("\n3. dateparser cold, fresh process (median of 3): import "
              f"{statistics.median(c['import_ms'] for c in cold):.0f} ms, first parse "
              f"{statistics.median(c['first_parse_ms'] for c in cold):.0f} ms")

    before = json.loads(BEFORE.read_text(encoding="utf-8"))["files"]
    dated_before = sum(1 for was in before.values()
                       if was["original"] and was["original"]["date"])
    now = [o.stored_date() for o in originals.values() if o is not None]
    dated_now = sum(1 for date, _assumed in now if date is not None)
    assumed = sum(1 for _date, flag in now if flag)
    print(f"\n4. corpus: {sum(1 for was in before.values() if was['original'])} mails with a "
          f"forwarded original; with a structured date before issue 16: {dated_before}, "
          f"now: {dated_now} ({assumed} of them zone-assumed)")
    failures += dated_now < dated_before
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
