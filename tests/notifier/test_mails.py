"""The receipt and the notification: headers, bodies, languages, overrides, escaping."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest

from notifier.durations import parse_duration
from notifier.mails import (
    CaseMailView,
    EvidenceLine,
    MailComposer,
    PlanStepLine,
    RelatedLine,
)
from notifier.outgoing import OutgoingMail
from notifier.plan.settings import DEFAULT_STEPS
from notifier.settings import NotifySettings
from storage.forwarded_original import ForwardedOriginal

INTAKE = "chikanemail@kommune.example"
RAW_SHA = "a" * 64
SCREENSHOT_SHA = "b" * 64
BODY_SHA = "c" * 64
REPORT_ID = "<CAF+report.1234@mail.kommune.example>"

# -- helpers (local to this file) ---------------------------------------------


def default_plan_lines() -> tuple[PlanStepLine, ...]:
    """The default plan's steps as a case opened on 2026-03-03 shows them."""
    return tuple(
        PlanStepLine(number=number, title=step.title, description=step.description,
                     owner=step.owner,
                     due_at=(datetime(2026, 3, 3 + number, 13, 5, tzinfo=UTC)
                             if step.due_after == "intake" else None),
                     after_absence=(parse_duration(step.due)
                                    if step.due_after != "intake" else None))
        for number, step in enumerate(DEFAULT_STEPS, start=1)
    )


def make_view(**changes: Any) -> CaseMailView:
    """A new case as the intake hands it over: a screenshot, the body text, an original."""
    view = CaseMailView(
        case_number="2026-0042",
        reporter="mette.hansen@kommune.example",
        reporter_name="Mette Hansen",
        manager="lars.jensen@kommune.example",
        manager_name="Lars Jensen",
        deputy="hr@kommune.example",
        received_at=datetime(2026, 3, 3, 13, 5, tzinfo=UTC),
        report_subject="VS: Sidste advarsel",
        report_message_id=REPORT_ID,
        raw_sha256=RAW_SHA,
        raw_size=123_456,
        items=(
            EvidenceLine(filename="skaermbillede.png", content_type="image/png", size=245_312,
                         sha256=SCREENSHOT_SHA, role="attachment", is_image=True),
            EvidenceLine(filename=None, content_type="text/plain", size=812, sha256=BODY_SHA,
                         role="body", is_image=False),
        ),
        original=ForwardedOriginal(from_name="Anonym Afsender", from_address="troll@example.net",
                              date=datetime(2026, 3, 2, 22, 14, tzinfo=UTC),
                              date_raw="Mon, 2 Mar 2026 23:14:00 +0100",
                              subject="Sidste advarsel"),
        plan_steps=default_plan_lines(),
        routing_reason="Afdeling Løn: leder efter routing-tabellen",
        acknowledge_within=parse_duration("P1D", working=True),
    )
    return replace(view, **changes)


RECEIPT_REPLY = "chikanemail+r3ceipt@kommune.example"
NOTIFICATION_REPLY = "chikanemail+n0tify@kommune.example"


def composer(**settings: Any) -> MailComposer:
    """A composer with the given [notify] settings and the test intake address."""
    return MailComposer(NotifySettings(**settings), intake_address=INTAKE,
                        hostname="mail.kommune.example")


def parse(mail: OutgoingMail) -> EmailMessage:
    """The mail as a receiving program reads it."""
    message = BytesParser(policy=policy.default).parsebytes(mail.raw)
    assert isinstance(message, EmailMessage)
    return message


def plain(message: EmailMessage) -> str:
    """The text/plain alternative."""
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def html(message: EmailMessage) -> str:
    """The text/html alternative."""
    part = message.get_body(("html",))
    assert part is not None
    return str(part.get_content())


def header_block(raw: bytes) -> bytes:
    """The top-level header lines, as bytes."""
    return raw.split(b"\r\n\r\n", 1)[0]


# -- headers --------------------------------------------------------------------


def test_receipt_headers() -> None:
    mail = composer().receipt(make_view())
    message = parse(mail)
    assert message["From"].addresses[0].display_name == "Chikanemail"
    assert message["From"].addresses[0].addr_spec == INTAKE
    assert message["To"].addresses[0].addr_spec == "mette.hansen@kommune.example"
    assert message["Reply-To"].addresses[0].addr_spec == INTAKE
    assert message["Subject"].startswith("[Sag 2026-0042] ")
    assert message["Auto-Submitted"] == "auto-replied"
    assert message["X-Auto-Response-Suppress"] == "All"
    assert message["In-Reply-To"] == REPORT_ID
    assert message["References"] == REPORT_ID
    assert message["Precedence"] is None
    assert message["Date"].datetime.tzinfo is not None
    assert message["Content-Language"] == "da"
    assert message.get_content_type() == "multipart/alternative"
    assert mail.kind == "receipt"
    assert mail.mail_from == INTAKE
    assert mail.rcpt_tos == ("mette.hansen@kommune.example",)
    assert mail.message_id == message["Message-ID"]
    assert mail.subject == message["Subject"]


def test_notification_headers() -> None:
    mail = composer().notification(make_view())
    message = parse(mail)
    assert message["From"].addresses[0].addr_spec == INTAKE
    assert message["To"].addresses[0].addr_spec == "lars.jensen@kommune.example"
    assert message["To"].addresses[0].display_name == "Lars Jensen"
    assert message["Reply-To"].addresses[0].addr_spec == INTAKE
    assert message["Subject"].startswith("[Sag 2026-0042] ")
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["X-Auto-Response-Suppress"] == "All"
    assert message["In-Reply-To"] is None
    assert message["Precedence"] is None
    assert mail.kind == "notification"
    assert mail.rcpt_tos == ("lars.jensen@kommune.example",)


def test_from_and_reply_to_settings_win_over_the_intake_address() -> None:
    mail = composer(from_address="noreply@hr.example",
                    reply_to="sager@kommune.example").notification(make_view())
    message = parse(mail)
    assert message["From"].addresses[0].addr_spec == "noreply@hr.example"
    assert message["Reply-To"].addresses[0].addr_spec == "sager@kommune.example"
    assert mail.mail_from == "noreply@hr.example"
    assert message["Message-ID"].endswith("@hr.example>")


def test_message_ids_are_unique_and_use_the_from_domain() -> None:
    mails = composer()
    first = mails.receipt(make_view())
    second = mails.receipt(make_view())
    third = mails.notification(make_view())
    ids = {parse(mail)["Message-ID"] for mail in (first, second, third)}
    assert len(ids) == 3
    assert all(re.fullmatch(r"<[^<>@\s]+@kommune\.example>", mid) for mid in ids)


def test_receipt_without_a_report_message_id_has_no_in_reply_to() -> None:
    message = parse(composer().receipt(make_view(report_message_id=None)))
    assert message["In-Reply-To"] is None
    assert message["References"] is None


def test_long_message_id_stays_one_unencoded_token() -> None:
    long_id = "<CAF" + "x" * 90 + "@mail.gmail.com>"
    mail = composer().receipt(make_view(report_message_id=long_id))
    assert b"In-Reply-To: " + long_id.encode() + b"\r\n" in header_block(mail.raw)
    assert parse(mail)["References"] == long_id


def test_injected_lines_in_the_report_message_id_are_dropped() -> None:
    mail = composer().receipt(make_view(report_message_id="<a@b.example>\r\nBcc: x@evil.example"))
    message = parse(mail)
    assert message["In-Reply-To"] == "<a@b.example>"
    assert message["Bcc"] is None


def test_mails_have_crlf_line_endings_only() -> None:
    evidence = [(make_view().items[0], b"\x89PNG\r\n\x1a\n\x00\nbytes\n")]
    mails = composer(include_evidence=True)
    for mail in (mails.receipt(make_view()), mails.notification(make_view(), evidence)):
        assert b"\r\n" in mail.raw
        assert b"\n" not in mail.raw.replace(b"\r\n", b"")
        assert b"\r" not in mail.raw.replace(b"\r\n", b"")


# -- bodies -------------------------------------------------------------------------


def test_receipt_tells_what_was_received() -> None:
    message = parse(composer().receipt(make_view()))
    for text in (plain(message), html(message)):
        assert "2026-0042" in text
        assert RAW_SHA in text
        assert SCREENSHOT_SHA in text
        assert BODY_SHA in text
        assert "skaermbillede.png" in text
        assert "(uden navn)" in text
        assert "image/png" in text
        assert "245,3 kB" in text
        assert "tirsdag 3. marts 2026 kl. 14.05 (CET)" in text
        assert "uændret" in text
        assert "Lars Jensen" in text
        assert "lars.jensen@kommune.example" in text
        assert "svar på denne mail" in text  # how to keep a follow-up in the case
        assert "hr@kommune.example" in text  # the deputy, if the manager is away


def test_notification_tells_who_when_what_and_next_steps() -> None:
    message = parse(composer().notification(make_view()))
    for text in (plain(message), html(message)):
        assert "2026-0042" in text
        assert "Mette Hansen" in text
        assert "mette.hansen@kommune.example" in text
        assert "tirsdag 3. marts 2026 kl. 14.05 (CET)" in text
        assert "Anonym Afsender" in text
        assert "troll@example.net" in text
        assert "Sidste advarsel" in text
        assert "mandag 2. marts 2026 kl. 23.14 (CET)" in text
        assert "2 elementer modtaget, heraf 1 billede" in text
        assert RAW_SHA in text
        assert SCREENSHOT_SHA in text
        assert "skaermbillede.png" in text
        for step in DEFAULT_STEPS:
            assert step.title.da in text
            assert step.description.da in text
        assert "Afdeling Løn: leder efter routing-tabellen" in text
        assert "Dit første svar kvitterer for sagen" in text
        assert "senest onsdag 4. marts 2026 kl. 14.05 (CET)" in text
        assert "frist 14 dage efter første fraværsdag" in text
        assert "inden for 1 arbejdsdag" in " ".join(text.split())
        assert "din stedfortræder" in text
    assert "1. Psykisk førstehjælp" in plain(message)
    assert "5. Opfølgning og debriefing" in plain(message)


def test_a_notification_without_pictures_does_not_count_zero_of_them() -> None:
    view = make_view()
    message = parse(composer().notification(replace(view, items=view.items[1:])))
    for text in (plain(message), html(message)):
        assert "1 element modtaget:" in text
        assert "heraf" not in text and "0 billeder" not in text


def test_notification_says_when_no_original_was_found() -> None:
    message = parse(composer().notification(make_view(original=None)))
    assert "Ikke fundet" in plain(message)
    assert "Ikke fundet" in html(message)
    assert "troll@example.net" not in plain(message)


def test_summer_time_is_shown_as_cest() -> None:
    view = make_view(received_at=datetime(2026, 7, 1, 10, 0, tzinfo=UTC))
    assert "1. juli 2026 kl. 12.00 (CEST)" in plain(parse(composer().notification(view)))


def test_english_receipt_when_the_workplace_language_is_english() -> None:
    message = parse(composer(language="en").receipt(make_view()))
    assert message["Subject"].startswith("[Case 2026-0042] ")
    assert message["Content-Language"] == "en"
    assert "Tuesday 3 March 2026, 14:05 (CET)" in plain(message)
    assert "(no name)" in html(message)
    assert SCREENSHOT_SHA in html(message)


def test_manager_languages_give_one_manager_english() -> None:
    mails = composer(manager_languages={"Lars.Jensen@kommune.example": "en"})
    assert mails.language_for("lars.jensen@kommune.example") == "en"
    assert mails.language_for("someone.else@kommune.example") == "da"
    english = parse(mails.notification(make_view()))
    assert english["Subject"].startswith("[Case 2026-0042] ")
    assert "2 items received, of which 1 image" in plain(english)
    assert "Your first reply acknowledges the case" in plain(english)
    assert DEFAULT_STEPS[0].description.en in html(english)
    assert "by Wednesday 4 March 2026, 14:05 (CET)" in plain(english)
    danish = parse(mails.notification(make_view(manager="anne@kommune.example")))
    assert danish["Subject"].startswith("[Sag 2026-0042] ")
    receipt = parse(mails.receipt(make_view()))
    assert receipt["Subject"].startswith("[Sag 2026-0042] ")  # the reporter's language


def without_date_and_id(raw: bytes) -> bytes:
    """The mail's bytes but for what differs each time: its Date, its Message-ID and the
    random MIME boundaries."""
    raw = re.sub(rb"(?m)^(Date|Message-ID): [^\r]*\r\n", b"", raw)
    return re.sub(rb"={15}\d+==", b"=BOUNDARY=", raw)


@pytest.mark.parametrize("manager_language", ["da", "en"])
def test_a_new_cases_mails_compute_their_shared_context_once_per_language(
        monkeypatch: pytest.MonkeyPatch, manager_language: str) -> None:
    """The receipt and the notification share one context per language, and come out
    byte for byte as when each is composed on its own."""
    mails = composer(manager_languages={"Lars.Jensen@kommune.example": manager_language},
                     include_evidence=True)
    view = make_view()
    alone = (mails.receipt(view, reply_to=RECEIPT_REPLY, status_url="https://s.example/x"),
             mails.notification(view, evidence(), reply_to=NOTIFICATION_REPLY))
    computed: list[str] = []
    real = mails.case_context

    def counting(view: CaseMailView, language: str) -> dict[str, object]:
        computed.append(language)
        return real(view, language)

    monkeypatch.setattr(mails, "case_context", counting)
    contexts = mails.contexts(view)
    shared = (mails.receipt(view, reply_to=RECEIPT_REPLY, status_url="https://s.example/x",
                            contexts=contexts),
              mails.notification(view, evidence(), reply_to=NOTIFICATION_REPLY,
                                 contexts=contexts))
    assert computed == sorted({"da", manager_language}, key=["da", "en"].index)
    for one, other in zip(alone, shared, strict=True):
        assert without_date_and_id(one.raw) == without_date_and_id(other.raw)
        assert b"Message-ID" not in without_date_and_id(one.raw)
    # Each mail adds its own keys to a copy: the shared context stays as computed.
    assert not {"status_url", "evidence_attached"} & set(contexts.of("da"))
    assert len(parse(shared[1]).get_payload()) == 1 + len(evidence())  # the items attached


def test_unknown_manager_language_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="manager_languages"):
        composer(manager_languages={"lars.jensen@kommune.example": "de"})


def test_default_plan_is_the_five_steps_of_the_guidance() -> None:
    assert [step.key for step in DEFAULT_STEPS] == [
        "first-aid", "documentation", "stop", "registration", "follow-up"]
    assert DEFAULT_STEPS[0].title.da == "Psykisk førstehjælp"
    assert (DEFAULT_STEPS[0].due, DEFAULT_STEPS[0].working_days) == ("P1D", True)
    registration = DEFAULT_STEPS[3]
    assert "EASY" in registration.description.da
    assert (registration.due, registration.working_days, registration.due_after) == (
        "P14D", False, "first_absence_day")


def test_related_cases_show_a_number_only_for_the_managers_own_cases() -> None:
    view = make_view(related=(RelatedLine("2026-0007", ("sender",)),
                              RelatedLine(None, ("domain", "image"))))
    text = plain(parse(composer().notification(view)))
    assert "Sagen ligner din sag 2026-0007 (samme afsender)." in text
    assert ("Sagen ligner en sag, som en anden leder behandler (samme afsenderdomæne, "
            "samme skærmbillede).") in text
    english = plain(parse(composer(language="en").notification(view)))
    assert "matches a case handled by another manager" in english
    assert "MØNSTER" not in plain(parse(composer().notification(make_view())))


def test_notification_lists_the_reply_commands_when_given() -> None:
    mails = MailComposer(NotifySettings(), intake_address=INTAKE, hostname="h",
                         command_help={"da": (("kvitter", "kvitterer for sagen"),)})
    text = plain(parse(mails.notification(make_view())))
    assert "kvitter\r\n      kvitterer for sagen" in text
    assert "Skriv kommandoer" not in plain(parse(composer().notification(make_view())))


# -- overrides ------------------------------------------------------------------------


def test_template_dir_overrides_one_template_by_name(tmp_path: Path) -> None:
    (tmp_path / "receipt.txt.j2").write_text(
        "Egen tekst for sag {{ case_number }}\n", encoding="utf-8")
    message = parse(composer(template_dir=str(tmp_path)).receipt(make_view()))
    assert plain(message).splitlines() == ["Egen tekst for sag 2026-0042"]
    assert SCREENSHOT_SHA in html(message)  # the others stay built-in
    assert message["Subject"].startswith("[Sag 2026-0042] Kvittering")


def test_an_overridden_subject_keeps_the_case_tag(tmp_path: Path) -> None:
    (tmp_path / "notification.subject.j2").write_text("Ny sag\nBcc: x@y.example\n",
                                                      encoding="utf-8")
    message = parse(composer(template_dir=str(tmp_path)).notification(make_view()))
    assert message["Subject"] == "[Sag 2026-0042] Ny sag Bcc: x@y.example"
    assert message["Bcc"] is None


def test_an_override_speaks_the_readers_language_through_the_catalogs(tmp_path: Path) -> None:
    (tmp_path / "receipt.txt.j2").write_text(
        "{% trans %}Received: {{ received }}{% endtrans %}\n", encoding="utf-8")
    danish = plain(parse(composer(template_dir=str(tmp_path)).receipt(make_view())))
    english = plain(parse(composer(template_dir=str(tmp_path), language="en").receipt(
        make_view())))
    assert danish.startswith("Modtaget: ")
    assert english.startswith("Received: ")


def test_old_per_language_overrides_are_refused_at_start(tmp_path: Path) -> None:
    (tmp_path / "da").mkdir()
    (tmp_path / "da" / "receipt.txt.j2").write_text("Egen tekst\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"notify\.template_dir: .*da/receipt\.txt\.j2 is "
                       r"written for the old per-language layout.*README"):
        composer(template_dir=str(tmp_path))


def test_missing_template_dir_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="template_dir"):
        composer(template_dir=str(tmp_path / "nowhere"))


# -- evidence attachments ----------------------------------------------------------------


def evidence() -> list[tuple[EvidenceLine, bytes]]:
    """The view's two items with their bytes, and a forwarded message."""
    screenshot, body = make_view().items
    nested = EvidenceLine(filename=None, content_type="message/rfc822", size=20,
                          sha256="d" * 64, role="nested-message", is_image=False)
    return [(screenshot, b"\x89PNG\r\n\x1a\nPIXELS"), (body, b"HEMMELIG TEKST\n"),
            (nested, b"Subject: x\r\n\r\nhej\r\n")]


def test_no_attachments_unless_include_evidence() -> None:
    mail = composer().notification(make_view(), evidence())
    message = parse(mail)
    assert list(message.iter_attachments()) == []
    assert message.get_content_type() == "multipart/alternative"
    assert b"HEMMELIG" not in mail.raw
    assert b"PIXELS" not in mail.raw
    assert "Indholdet står ikke i denne mail" in plain(message)


def test_include_evidence_attaches_the_exact_bytes() -> None:
    message = parse(composer(include_evidence=True).notification(make_view(), evidence()))
    attachments = list(message.iter_attachments())
    assert [part.get_filename() for part in attachments] == [
        "skaermbillede.png", "bevis-2.txt", "bevis-3.eml"]
    assert [part.get_content_type() for part in attachments] == [
        "image/png", "text/plain", "application/octet-stream"]
    assert [part.get_payload(decode=True) for part in attachments] == [
        data for _, data in evidence()]
    assert "vedhæftet denne mail" in plain(message)
    assert "2026-0042" in plain(message)  # the text is still there, beside the files


def test_include_evidence_without_bytes_says_content_is_not_included() -> None:
    message = parse(composer(include_evidence=True).notification(make_view()))
    assert list(message.iter_attachments()) == []
    assert "Indholdet står ikke i denne mail" in plain(message)


# -- escaping and injection ------------------------------------------------------------


def test_html_in_a_filename_or_subject_is_escaped() -> None:
    script = "<script>alert(1)</script>"
    item = replace(make_view().items[0], filename=f"{script}.png")
    found = make_view().original
    assert found is not None
    original = replace(found, subject=script)
    view = make_view(items=(item,), original=original, report_subject=f"VS: {script}",
                     routing_reason=script)
    for mail in (composer().receipt(view), composer().notification(view)):
        message = parse(mail)
        assert "<script>" not in html(message)
        assert "&lt;script&gt;alert(1)&lt;/script&gt;.png" in html(message)
        assert f"{script}.png" in plain(message)  # plain text shows it as it is


def test_line_breaks_in_subject_and_names_do_not_inject_headers() -> None:
    view = make_view(report_subject="Hej\r\nBcc: evil@example.net\r\nX-Evil: 1",
                     reporter_name="Mette\r\nCc: evil@example.net",
                     manager_name="Lars\nX-Evil: 2")
    for mail in (composer().receipt(view), composer().notification(view)):
        message = parse(mail)
        assert message["Bcc"] is None
        assert message["Cc"] is None
        assert message["X-Evil"] is None
        assert b"\r\nBcc:" not in mail.raw
        assert b"\r\nX-Evil:" not in mail.raw
        assert len(message["To"].addresses) == 1
    receipt = parse(composer().receipt(view))
    assert receipt["Subject"] == (
        "[Sag 2026-0042] Kvittering: Hej Bcc: evil@example.net X-Evil: 1")
    # A display name is the sender's word: the receipt is addressed to the bare address.
    assert receipt["To"].addresses[0].display_name == ""


def test_line_breaks_in_a_filename_do_not_fake_lines_in_the_text() -> None:
    item = replace(make_view().items[0], filename="a.png\nSHA-256: " + "f" * 64)
    text = plain(parse(composer().receipt(make_view(items=(item,)))))
    assert "\nSHA-256: " + "f" * 64 not in text
    assert "a.png SHA-256: " + "f" * 64 in text


def test_danish_names_round_trip_in_display_names() -> None:
    view = make_view(reporter_name="Søren Ærø", manager_name="Åse Østergård")
    receipt = composer().receipt(view)
    notification = composer().notification(view)
    assert parse(receipt)["To"].addresses[0].display_name == ""  # the sender's word: left out
    assert parse(notification)["To"].addresses[0].display_name == "Åse Østergård"
    for mail in (receipt, notification):
        header_block(mail.raw).decode("ascii")  # RFC 2047 encoded words, no raw 8-bit
    assert b"=?utf-8?" in header_block(notification.raw)
    assert "Hej Søren Ærø" in plain(parse(receipt))
