"""`chikanemail health`: HEALTH_CHECKS, the one list of named checks, each ok, warn or fail,
run in order."""

from __future__ import annotations

from datetime import datetime

from intake.service.config import AppConfig
from intake.service.health.findings import (
    CheckResult,
    CheckStatus,
    Finding,
    HealthCheck,
    HealthInputs,
)
from intake.service.health.receiver_checks import (
    check_imap,
    check_imap_left,
    check_listeners,
    check_smtp_answers,
)
from intake.service.health.store_checks import (
    check_backlog,
    check_backup,
    check_data_dir,
    check_database,
    check_free_space,
    check_last_verify,
    check_outbox,
    check_quarantine,
)
from intake.service.health.web_checks import check_web
from storage.models import utc_now

HEALTH_CHECKS: tuple[HealthCheck, ...] = (
    HealthCheck("data-dir", check_data_dir, needs_database=False),
    HealthCheck("free-space", check_free_space, needs_database=False),
    HealthCheck("database", check_database, needs_database=False),
    HealthCheck("listeners", check_listeners, needs_database=False),
    HealthCheck("smtp-answers", check_smtp_answers, needs_database=False),
    HealthCheck("web", check_web, needs_database=False),
    HealthCheck("imap", check_imap),
    HealthCheck("imap-left", check_imap_left),
    HealthCheck("backlog", check_backlog),
    HealthCheck("verify", check_last_verify),
    HealthCheck("outbox", check_outbox),
    HealthCheck("quarantine", check_quarantine),
    HealthCheck("backup", check_backup, needs_database=False),
)


def run_health_checks(config: AppConfig, checks: tuple[HealthCheck, ...] = HEALTH_CHECKS,
                      now: datetime | None = None) -> list[CheckResult]:
    """Every check's result, in order; a check that raises is a failure, not a crash."""
    inputs = HealthInputs(config, now or utc_now())
    results: list[CheckResult] = []
    try:
        for check in checks:
            if check.needs_database and inputs.database is None:
                finding = Finding(CheckStatus.SKIPPED, "the database is not usable")
            else:
                try:
                    finding = check.run(inputs)
                except Exception as error:
                    reason = (str(error).strip().splitlines() or [""])[0]
                    finding = Finding(CheckStatus.FAIL, f"{type(error).__name__}: {reason}")
            results.append(CheckResult(check.name, finding))
    finally:
        if inputs.database is not None:
            inputs.database.dispose()
    return results


def is_healthy(results: list[CheckResult]) -> bool:
    """Healthy unless a check failed (warnings and skips alone do not make it unhealthy)."""
    return all(result.finding.status != CheckStatus.FAIL for result in results)
