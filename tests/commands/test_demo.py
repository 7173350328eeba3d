"""`chikanemail demo`: the sample report reaches a running daemon on the embedded defaults,
opens a case, and the receipt and the notification land in the outgoing Maildir."""

from __future__ import annotations

import io
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

from PIL import Image

from intake.commands.cli.demo import build_demo_report, screenshot_png
from intake.service.config import AppConfig
from notifier.transport import OUTGOING_MAILDIR
from storage.cases import list_cases
from storage.database import Database
from tests.support import (
    INTAKE_ADDRESS,
    MANAGER,
    DaemonThread,
    describe,
    free_port,
    run_cli,
    wait_until,
    write_toml,
)

REPORTER = "ansat@kommune.example"  # the intake address's domain


def cli_config(config: AppConfig, tmp_path: Path, port: int) -> Path:
    return write_toml(tmp_path / "demo.toml", {
        "storage": {"data_dir": str(config.storage.data_path),
                    "database_url": config.storage.effective_database_url},
        "intake": {"addresses": [INTAKE_ADDRESS]},
        "smtp": {"host": "127.0.0.1", "port": port},
        "routing": {"default_manager": MANAGER},
    })


def outgoing(maildir: Path) -> list[EmailMessage]:
    if not (maildir / "new").is_dir():
        return []
    mails = []
    for path in sorted((maildir / "new").iterdir()):
        parsed = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
        assert isinstance(parsed, EmailMessage)
        mails.append(parsed)
    return mails


def receipt_and_notification(maildir: Path) -> dict[str, EmailMessage]:
    """The outgoing mails by recipient, once both the reporter and the manager have one
    (empty until then)."""
    by_recipient = {mail["To"].addresses[0].addr_spec: mail for mail in outgoing(maildir)}
    return by_recipient if {REPORTER, MANAGER} <= set(by_recipient) else {}


def test_demo_report_reaches_a_case_and_the_maildir(config: AppConfig, tmp_path: Path) -> None:
    assert not config.notify.smtp_host  # the embedded default: outgoing mail to the Maildir
    maildir = config.storage.data_path / OUTGOING_MAILDIR
    with DaemonThread(config) as daemon:
        config_file = cli_config(config, tmp_path, daemon.smtp_address[1])
        result = run_cli(["--config", str(config_file), "demo"])
        assert result.exit_code == 0, describe(result)
        # In Danish, the default language.
        assert f"Sendte en eksempelindberetning fra {REPORTER} til {INTAKE_ADDRESS}" \
            in result.stdout
        assert "chikanemail cases list" in result.stdout
        assert str(maildir / "new") in result.stdout

        database = Database(config.storage.effective_database_url)
        try:
            (case,) = wait_until(lambda: list_cases(database), timeout=60,
                                 message="the demo's case")
        finally:
            database.dispose()
        by_recipient = wait_until(lambda: receipt_and_notification(maildir), timeout=60,
                                  message="the receipt and the notification in the Maildir")
    assert case.number in str(by_recipient[REPORTER]["Subject"])  # the receipt
    assert case.number in str(by_recipient[MANAGER]["Subject"])  # the notification


def test_demo_without_a_listener_says_so(config: AppConfig, tmp_path: Path) -> None:
    port = free_port()
    result = run_cli(["--config", str(cli_config(config, tmp_path, port)), "demo"])
    assert result.exit_code == 1, describe(result)
    assert f"intet svarer på 127.0.0.1:{port} (SMTP)" in result.stderr
    assert "chikanemail serve" in result.stderr


def test_the_sample_is_a_danish_forward_with_a_screenshot() -> None:
    mail = build_demo_report(REPORTER, INTAKE_ADDRESS)
    body = mail.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "-----Oprindelig meddelelse-----" in text and "Emne: Du er ikke velkommen her" in text
    (attachment,) = list(mail.iter_attachments())
    assert attachment.get_content_type() == "image/png"
    assert attachment.get_filename() == "skaermbillede.png"
    with Image.open(io.BytesIO(screenshot_png())) as image:
        assert image.format == "PNG" and image.size == (360, 220)
