"""`chikanemail quarantine list/show/retry`: a message whose steps kept failing is listed,
shown with its error and audit events, and handed back to a worker that now processes it
into a case; foreign senders stay out unless the admin says `--include-foreign`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from intake.pipeline.step import MessageContext
from intake.pipeline.worker import Worker
from intake.service.daemon import Services, open_services, pipeline_for
from storage.cases import list_cases
from storage.messages import DeliveryEnvelope, list_messages
from storage.models import AuditEvent, Message
from tests.mail_flow import REPORTER, report
from tests.support import INTAKE_ADDRESS, describe, make_config, run_cli, write_toml

FOREIGN = "someone@fremmed.example"


class BrokenParser:
    """A pipeline step that always fails, as a parser bug would."""

    name = "parse"

    def run(self, message: MessageContext) -> None:
        raise ValueError("unexpected MIME boundary\nsecond line of the error")


@dataclass
class Quarantined:
    """A data directory with one failed and one foreign-sender message in quarantine."""

    services: Services
    config_file: Path
    failed_id: int
    foreign_id: int

    def cli(self, *args: str) -> Any:
        result = run_cli(["--config", str(self.config_file), *args])
        assert result.exit_code == 0, describe(result)
        return result

    def row(self, message_pk: int) -> Message:
        (row,) = [row for row in list_messages(self.services.database) if row.id == message_pk]
        return row


@pytest.fixture
def quarantined(tmp_path: Path, database_url: str) -> Iterator[tuple[Quarantined, Any]]:
    """One report failed for real (max_attempts tries), one quarantined as foreign."""
    config = make_config(tmp_path / "data", database_url, extract={"ocr": False},
                         intake={"allowed_sender_domains": ("kommune.example",),
                                 "foreign_sender_action": "quarantine"},
                         worker={"max_attempts": 2})
    services = open_services(config)
    failed = services.intake.accept_message(
        report("VS: Du er ikke velkommen"),
        DeliveryEnvelope(source="smtp", mail_from=REPORTER, rcpt_tos=(INTAKE_ADDRESS,)))
    foreign = services.intake.accept_message(
        report("VS: fra en fremmed", sender=FOREIGN),
        DeliveryEnvelope(source="smtp", mail_from=FOREIGN, rcpt_tos=(INTAKE_ADDRESS,)))
    broken = Worker(services.store, services.database, config.worker, [BrokenParser()])
    assert broken.process_until_idle() == 2  # two tries of the one message it may take
    config_file = write_toml(tmp_path / "chikanemail.toml", {
        "storage": {"data_dir": str(config.storage.data_path), "database_url": database_url},
        "intake": {"addresses": [INTAKE_ADDRESS]},
        "ui": {"language": "en"},  # the English texts these tests read
    })
    yield Quarantined(services, config_file, failed.message_pk, foreign.message_pk), config
    services.close()


def working_worker(setup: Quarantined, config: Any) -> Worker:
    return Worker(setup.services.store, setup.services.database,
                  replace(config.worker, max_attempts=3), pipeline_for(config))


def test_a_failed_message_is_listed_and_shown_with_its_error(
        quarantined: tuple[Quarantined, Any]) -> None:
    setup, _config = quarantined
    row = setup.row(setup.failed_id)
    assert (row.state, row.quarantine_reason, row.attempts) == (
        "quarantined", "processing-failed", 2)

    listed = json.loads(setup.cli("quarantine", "list", "--json").stdout)
    by_id = {entry["id"]: entry for entry in listed}
    assert set(by_id) == {setup.failed_id, setup.foreign_id}
    assert by_id[setup.failed_id]["reason"] == "processing-failed"
    assert by_id[setup.failed_id]["attempts"] == 2
    assert by_id[setup.failed_id]["error"] == "parse: ValueError: unexpected MIME boundary"
    assert by_id[setup.failed_id]["sha256"] == row.sha256
    assert by_id[setup.foreign_id]["reason"] == "foreign-sender"

    table = setup.cli("quarantine", "list").stdout
    assert "2 quarantined messages" in table

    shown = json.loads(setup.cli("quarantine", "show", str(setup.failed_id), "--json").stdout)
    assert shown["message"]["sha256"] == row.sha256
    assert shown["message"]["last_error"].endswith("second line of the error")
    actions = [event["action"] for event in shown["events"]]
    assert actions[0] == "received" and "quarantined" in actions

    text = setup.cli("quarantine", "show", str(setup.failed_id)).stdout
    assert "second line of the error" in text and "kept out" in text
    missing = run_cli(["--config", str(setup.config_file), "quarantine", "show", "99999"])
    assert missing.exit_code == 1 and "no message 99999" in missing.stderr


def test_retry_hands_the_message_back_and_a_working_pipeline_opens_its_case(
        quarantined: tuple[Quarantined, Any]) -> None:
    setup, config = quarantined
    output = setup.cli("quarantine", "retry", str(setup.failed_id)).stdout
    assert f"handed 1 message back to the worker: {setup.failed_id}" in output
    row = setup.row(setup.failed_id)
    assert (row.state, row.quarantine_reason, row.attempts, row.not_before) == (
        "received", None, 0, None)
    with setup.services.database.read() as session:
        (event,) = session.execute(select(AuditEvent).where(
            AuditEvent.action == "quarantine-retried")).scalars()
        assert event.message_sha256 == row.sha256
        assert event.actor.startswith("cli:")
        assert event.details["reason"] == "processing-failed"

    assert working_worker(setup, config).process_until_idle() == 1
    row = setup.row(setup.failed_id)
    assert row.state == "processed" and row.case_id is not None
    assert [case.id for case in list_cases(setup.services.database)] == [row.case_id]
    assert setup.row(setup.foreign_id).state == "quarantined"


def test_retry_all_takes_only_failed_messages_and_foreign_needs_the_flag(
        quarantined: tuple[Quarantined, Any]) -> None:
    setup, config = quarantined
    refused = run_cli(["--config", str(setup.config_file), "quarantine", "retry",
                       str(setup.foreign_id)])
    assert refused.exit_code == 1, describe(refused)
    assert "--include-foreign" in refused.stderr
    assert setup.row(setup.foreign_id).state == "quarantined"

    assert "handed 1 message back" in setup.cli("quarantine", "retry", "--all").stdout
    assert setup.row(setup.failed_id).state == "received"
    assert setup.row(setup.foreign_id).state == "quarantined"
    assert "handed 0 messages back" in setup.cli("quarantine", "retry", "--all").stdout

    setup.cli("quarantine", "retry", "--include-foreign", str(setup.foreign_id))
    assert working_worker(setup, config).process_until_idle() == 2
    assert {setup.row(pk).state for pk in (setup.failed_id, setup.foreign_id)} == {"processed"}
    assert json.loads(setup.cli("quarantine", "list", "--json").stdout) == []


def test_retry_needs_ids_or_all(quarantined: tuple[Quarantined, Any]) -> None:
    setup, _config = quarantined
    neither = run_cli(["--config", str(setup.config_file), "quarantine", "retry"])
    both = run_cli(["--config", str(setup.config_file), "quarantine", "retry", "--all",
                    str(setup.failed_id)])
    assert neither.exit_code == both.exit_code == 2
    assert setup.row(setup.failed_id).state == "quarantined"
    help_text = run_cli(["quarantine", "retry", "--help"]).stdout
    assert "--include-foreign" in help_text and "allowed_sender_domains" in help_text
