"""The manager's reminder for the plan's `registration` step links to the registration form
when the web view is on (issue 22), and only that step's reminder does; with the web view
off, no mail carries the link. The reminders are queued by the real plan runner on a manual
clock, as the daemon's scheduler does."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select

from intake.commands.reply.parser import command_help, reply_lines
from notifier.case_actions import NEEDS_REGISTRATION, ActionResult, CaseActions
from notifier.clock import ManualClock
from notifier.mails import MailComposer
from notifier.plan.checklist import add_checklist, calendar_for
from notifier.plan.mails import PlanMails
from notifier.plan.runner import PlanRunner
from notifier.plan.settings import PlanSettings
from notifier.settings import NotifySettings
from storage.cases import lock_case, open_case
from storage.database import Database
from storage.migrate import upgrade_database
from storage.models import Case, OutboxMail

COPENHAGEN = ZoneInfo("Europe/Copenhagen")
MANAGER = "leder@kommune.example"
WEB = "https://chikanemail.kommune.example"
OPENED = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)


def _reminders(database: Database,
               web_base_url: str) -> tuple[dict[str, EmailMessage], str]:
    """Open a case with a first day of absence, run the plan on the day the EASY report is
    due, and return the reminders queued, by the step named in their subject."""
    plan = replace(PlanSettings(), digest=False)
    calendar = calendar_for(plan, COPENHAGEN)
    composer = MailComposer(NotifySettings(), intake_address="chikanemail@kommune.example",
                            hostname="test", command_help={"da": command_help("da")},
                            web_base_url=web_base_url)
    with database.write() as session:
        case = open_case(session, reporter="ansat@kommune.example", reporter_name="Ansat",
                         manager=MANAGER, deputy=None, language="da",
                         routing_source="default", routing_reason="default manager",
                         now=OPENED)
        add_checklist(session, case, plan, calendar)
        number, case_id = case.number, case.id
    with database.write() as session:
        CaseActions(calendar).absence(session, lock_case(session, number), date(2026, 11, 17),
                                      actor=MANAGER, now=OPENED)
    runner = PlanRunner(database, plan, PlanMails(composer, plan, composer.command_help,
                                                  reply_lines()),
                        NotifySettings(), calendar, default_manager=MANAGER,
                        clock=ManualClock(datetime(2026, 12, 1, 8, 0, tzinfo=COPENHAGEN)))
    assert runner.run_due().reminders >= 2
    with database.read() as session:
        rows = session.execute(select(OutboxMail).where(OutboxMail.kind == "reminder",
                                                        OutboxMail.case_id == case_id)
                               .order_by(OutboxMail.id)).scalars()
        mails = {}
        for row in rows:
            message = BytesParser(policy=policy.default).parsebytes(row.raw)
            assert isinstance(message, EmailMessage) and row.rcpt_tos == [MANAGER]
            mails[str(message["Subject"])] = message
    return {next(step for step in ("Registrering", "Psykisk", "Dokumentation", "Stop",
                                   "Opfølgning") if step in subject): message
            for subject, message in mails.items()}, number


def _bodies(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


def test_the_registration_reminder_links_to_the_form_only_with_the_web_view(
        tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'plan.sqlite3'}")
    upgrade_database(database)
    try:
        with_web, number = _reminders(database, WEB)
        form = f"{WEB}/cases/{number}/registration"
        text, html = _bodies(with_web["Registrering"])
        assert form in text and f'<a href="{form}">' in html
        assert "Trinnet er udført, når registreringen er gemt." in text
        assert "Trinnet er udført, når registreringen er gemt." in html
        # The other steps' reminders carry the case page, not the form.
        other_text, _ = _bodies(with_web["Psykisk"])
        assert f"{WEB}/cases/{number}" in other_text and "/registration" not in other_text

        without_web, later = _reminders(database, "")
        assert later != number
        for message in without_web.values():
            text, html = _bodies(message)
            assert "/registration" not in text and "/registration" not in html
            assert "https://" not in text
        assert "Registrering" in without_web
    finally:
        database.dispose()


def test_a_step_refused_for_want_of_a_registration_is_answered_with_the_forms_link() -> None:
    def confirmation(web_base_url: str) -> str:
        composer = MailComposer(NotifySettings(), intake_address="chikanemail@kommune.example",
                                hostname="test", web_base_url=web_base_url)
        mails = PlanMails(composer, PlanSettings(), {}, reply_lines())
        mail = mails.confirmation(
            Case(number="2026-0007"), actor=MANAGER, language="da",
            results=[ActionResult("step", "4", NEEDS_REGISTRATION, "registration")], steps=[],
            implicit_ack=False, unknown=[], show_help=False, note_saved=False,
            attachment_count=0, in_reply_to=None)
        message = BytesParser(policy=policy.default).parsebytes(mail.raw)
        assert isinstance(message, EmailMessage)
        return "\n".join(_bodies(message))

    with_web = confirmation(WEB)
    assert f"Registreringsskemaet: {WEB}/cases/2026-0007/registration" in with_web
    assert f'<a href="{WEB}/cases/2026-0007/registration">' in with_web
    assert "/registration" not in confirmation("")
