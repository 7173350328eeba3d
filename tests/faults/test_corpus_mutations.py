"""R3 (issue 9): 10,000 mutations of the real-world corpus through intake and the pipeline.

Every mutant (a seeded byte flip, cut, damaged boundary, duplicated header, broken header
block, broken base64 or huge line of a corpus mail; see tests/faults/mutator.py) is stored by
the accept path `chikanemail ingest` uses and processed by the daemon's worker and pipeline
(extraction, images without OCR, cases). Asserted:

- no crash: nothing escapes the accept path, and every message ends `processed`. A message
  the pipeline cannot read is still evidence (DESIGN: "Bad input is evidence too"): it is
  stored, its case opened and its defects recorded. A quarantine after a step raised is an
  internal error on some input, so it fails this test with the seed that reproduces it;
- every raw stored: one row per distinct mutant, and each blob is the mutant's exact bytes
  (compared and re-hashed);
- defects recorded: a mutant whose damage the parser can see (an unclosed multipart, a
  multipart without its boundary, base64 with foreign characters, a header that may occur
  once repeated, a line in the header block that is no header) has defects on its row.

Two processes share the work, each with its own data dir on /dev/shm (tmpfs: fsync is cheap,
the test measures parsing, not the disk) and SQLite. A failure names the seed:
`tests.faults.mutation_run.mutant_for(seed, sources)` rebuilds the mutant.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from tests.faults.mutation_run import ShareFindings, run_share
from tests.support import CORPUS

pytestmark = pytest.mark.faults

# The issue asks for 10,000; CHIKANEMAIL_MUTATIONS may ask for fewer while working on a fix.
MUTATIONS = 10_000
PROCESSES = 2
FIRST_SEED = 9_000_000  # seeds FIRST_SEED .. FIRST_SEED + MUTATIONS - 1


def corpus_sources() -> list[Path]:
    """Every file of the corpus index, in index order (the seed picks among them)."""
    lines = (CORPUS / "index.tsv").read_text(encoding="utf-8").splitlines()
    return [CORPUS / line.split("\t")[0] for line in lines if line.strip()]


@pytest.fixture
def scratch(tmp_path: Path) -> Iterator[Path]:
    """A directory on tmpfs when there is one, else pytest's own."""
    if Path("/dev/shm").is_dir() and os.access("/dev/shm", os.W_OK):
        base = Path(tempfile.mkdtemp(prefix="chik-mutations-", dir="/dev/shm"))
        try:
            yield base
        finally:
            shutil.rmtree(base, ignore_errors=True)
    else:
        yield tmp_path


def _report(findings: list[ShareFindings], count: int, seconds: float) -> str:
    mutants = sum(item.mutants for item in findings)
    by_mutation: dict[str, int] = {}
    for item in findings:
        for name, number in item.by_mutation.items():
            by_mutation[name] = by_mutation.get(name, 0) + number
    lines = [f"R3: {mutants} mutants (asked {count}) in {seconds:.1f} s wall, "
             f"{seconds / max(mutants, 1) * 1000:.1f} ms per mail with {PROCESSES} processes; "
             f"per process: " + ", ".join(f"{item.seconds:.1f} s" for item in findings),
             "mutations: " + ", ".join(f"{name}={number}"
                                       for name, number in sorted(by_mutation.items()))]
    return "\n".join(lines)


def test_ten_thousand_corpus_mutations_are_stored_processed_and_flagged(scratch: Path) -> None:
    count = int(os.environ.get("CHIKANEMAIL_MUTATIONS", MUTATIONS))
    sources = corpus_sources()
    assert len(sources) == 200
    seeds = list(range(FIRST_SEED, FIRST_SEED + count))
    shares = [seeds[index::PROCESSES] for index in range(PROCESSES)]
    started = time.monotonic()
    # spawn: the children start clean, without this process's threads and connections.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(PROCESSES, mp_context=context) as pool:
        futures = [pool.submit(run_share, share, sources, scratch / f"share{index}")
                   for index, share in enumerate(shares)]
        findings = [future.result() for future in futures]
    seconds = time.monotonic() - started
    print("\n" + _report(findings, count, seconds))

    accept_errors = [line for item in findings for line in item.accept_errors]
    blob_errors = [line for item in findings for line in item.blob_errors]
    not_processed = [line for item in findings for line in item.not_processed]
    defects_missing = [line for item in findings for line in item.defects_missing]
    assert sum(item.mutants for item in findings) == count
    assert not accept_errors, "\n".join(accept_errors[:20])
    assert not blob_errors, "\n".join(blob_errors[:20])
    assert [item.rows for item in findings] == [item.distinct for item in findings]
    assert not not_processed, f"{len(not_processed)} not processed:\n" + "\n".join(
        not_processed[:20])
    assert not defects_missing, f"{len(defects_missing)} without defects:\n" + "\n".join(
        defects_missing[:20])
