"""Log lines: key=value or JSON, one line per record, the message SHA-256 and the case number
on every line about them, never a body or an attachment's name at INFO."""

from __future__ import annotations

import io
import json
import logging
from email.message import EmailMessage
from typing import Any

from intake.service.logs import JsonFormatter, KeyValueFormatter, configure_logging, quote_value
from storage.log_context import add_log_fields, current_log_fields, log_fields
from tests.mail_flow import REPORTER, CapturingRelay, list_cases_of, send
from tests.support import INTAKE_ADDRESS, MANAGER, wait_until

BODY_MARKER = "Vi-ved-hvor-du-bor-7f3a"
FILE_MARKER = "kvittering-9c2e.pdf"


def _record(message: str, *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("broken\nacross lines")
        except ValueError as error:
            exc_info = (type(error), error, error.__traceback__)
    return logging.LogRecord("chikanemail.test", logging.INFO, __file__, 1, message, args,
                             exc_info)


def test_key_value_lines_carry_the_context_fields() -> None:
    with log_fields(sha256="ab" * 32):
        add_log_fields(case="2026-0007")
        line = KeyValueFormatter().format(_record("case %s opened", "2026-0007"))
    assert line.startswith("time=")
    assert " level=INFO logger=chikanemail.test " in line
    assert f" sha256={'ab' * 32} case=2026-0007 " in line
    assert line.endswith('msg="case 2026-0007 opened"')
    assert current_log_fields() == {}  # the block ended: nothing leaks to later lines


def test_values_are_quoted_and_a_traceback_stays_on_one_line() -> None:
    assert quote_value("plain") == "plain"
    assert quote_value('say "hi" = x') == '"say \\"hi\\" = x"'
    line = KeyValueFormatter().format(_record("failed", exc=True))
    assert "\n" not in line
    assert 'exc="Traceback' in line and "broken\\nacross lines" in line


def test_json_lines_parse_and_carry_the_same_fields() -> None:
    with log_fields(sha256="cd" * 32, case="2026-0001", mailbox=None):
        line = JsonFormatter().format(_record("stored %d bytes", 10, exc=True))
    parsed = json.loads(line)
    assert parsed["sha256"] == "cd" * 32 and parsed["case"] == "2026-0001"
    assert "mailbox" not in parsed
    assert parsed["msg"] == "stored 10 bytes"
    assert parsed["level"] == "INFO" and parsed["time"].endswith("Z")
    assert "ValueError" in parsed["exc"]


def _report_with_attachment() -> bytes:
    mail = EmailMessage()
    mail["From"] = REPORTER
    mail["To"] = INTAKE_ADDRESS
    mail["Subject"] = "VS: trusler"
    mail.set_content(f"Se nedenfor.\n\n{BODY_MARKER}\n")
    mail.add_attachment(b"%PDF-1.4 test", maintype="application", subtype="pdf",
                        filename=FILE_MARKER)
    return mail.as_bytes()


def test_a_daemon_logs_json_with_hashes_and_case_and_no_content(
        start: Any, relay: tuple[CapturingRelay, int]) -> None:
    capture, _ = relay
    stream = io.StringIO()
    configure_logging("INFO", stream, log_format="json")
    daemon = start()
    send(daemon, _report_with_attachment())
    number = wait_until(lambda: list_cases_of(daemon), message="a case")[0]
    wait_until(lambda: capture.to(MANAGER), message="the notification")
    daemon.stop()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines, "the daemon logged nothing"
    stored = [line for line in lines if line["msg"].startswith("message stored")]
    assert stored and all(len(line.get("sha256", "")) == 64 for line in stored)
    opened = [line for line in lines if line["msg"].startswith(f"case {number} opened")]
    assert opened and opened[0]["case"] == number and opened[0]["sha256"] == stored[0]["sha256"]
    processed = [line for line in lines if line["msg"].startswith("message processed")]
    assert processed and processed[0]["case"] == number
    text = stream.getvalue()
    assert BODY_MARKER not in text
    assert FILE_MARKER not in text
