"""Every mail, the export report and its README in Danish and in English, from one real case:
no English word in the Danish texts and no Danish word in the English ones (issue 19).

The case is opened the way the response plan's tests open one (open_case and the default
checklist, on SQLite); the texts are rendered by the service's own composer and renderers.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from intake.commands.reply.parser import command_help, reply_lines
from notifier.case_actions import ActionResult, CaseActions
from notifier.case_view import plan_lines
from notifier.mails import CaseMailView, EvidenceLine, MailComposer
from notifier.plan.checklist import add_checklist, calendar_for, case_steps
from notifier.plan.mails import DigestCase, PlanMails, UnknownLine
from notifier.plan.settings import PlanSettings
from notifier.settings import NotifySettings
from storage import audit
from storage.blobstore import BlobStore
from storage.cases import lock_case, open_case
from storage.database import Database
from storage.export import read_case_records
from storage.export_report import ExportFacts, render_readme, render_report
from storage.i18n.catalogs import LANGUAGES
from storage.migrate import upgrade_database
from storage.models import Case, CaseStep
from storage.ui_settings import UiSettings

MANAGER = "leder@kommune.example"
DEPUTY = "stedfortraeder@kommune.example"
REPORTER = "ansat@kommune.example"
INTAKE = "chikanemail@kommune.example"
OPENED = datetime(2026, 11, 16, 9, 30, tzinfo=UTC)

# Distinctive words of each language, as whole words, case-insensitive. They must not show
# in a text of the other language (addresses, hashes and markup are left out first).
WORDS = {
    "en": ("the", "case", "step", "deadline", "received", "reply", "employee", "evidence",
           "manager", "and", "with", "when"),
    "da": ("sagen", "sag", "frist", "trin", "modtaget", "svar", "medarbejderen", "beviser",
           "leder", "og", "med", "når", "af", "til", "ikke"),
}
MAIL_KINDS = ("receipt", "notification", "confirmation", "reminder", "escalation", "digest",
              "reassigned", "sender_warning")


@dataclass
class RealCase:
    """A case as the database keeps it, with its checklist."""

    case: Case
    steps: list[CaseStep]
    database: Database


@pytest.fixture(scope="module")
def real_case(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealCase]:
    folder = tmp_path_factory.mktemp("languages")
    database = Database(f"sqlite:///{folder / 'db.sqlite3'}")
    upgrade_database(database)
    settings = PlanSettings()
    with database.write() as session:
        case = open_case(session, reporter=REPORTER, reporter_name="Ansat", manager=MANAGER,
                         deputy=DEPUTY, language="da", routing_source="rule",
                         routing_reason="rule 1: *@skole.example.dk",
                         routing_params={"rule": 1, "match": "*@skole.example.dk"},
                         now=OPENED)
        add_checklist(session, case, settings, calendar_for(settings, UiSettings().zone))
        number = case.number
        record_events(session, case)
    with database.write() as session:  # the manager's actions, noted by the system
        case = lock_case(session, number)
        actions = CaseActions(calendar_for(settings, UiSettings().zone))
        actions.acknowledge(session, case, actor=MANAGER, now=OPENED)
        actions.step_done(session, case, "1", actor=MANAGER, now=OPENED)
        actions.relation(session, case, "colleague", actor=MANAGER, now=OPENED)
        actions.witness(session, case, "Kirsten fra kontoret", actor=MANAGER, now=OPENED)
    with database.read() as session:
        case = lock_case(session, number)
        steps = list(case_steps(session, case.id))
        session.expunge_all()
    yield RealCase(case, steps, database)
    database.dispose()


# What the pipeline, the outbox and the scheduler record about a new case, with their details.
EVENTS = (
    ("received", {"source": "smtp", "size": 48_213, "tls": True, "message": 1,
                  "quarantine": None}),
    ("evidence-extracted", {"items": 2, "defects": 1,
                            "parts": [["1", "body", "c" * 64], ["2", "attachment", "b" * 64]]}),
    ("filed", {"kind": "report", "automatic": False, "sender_check": "dkim-pass",
               "unverified": False}),
    ("case-opened", {"steps": 5, "language": "da"}),
    ("routed", {"manager": MANAGER, "deputy": DEPUTY, "source": "rule"}),
    ("mail-queued", {"kind": "receipt", "message_id": "<r@test>", "to": ["(reporter)"]}),
    ("mail-queued", {"kind": "notification", "message_id": "<n@test>", "to": [MANAGER]}),
    ("mail-sent", {"kind": "notification", "message_id": "<n@test>", "to": [MANAGER],
                   "refused": False}),
    ("reminder-queued", {"key": "2026-0001:1:before", "to": MANAGER}),
    ("processed", {"kind": "report"}),
)
# Internal codes no reader should see (issue 19): action codes, durations, JSON, and (in
# Danish, where they are English words) the routing reasons as stored.
CODES = ("mail-queued", "evidence-extracted", "case-opened", "reminder-queued", "P14D", '{"')
DANISH_CODES = (*CODES, "default manager", "rule 1")


def codes_in(text: str, language: str) -> list[str]:
    """The internal codes a reader of `language` would see in the text."""
    shown = visible(text)
    return [code for code in (DANISH_CODES if language == "da" else CODES) if code in shown]


def record_events(session: Session, case: Case) -> None:
    """The case's audit trail as the service writes it."""
    for action, details in EVENTS:
        audit.record(session, action, case=case, now=OPENED, details=details)


def composer() -> MailComposer:
    """The service's composer; English is asked for per mail."""
    return MailComposer(NotifySettings(), intake_address=INTAKE, hostname="test",
                        command_help={language: command_help(language)
                                      for language in LANGUAGES})


def view(real: RealCase) -> CaseMailView:
    """The receipt's and notification's view of the case, with one screenshot."""
    case = real.case
    return CaseMailView(
        case_number=case.number, reporter=case.reporter, reporter_name=case.reporter_name,
        manager=case.manager, manager_name=None, deputy=case.deputy,
        received_at=case.opened_at, report_subject=None, report_message_id=None,
        raw_sha256="a" * 64, raw_size=48_213,
        items=(EvidenceLine("skærmbillede.png", "image/png", 45_100, "b" * 64, "attachment",
                            True),),
        original=None, plan_steps=plan_lines(real.steps), routing_reason=case.routing_reason,
        routing_source=case.routing_source, routing_params=case.routing_params)


def mail_text(real: RealCase, kind: str, language: str) -> str:
    """Subject, text part and HTML part of one mail of the case in `language`."""
    mails = composer()
    if language == "en":
        mails = MailComposer(NotifySettings(language="en"), intake_address=INTAKE,
                             hostname="test", command_help=mails.command_help)
    plan = PlanMails(mails, PlanSettings(), mails.command_help, reply_lines())
    case, step = real.case, real.steps[0]
    if kind == "receipt":
        mail = mails.receipt(view(real))
    elif kind == "notification":
        mail = mails.notification(view(real))
    elif kind == "confirmation":
        mail = plan.confirmation(
            case, actor=MANAGER, language=language,
            results=[ActionResult("ack", None, "done"), ActionResult("step", "1", "done")],
            steps=real.steps, implicit_ack=False,
            unknown=[UnknownLine("xyz", "unknown-word")], show_help=True, note_saved=True,
            attachment_count=1, in_reply_to=None)
    elif kind == "reminder":
        mail = plan.reminder(case, step, recipient=MANAGER, role="manager",
                             now=OPENED)
    elif kind == "escalation":
        mail = plan.escalation(case, level=1, recipient=DEPUTY, previous=[MANAGER],
                               item_count=2)
    elif kind == "digest":
        mail = plan.digest(MANAGER, [DigestCase(case, step, 1, 1)], week=47, year=2026,
                           now=OPENED)
    elif kind == "reassigned":
        mail = mails.compose("reassigned", recipient=MANAGER, recipient_name=None,
                             context={"case_number": case.number,
                                      "manager_display": DEPUTY, "assigned_by": DEPUTY})
    else:
        mail = plan.sender_warning(case, recipient=MANAGER, claimed_role="self",
                                   commands=["kvitter" if language == "da" else "ack"],
                                   reason="no-token", reply_to=None)
    message = BytesParser(policy=policy.default).parsebytes(mail.raw)
    parts = [str(message["Subject"])]
    for part in message.walk():
        if part.get_content_type() in ("text/plain", "text/html"):
            parts.append(part.get_content())
    return "\n".join(parts)


def export_texts(real: RealCase, language: str, folder: Path) -> str:
    """The report and README of an export of the case in `language`."""
    records = read_case_records(real.database, real.case.number)
    facts = ExportFacts(exported_at=OPENED, exporter="admin", tool_version="0.1.0",
                        language=language, has_tsa_ca=False)
    readme = render_readme(records, facts, [])
    if language == "da":  # the Danish README is followed by the English one
        readme = readme.split("=" * 72)[0]
    report = render_report(records, facts, bundle_root=folder, evidence_paths={},
                           derived=BlobStore(folder / "derived"))
    return readme + "\n" + report


def visible(text: str) -> str:
    """The text a reader sees: no markup or styles (attributes such as `title` are left out)."""
    text = re.sub(r"<style.*?</style>", " ", text, flags=re.S | re.I)
    text = re.sub(r"<[^>]+>", " ", text)
    return html.unescape(text)


def words_of(text: str) -> set[str]:
    """The words a reader sees: no markup, styles, addresses, hashes or file names."""
    text = visible(text)
    text = re.sub(r"\S+@\S+|[\w.<>-]+/|\b[0-9a-f]{16,}\b"
                  r"|\S+\.(?:png|eml|json|csv|txt|html|pem|tsr)\b", " ", text)
    return {word.lower() for word in re.findall(r"[^\W\d_]+", text)}


def other(language: str) -> str:
    return "en" if language == "da" else "da"


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", MAIL_KINDS)
def test_a_mail_speaks_one_language(real_case: RealCase, kind: str, language: str) -> None:
    seen = words_of(mail_text(real_case, kind, language))
    leaked = seen & set(WORDS[other(language)])
    assert not leaked, f"{kind} in {language} has {other(language)} words: {sorted(leaked)}"
    assert seen & set(WORDS[language]), f"{kind} in {language} has none of its own words"


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_export_speaks_one_language(real_case: RealCase, language: str,
                                        tmp_path: Path) -> None:
    text = export_texts(real_case, language, tmp_path)
    seen = words_of(text)
    leaked = seen & set(WORDS[other(language)])
    assert not leaked, f"export in {language} has {other(language)} words: {sorted(leaked)}"
    assert seen & set(WORDS[language])
    codes = codes_in(text, language)
    assert not codes, f"export in {language} shows internal codes: {codes}"


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", MAIL_KINDS)
def test_a_mail_shows_no_internal_code(real_case: RealCase, kind: str, language: str) -> None:
    codes = codes_in(mail_text(real_case, kind, language), language)
    assert not codes, f"{kind} in {language} shows internal codes: {codes}"


def test_the_timeline_names_each_action_in_words(real_case: RealCase, tmp_path: Path) -> None:
    text = visible(export_texts(real_case, "da", tmp_path))
    assert "Mail sat i kø" in text and "Beviser udtrukket" in text
    assert "kvittering til medarbejderen" in text


def test_the_manager_reads_why_in_danish(real_case: RealCase) -> None:
    assert "regel 1: alle fra skole.example.dk" in visible(
        mail_text(real_case, "notification", "da"))
    assert "rule 1: everyone at skole.example.dk" in visible(
        mail_text(real_case, "escalation", "en"))


def test_the_danish_readme_warns_about_the_evidence_files(real_case: RealCase,
                                                          tmp_path: Path) -> None:
    text = export_texts(real_case, "da", tmp_path)
    assert "evidence/" in text and "scripts" in text and "sandkasse" in text


def test_an_english_export_of_a_danish_case_reads_english(real_case: RealCase,
                                                           tmp_path: Path) -> None:
    """The case is Danish; the notes the system wrote on it follow the export's language."""
    english = visible(export_texts(real_case, "en", tmp_path))
    assert "Acknowledged the case." in english and "Step 1 (" in english
    assert "The harasser is: a colleague." in english
    danish = visible(export_texts(real_case, "da", tmp_path))
    assert "Sagen er kvitteret." in danish and "Krænkeren er: en kollega." in danish
