"""One share of the corpus-mutation run (R3), in a process of its own with its own data dir.

`run_share` is what each process of the test's pool runs: it stores every mutant through the
real accept path (`IntakeService.accept_message`, as `chikanemail ingest` does), has the
real worker run the daemon's pipeline on it, then checks what was kept and returns the
findings (small: no mail bytes) for the test to assert on.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from intake.pipeline.worker import Worker
from intake.service.daemon import Services, open_services, pipeline_for
from storage.evidence import evidence_for_message
from storage.messages import DeliveryEnvelope
from storage.models import Message, MessageSource, MessageState
from tests.faults.mutator import Mutant, mutate
from tests.support import make_config

# Messages accepted before the worker runs: about what a busy intake hands a worker.
ACCEPT_BATCH = 50


@dataclass
class ShareFindings:
    """What one process found; every entry names the seed that reproduces it."""

    mutants: int = 0
    distinct: int = 0
    rows: int = 0
    seconds: float = 0.0
    accept_errors: list[str] = field(default_factory=list)
    blob_errors: list[str] = field(default_factory=list)
    not_processed: list[str] = field(default_factory=list)
    defects_missing: list[str] = field(default_factory=list)
    by_mutation: dict[str, int] = field(default_factory=dict)


def mutant_for(seed: int, sources: list[Path]) -> tuple[Path, Mutant]:
    """The mutant a seed stands for: the source file and the mutation both follow from it."""
    source = sources[seed % len(sources)]
    return source, mutate(source.read_bytes(), seed)


def run_share(seeds: list[int], sources: list[Path], base: Path) -> ShareFindings:
    """Accept and process every seed's mutant in a data dir under `base`; report findings."""
    logging.disable(logging.CRITICAL)  # 10,000 damaged mails make a lot of warnings
    started = time.monotonic()
    findings = ShareFindings(mutants=len(seeds))
    config = make_config(base / "data", f"sqlite:///{base / 'chikanemail.sqlite3'}",
                         extract={"ocr": False},
                         worker={"batch_size": ACCEPT_BATCH, "max_attempts": 1})
    services = open_services(config)
    worker = Worker(services.store, services.database, config.worker, pipeline_for(config))
    envelope = DeliveryEnvelope(source=MessageSource.INGEST)
    expected: dict[str, tuple[int, str, bool]] = {}  # sha256 -> seed, mutation, detectable
    try:
        for index, seed in enumerate(seeds, 1):
            source, mutant = mutant_for(seed, sources)
            name = f"seed={seed} {mutant.mutation} of {source.name}"
            findings.by_mutation[mutant.mutation] = findings.by_mutation.get(
                mutant.mutation, 0) + 1
            sha256 = hashlib.sha256(mutant.raw).hexdigest()
            try:
                accepted = services.intake.accept_message(mutant.raw, envelope)
            except Exception as error:  # the finding: nothing may escape the accept path
                findings.accept_errors.append(f"{name}: {type(error).__name__}: {error}")
                continue
            if accepted.sha256 != sha256:
                findings.blob_errors.append(f"{name}: stored as {accepted.sha256}")
            known = expected.get(sha256)
            expected[sha256] = (seed, mutant.mutation,
                                mutant.detectable or (known is not None and known[2]))
            if index % ACCEPT_BATCH == 0:
                worker.process_until_idle()
        worker.process_until_idle()
        findings.distinct = len(expected)
        _check_stored(services, expected, seeds, sources, findings)
    finally:
        services.close()
    findings.seconds = time.monotonic() - started
    return findings


@dataclass(frozen=True)
class _Row:
    message_pk: int
    state: str
    quarantine_reason: str | None
    last_error: str | None
    defects: list[Any] | None  # as storage.defects reads them


def _check_stored(services: Services, expected: dict[str, tuple[int, str, bool]],
                  seeds: list[int], sources: list[Path], findings: ShareFindings) -> None:
    with services.database.read() as session:
        rows = {row.sha256: _Row(row.id, row.state, row.quarantine_reason, row.last_error,
                                 row.defects)
                for row in session.scalars(select(Message))}
    findings.rows = len(rows)
    for seed in seeds:
        source, mutant = mutant_for(seed, sources)
        sha256 = hashlib.sha256(mutant.raw).hexdigest()
        name = f"seed={seed} {mutant.mutation} of {source.name}"
        if sha256 not in rows:
            findings.blob_errors.append(f"{name}: no message row")
            continue
        stored = services.store.read_bytes(sha256)
        if stored != mutant.raw or hashlib.sha256(stored).hexdigest() != sha256:
            findings.blob_errors.append(f"{name}: the blob is not the exact raw bytes")
    for sha256, (seed, mutation, detectable) in expected.items():
        row = rows.get(sha256)
        if row is None:
            continue
        name = f"seed={seed} {mutation}"
        if row.state != MessageState.PROCESSED:
            findings.not_processed.append(
                f"{name}: state={row.state} reason={row.quarantine_reason} "
                f"error={(row.last_error or '').splitlines()[:1]}")
        elif detectable and not row.defects:
            evidence = evidence_for_message(services.database, row.message_pk)
            part_defects = [item for part in evidence for item in part.defects]
            if not part_defects:
                findings.defects_missing.append(f"{name}: no defect recorded")
