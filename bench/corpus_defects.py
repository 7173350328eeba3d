"""How many defects extraction records over the corpus, per defect name.

Extracts every mail of ../shared/corpus (OCR off, blobs in a temporary directory) and prints,
per defect name: the mails whose message row would carry it, the evidence parts that would,
and (where the code records it) which parsers reported it on the mails. Run from the
repository root:

    .venv/bin/python bench/corpus_defects.py
    .venv/bin/python bench/corpus_defects.py --code OTHER-CHECKOUT    # e.g. an older commit

`--code` imports the extractor from another checkout of the project, to compare before and
after a change; the corpus stays this repository's. Rows from code that records plain names
show no parsers. `--json PATH` writes the counts.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO.parent / "shared" / "corpus"


def _name_and_parser(defect: Any) -> tuple[str, str | None]:
    """A defect as extraction returns it: a plain name (older code) or a name and parser."""
    if isinstance(defect, str):
        return defect, None
    return str(defect.name), str(defect.parser)


def count_defects(corpus: Path) -> dict[str, Any]:
    """Per defect name: mails, evidence parts, and mails per reporting parser."""
    from intake.pipeline.extract import EvidenceExtractor
    from intake.service.settings import ExtractSettings
    from storage.blobstore import BlobStore

    mails: Counter[str] = Counter()
    parts: Counter[str] = Counter()
    by_parser: dict[str, Counter[str]] = {}
    files = [corpus / line.split("\t")[0]
             for line in (corpus / "index.tsv").read_text(encoding="utf-8").splitlines()]
    with tempfile.TemporaryDirectory() as work:
        store, derived = BlobStore(Path(work) / "blobs"), BlobStore(Path(work) / "derived")
        store.ensure_root()
        derived.ensure_root()
        extractor = EvidenceExtractor(store, derived, ExtractSettings(ocr=False), None)
        for path in files:
            extraction = extractor.extract(path.read_bytes())
            names: set[str] = set()
            for defect in extraction.message.defects:
                name, parser = _name_and_parser(defect)
                names.add(name)
                if parser is not None:
                    by_parser.setdefault(name, Counter())[parser] += 1
            mails.update(names)
            for record in extraction.records:
                parts.update({_name_and_parser(defect)[0] for defect in record.defects})
    defects = {
        name: {"mails": mails[name], "parts": parts[name],
               "parsers": dict(sorted(by_parser.get(name, Counter()).items()))}
        for name in sorted(set(mails) | set(parts))
    }
    return {"files": len(files), "mail_defects_total": sum(mails.values()),
            "part_defects_total": sum(parts.values()), "defects": defects}


def print_table(counts: dict[str, Any]) -> None:
    """The counts, one defect name a line."""
    print(f"{counts['files']} corpus files")
    print(f"{'defect':<46} {'mails':>6} {'parts':>6}  reported on mails by")
    for name, row in counts["defects"].items():
        parsers = ", ".join(f"{parser} {count}" for parser, count in row["parsers"].items())
        print(f"{name:<46} {row['mails']:>6} {row['parts']:>6}  {parsers or '-'}")
    print(f"{'total':<46} {counts['mail_defects_total']:>6} "
          f"{counts['part_defects_total']:>6}")


def main() -> int:
    """Count and print; 0 on success."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", type=Path, default=REPO,
                        help="the checkout whose extractor to run (default: this one)")
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--json", type=Path, default=None, help="also write the counts here")
    args = parser.parse_args()
    sys.path.insert(0, str(args.code.resolve()))
    counts = count_defects(args.corpus)
    print_table(counts)
    if args.json is not None:
        args.json.write_text(json.dumps(counts, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
