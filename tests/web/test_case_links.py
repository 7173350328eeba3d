"""Links to the case page in the manager's mails (the notification, reminders), never in
the reporter's receipt."""

from __future__ import annotations

import re
import smtplib
from pathlib import Path

import pytest

from notifier.templating import make_environment
from tests.notifier.test_plan_templates import escalation, reminder
from tests.support import INTAKE_ADDRESS, MANAGER, wait_until
from tests.web.web_support import outgoing_mails, web_daemon

BASE_URL = "https://chikanemail.kommune.example"
REPORTER = "ansat@kommune.example"
REPORT = (f"From: Ansat <{REPORTER}>\r\nTo: <{INTAKE_ADDRESS}>\r\n"
          "Subject: Fwd: grim besked\r\nMessage-ID: <report-1@kommune.example>\r\n\r\n"
          "Se nedenfor.\r\n").encode()


@pytest.mark.integration
def test_the_notification_links_to_the_case_page_and_the_receipt_does_not(
        tmp_path: Path) -> None:
    with web_daemon(tmp_path / "data", f"sqlite:///{tmp_path / 'web.sqlite3'}",
                    web={"base_url": BASE_URL}) as (daemon, _clock, _base):
        with smtplib.SMTP(*daemon.smtp_address) as client:
            assert client.sendmail(REPORTER, [INTAKE_ADDRESS], REPORT) == {}

        def both() -> dict[str, str] | None:
            bodies = {str(mail["To"]).strip("<>"): mail.get_body(("plain",)).get_content()
                      for mail in outgoing_mails(daemon.config).values()}
            return bodies if {MANAGER, REPORTER} <= set(bodies) else None

        bodies = wait_until(both, message="the notification and the receipt")
    assert f"{BASE_URL}/cases/{daemon_case_number(bodies[MANAGER])}" in bodies[MANAGER]
    assert "/cases/" not in bodies[REPORTER]
    assert BASE_URL not in bodies[REPORTER]


def daemon_case_number(body: str) -> str:
    """The case number the notification names (YYYY-NNNN)."""
    found = re.search(r"\b\d{4}-\d{4}\b", body)
    assert found is not None
    return found.group(0)


@pytest.mark.parametrize("language", ["da", "en"])
def test_a_reminder_links_the_manager_to_the_case_page_and_no_one_else(language: str) -> None:
    url = f"{BASE_URL}/cases/2026-0001"
    for suffix in ("txt", "html"):
        template = make_environment("", language).get_template(f"reminder.{suffix}.j2")
        to_manager = template.render(reminder(language, case_url=url))
        to_reporter = template.render(reminder(language, case_url=url,
                                               recipient_role="reporter"))
        assert url in to_manager
        assert url not in to_reporter


@pytest.mark.parametrize("language", ["da", "en"])
def test_an_escalation_links_the_deputy_to_the_case_they_may_now_see(language: str) -> None:
    url = f"{BASE_URL}/cases/2026-0001"
    for suffix in ("txt", "html"):
        template = make_environment("", language).get_template(f"escalation.{suffix}.j2")
        assert url in template.render(escalation(language, case_url=url))
        assert "/cases/" not in template.render(escalation(language))
