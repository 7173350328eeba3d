"""Replies to a notification mail: the manager's own text, and the commands at its top."""

from __future__ import annotations

import dataclasses
import random
from datetime import date

import pytest

from intake.commands.reply.absence import Absence
from intake.commands.reply.acknowledge import Acknowledge
from intake.commands.reply.close import Close
from intake.commands.reply.help import Help
from intake.commands.reply.medium import Medium
from intake.commands.reply.parser import (
    COMMAND_WORDS,
    ParsedReply,
    UnknownCommand,
    command_help,
    parse_reply,
    reply_lines,
)
from intake.commands.reply.relation import Relation
from intake.commands.reply.step_done import StepDone
from intake.commands.reply.witness import Witness
from intake.parse.reply_text import new_text_of_reply
from storage.i18n.catalogs import LANGUAGES

TODAY = date(2026, 11, 24)

OUTLOOK_DA = (
    "Fra: Chikanemail <chikanemail@kommune.dk>\n"
    "Sendt: 17. november 2026 10:12\n"
    "Til: Hanne Hansen <hh@kommune.dk>\n"
    "Emne: [Sag 2026-0001] Ny chikanesag\n"
    "\n"
    "Der er oprettet en ny sag. Svar på denne mail med kommandoer.\n"
    "kvitter\n"
)
OUTLOOK_EN = (
    "________________________________\n"
    "From: Chikanemail <chikanemail@kommune.dk>\n"
    "Sent: Tuesday, November 17, 2026 10:12 AM\n"
    "To: Hanne Hansen <hh@kommune.dk>\n"
    "Subject: [Case 2026-0001] New harassment case\n"
    "\n"
    "A new case has been opened.\n"
)
# Outlook's HTML body turned into text: bold labels, blank lines between them.
OUTLOOK_HTML_DA = (
    "*Fra:* Chikanemail <chikanemail@kommune.dk>\n"
    "\n"
    "*Sendt:* 17. november 2026 10:12\n"
    "*Til:* Hanne Hansen <hh@kommune.dk>\n"
    "*Emne:* [Sag 2026-0001] Ny chikanesag\n"
    "\n"
    "Der er oprettet en ny sag.\n"
)
GMAIL_EN = (
    "On Tue, Nov 17, 2026 at 10:12 AM Chikanemail <chikanemail@kommune.dk> wrote:\n"
    "\n"
    "> A new case has been opened.\n"
    "> ack\n"
)
GMAIL_DA = (
    "Den tir. 17. nov. 2026 kl. 10.12 skrev Chikanemail <chikanemail@kommune.dk>:\n"
    "\n"
    "> Der er oprettet en ny sag.\n"
    "> kvitter\n"
)
APPLE_EN = (
    "On 17 Nov 2026, at 10:12, Chikanemail <chikanemail@kommune.dk> wrote:\n"
    "\n"
    "> A new case has been opened.\n"
    "> \n"
    "> close: resolved\n"
)
SIGNATURE_DA = (
    "Med venlig hilsen\n"
    "Hanne Hansen\n"
    "Afdelingsleder, Skole Nord\n"
    "Tlf. 12 34 56 78\n"
)


def parse(text: str, today: date = TODAY) -> ParsedReply:
    return parse_reply(text, today=today)


# -- new_text_of_reply: quoted history ---------------------------------------------------


@pytest.mark.parametrize(
    "history",
    [OUTLOOK_DA, OUTLOOK_EN, OUTLOOK_HTML_DA, GMAIL_EN, GMAIL_DA, APPLE_EN],
    ids=["outlook-da", "outlook-en", "outlook-html-da", "gmail-en", "gmail-da", "apple-en"],
)
def test_quoted_history_of_each_mail_program_is_removed(history: str) -> None:
    reply = f"Jeg har talt med hende.\n\nVi holder møde i morgen.\n\n{history}"
    assert new_text_of_reply(reply) == "Jeg har talt med hende.\n\nVi holder møde i morgen."


@pytest.mark.parametrize(
    "header",
    [
        "On 17 Nov 2026, at 10:12, Chikanemail <chikanemail@kommune.dk> wrote:",
        "On Tue, 17 Nov 2026 10:12:00 +0100 Chikanemail <chikanemail@kommune.dk> wrote:",
        "On 2026-11-17 10:12, Chikanemail wrote:",
        "Chikanemail <chikanemail@kommune.dk> wrote:",
        "Den 17. nov. 2026 kl. 10.12 skrev Chikanemail <chikanemail@kommune.dk>:",
        "Den tir. 17. nov. 2026 kl. 10.12 skrev Hanne <h@x.dk>:",
        "Den 17-11-2026 kl. 10:12 skrev Chikanemail:",
        "17. nov. 2026 kl. 10.12 skrev Chikanemail <chikanemail@kommune.dk>:",
        "tir. 17. nov. 2026 10.12 skrev Chikanemail <chikanemail@kommune.dk>:",
        "Chikanemail skrev den 17-11-2026 10:12:",
        "Chikanemail <chikanemail@kommune.dk> skrev:",
        "-----Original Message-----",
        "-----Oprindelig meddelelse-----",
        "----- Videresendt meddelelse -----",
        "---------- Forwarded message ---------",
        "-------- Original Message --------",
        "Begin forwarded message:",
        "Start på videresendt besked:",
        "________________________________",
        "> On 17 Nov 2026, at 10:12, Chikanemail <chikanemail@kommune.dk> wrote:",
    ],
)
def test_every_quote_header_ends_the_new_text(header: str) -> None:
    reply = f"kvitter\n\n{header}\n\nDer er oprettet en ny sag.\nluk\n"
    assert new_text_of_reply(reply) == "kvitter"


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("On Tue, Nov 17, 2026 at 10:12 AM Chikanemail <", "chikanemail@kommune.dk> wrote:"),
        ("On Tue, Nov 17, 2026 at 10:12 AM Chikanemail", "<chikanemail@kommune.dk> wrote:"),
        ("Den tir. 17. nov. 2026 kl. 10.12 skrev Chikanemail", "<chikanemail@kommune.dk>:"),
    ],
)
def test_an_attribution_wrapped_onto_two_lines_is_found_on_its_first_line(
    first: str, second: str
) -> None:
    reply = f"Jeg ringer til hende.\n\n{first}\n{second}\n\n> Ny sag\n"
    assert new_text_of_reply(reply) == "Jeg ringer til hende."


def test_apple_mail_reply_drops_the_attribution_and_the_quoted_lines() -> None:
    reply = "Jeg tager mig af det.\n\n" + APPLE_EN
    assert new_text_of_reply(reply) == "Jeg tager mig af det."


def test_outlook_header_with_cc_and_wrapped_addresses_is_history() -> None:
    reply = (
        "Set.\n\n"
        "From: Chikanemail <chikanemail@kommune.dk>\n"
        "Sent: 17 November 2026 10:12\n"
        "To: Hanne Hansen <hh@kommune.dk>;\n"
        "Peter Jensen <pj@kommune.dk>\n"
        "Cc: HR <hr@kommune.dk>\n"
        "Subject: New case\n"
    )
    assert new_text_of_reply(reply) == "Set."


def test_outlook_mobile_header_with_date_label_is_history() -> None:
    reply = (
        "ok\n\n"
        "From: Chikanemail <chikanemail@kommune.dk>\n"
        "Date: Tuesday, 17 November 2026 at 10:12\n"
        "To: Hanne Hansen <hh@kommune.dk>\n"
        "Subject: New case\n"
    )
    assert new_text_of_reply(reply) == "ok"


def test_bold_markers_around_labels_in_either_place_are_recognised() -> None:
    reply = (
        "Noteret.\n\n"
        "**Fra**: Chikanemail <chikanemail@kommune.dk>\n"
        "**Dato**: 17. november 2026 10:12\n"
        "**Emne**: Ny sag\n"
    )
    assert new_text_of_reply(reply) == "Noteret."


@pytest.mark.parametrize(
    "text",
    [
        "Den 3. marts skrev hun:\nDu er dum.",
        "Fra: skolens kontor fik vi en besked.\nTil: forældrene sendte vi svar.",
        "Fra: Peter\nDet var ham.",
        "Hun skrev til mig:\nDu er dum.",
        "--- Opdatering ---\nHun er tilbage.",
        "On Monday she wrote:\nyou are stupid",
    ],
)
def test_prose_that_resembles_a_quote_header_is_kept(text: str) -> None:
    assert new_text_of_reply(text) == text


def test_without_a_header_all_quoted_lines_are_dropped() -> None:
    reply = "> Hvem har set det?\nPeter så det.\n>> gammelt citat\n\nMere tekst.\n> slut\n"
    assert new_text_of_reply(reply) == "Peter så det.\n\nMere tekst."


def test_quoted_lines_above_the_header_are_dropped_too() -> None:
    reply = "> Hvem?\nPeter.\n\n" + GMAIL_EN
    assert new_text_of_reply(reply) == "Peter."


def test_a_reply_that_is_only_history_is_empty() -> None:
    assert new_text_of_reply(OUTLOOK_DA) == ""
    assert new_text_of_reply("\n\n" + GMAIL_DA) == ""


def test_only_the_first_header_counts() -> None:
    reply = "Første.\n" + GMAIL_DA + "\nAnden tekst i historikken.\n" + OUTLOOK_DA
    assert new_text_of_reply(reply) == "Første."


# -- new_text_of_reply: signatures -------------------------------------------------------


@pytest.mark.parametrize("separator", ["-- ", "--", "--\u00a0"])
def test_signature_after_dash_dash_line_is_removed(separator: str) -> None:
    reply = f"Jeg tager den.\n{separator}\nHanne Hansen\nSkole Nord\n"
    assert new_text_of_reply(reply) == "Jeg tager den."


def test_dash_dash_line_removes_everything_after_it_however_long() -> None:
    reply = "Tekst.\n-- \n" + "\n".join(f"linje {n}" for n in range(30))
    assert new_text_of_reply(reply) == "Tekst."


def test_danish_closing_with_name_title_and_phone_is_removed() -> None:
    reply = "Jeg har talt med hende i dag.\n\n" + SIGNATURE_DA
    assert new_text_of_reply(reply) == "Jeg har talt med hende i dag."


@pytest.mark.parametrize(
    "closing",
    [
        "Med venlig hilsen", "Venlig hilsen", "Mvh", "Mvh.", "Vh", "Kh", "Best regards,",
        "Kind regards,", "Regards", "Best,", "Best", "*Med venlig hilsen*", "MVH",
        "Venlige hilsner", "Hilsen",
    ],
)
def test_each_closing_phrase_starts_the_signature(closing: str) -> None:
    reply = f"Sagen er i gang.\n\n{closing}\nHanne Hansen\n"
    assert new_text_of_reply(reply) == "Sagen er i gang."


@pytest.mark.parametrize("closing", ["Mvh Hanne", "Best regards, Hanne Hansen", "Vh. Hanne H."])
def test_closing_phrase_with_the_name_on_the_same_line_is_removed(closing: str) -> None:
    assert new_text_of_reply(f"Set.\n{closing}\n") == "Set."


def test_closing_phrase_followed_by_more_than_eight_lines_is_kept() -> None:
    body = "\n".join(f"Punkt {n}." for n in range(9))
    reply = f"Indledning.\nMvh\n{body}"
    assert new_text_of_reply(reply) == reply


def test_closing_phrase_followed_by_eight_lines_is_a_signature() -> None:
    body = "\n".join(f"Linje {n}" for n in range(8))
    assert new_text_of_reply(f"Indledning.\nMvh\n\n{body}") == "Indledning."


def test_closing_phrase_inside_a_sentence_is_kept() -> None:
    reply = "Med venlig hilsen fra forældrene kom der et brev.\nBest of all, she is back."
    assert new_text_of_reply(reply) == reply


@pytest.mark.parametrize(
    "footer",
    [
        "Sendt fra min iPhone",
        "Sendt fra min iPad",
        "Sendt fra Outlook til iOS",
        "Sendt fra Outlook til Android",
        "Hent Outlook til iOS",
        "Hent Outlook til Android<https://aka.ms/AAb9ysg>",
        "Sent from my iPhone",
        "Sent from my Android",
        "Sent from my Samsung Galaxy smartphone.",
        "Get Outlook for iOS",
        "Get Outlook for Android",
        "Sent from Mail for Windows",
        "Sendt fra Mail til Windows",
        "*Sendt fra min iPhone*",
    ],
)
def test_mobile_footers_are_removed(footer: str) -> None:
    reply = f"Kvitteret.\n\n{footer}\n"
    assert new_text_of_reply(reply) == "Kvitteret."


def test_mobile_footer_and_history_together() -> None:
    reply = "kvitter\n\nSendt fra min iPhone\n\n" + GMAIL_DA
    assert new_text_of_reply(reply) == "kvitter"


def test_signature_and_outlook_history_together() -> None:
    reply = "Jeg har talt med hende.\n\n" + SIGNATURE_DA + "\n" + OUTLOOK_DA
    assert new_text_of_reply(reply) == "Jeg har talt med hende."


# -- new_text_of_reply: whitespace and robustness ----------------------------------------


def test_inner_blank_lines_stay_and_trailing_space_goes() -> None:
    reply = "\n\nFørste afsnit.   \n\n\nAndet afsnit.\t\n\n   \n"
    assert new_text_of_reply(reply) == "Første afsnit.\n\n\nAndet afsnit."


def test_windows_line_endings_are_read() -> None:
    reply = "Set.\r\n\r\n" + GMAIL_EN.replace("\n", "\r\n")
    assert new_text_of_reply(reply) == "Set."


@pytest.mark.parametrize("text", ["", " ", "\n\n\n", "\t \n"])
def test_empty_input_gives_empty_text(text: str) -> None:
    assert new_text_of_reply(text) == ""


def test_never_raises_on_scrambled_pieces_of_mail() -> None:
    pieces = [
        "On", "wrote:", "skrev", "den", "Den", "2026", "10:12", "<a@b>", ">", "> ", "--", "-- ",
        "Fra:", "*Sendt:*", "Til:", "Emne:", "_" * 12, "-----", "Mvh", "\u00a0", "\r", "\n",
        "\n", "\n", "kvitter", "æøå", "\u200b", ":", "*", "Sent from my", "iPhone", "\x00",
    ]
    generator = random.Random(20261124)
    for _ in range(500):
        text = " ".join(generator.choice(pieces) for _ in range(generator.randrange(40)))
        result = new_text_of_reply(text)
        assert isinstance(result, str)
        assert result == result.rstrip()
        parse(text)


def test_long_lines_do_not_take_long() -> None:
    text = "On " + "1" * 200_000 + " wrote:\n" + "Den " + "2 skrev " * 20_000 + ":\n"
    assert new_text_of_reply(text).startswith("On 111")


# -- parse_reply: each command ----------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "command"),
    [
        ("kvitter", Acknowledge("da")),
        ("kvittér", Acknowledge("da")),
        ("kvitte\u0301r", Acknowledge("da")),  # decomposed é
        ("ack", Acknowledge("en")),
        ("acknowledge", Acknowledge("en")),
        ("ekstern", Relation("external", "da")),
        ("external", Relation("external", "en")),
        ("kollega", Relation("colleague", "da")),
        ("colleague", Relation("colleague", "en")),
        ("ukendt", Relation("unknown", "da")),
        ("unknown", Relation("unknown", "en")),
        ("hjælp", Help("da")),
        ("kommandoer", Help("da")),
        ("help", Help("en")),
        ("commands", Help("en")),
        ("trin 2 udført", StepDone("2", "da")),
        ("trin 2 færdig", StepDone("2", "da")),
        ("trin 2 ok", StepDone("2", "da")),
        ("trin 2 er udført", StepDone("2", "da")),
        ("Trin 3: OK", StepDone("3", "da")),
        ("trin dokumentation udført", StepDone("dokumentation", "da")),
        ("step 2 done", StepDone("2", "en")),
        ("step 2 complete", StepDone("2", "en")),
        ("step documentation done", StepDone("documentation", "en")),
        ("Step 4 is done", StepDone("4", "en")),
        ("medie sms", Medium("sms", "da")),
        ("medie mail", Medium("mail", "da")),
        ("medie e-mail", Medium("mail", "da")),
        ("medie sociale medier", Medium("social-media", "da")),
        ("medie: andet", Medium("other", "da")),
        ("medium email", Medium("mail", "en")),
        ("medium social media", Medium("social-media", "en")),
        ("medium social", Medium("social-media", "en")),
        ("medium other", Medium("other", "en")),
        ("medium SMS", Medium("sms", "en")),
        ("vidne Peter Jensen, lærer i 3.b", Witness("Peter Jensen, lærer i 3.b", "da")),
        ("vidne: Kirsten fra kantinen", Witness("Kirsten fra kantinen", "da")),
        ("witness John Smith (caretaker)", Witness("John Smith (caretaker)", "en")),
        ("luk", Close(None, "da")),
        ("luk sagen", Close(None, "da")),
        ("luk: mødet er holdt", Close("mødet er holdt", "da")),
        ("luk sagen: mødet er holdt", Close("mødet er holdt", "da")),
        ("close", Close(None, "en")),
        ("close the case", Close(None, "en")),
        ("close: resolved at meeting", Close("resolved at meeting", "en")),
        ("close:", Close(None, "en")),
    ],
)
def test_each_command(line: str, command: object) -> None:
    parsed = parse(line)
    assert parsed.commands == (command,)
    assert parsed.unknown == ()
    assert parsed.note == ""


@pytest.mark.parametrize(
    ("line", "day"),
    [
        ("fravær 2026-11-22", date(2026, 11, 22)),
        ("fravær 22-11-2026", date(2026, 11, 22)),
        ("fravær 22.11.2026", date(2026, 11, 22)),
        ("fravær 22/11/2026", date(2026, 11, 22)),
        ("fravær 22.11.26", date(2026, 11, 22)),
        ("fravær 2026-1-5", date(2026, 1, 5)),
        ("fravær 5.1.2026", date(2026, 1, 5)),
        ("fravær 22.11", date(2026, 11, 22)),
        ("fravær 22/11", date(2026, 11, 22)),
        ("fravær 22.11.", date(2026, 11, 22)),
        ("fravær i dag", TODAY),
        ("fravær idag", TODAY),
        ("fravær i går", date(2026, 11, 23)),
        ("fravær igår", date(2026, 11, 23)),
        ("fravaer 22.11.2026", date(2026, 11, 22)),
        ("Fravær: 22.11.2026", date(2026, 11, 22)),
        ("første fraværsdag 22.11.2026", date(2026, 11, 22)),
        ("Første fraværsdag: i går", date(2026, 11, 23)),
        ("første fravær 22.11", date(2026, 11, 22)),
    ],
)
def test_absence_in_danish_with_every_date_format(line: str, day: date) -> None:
    assert parse(line).commands == (Absence(day, "da"),)


@pytest.mark.parametrize(
    ("line", "day"),
    [
        ("absence 2026-11-22", date(2026, 11, 22)),
        ("absence 22/11/2026", date(2026, 11, 22)),
        ("absence today", TODAY),
        ("absence yesterday", date(2026, 11, 23)),
        ("first absence 2026-11-22", date(2026, 11, 22)),
        ("First absence: 22.11", date(2026, 11, 22)),
    ],
)
def test_absence_in_english(line: str, day: date) -> None:
    parsed = parse(line)
    assert parsed.commands == (Absence(day, "en"),)
    assert parsed.language == "en"


@pytest.mark.parametrize(
    ("today", "written", "day"),
    [
        (date(2026, 11, 24), "20.12", date(2026, 12, 20)),  # 26 days ahead: this year
        (date(2026, 11, 24), "25.12", date(2026, 12, 25)),  # exactly 31 days ahead
        (date(2026, 11, 24), "26.12", date(2025, 12, 26)),  # 32 days ahead: last year
        (date(2027, 1, 5), "22.12", date(2026, 12, 22)),  # across new year
        (date(2027, 1, 5), "2/1", date(2027, 1, 2)),
        (date(2028, 3, 1), "29.02", date(2028, 2, 29)),  # leap year
    ],
)
def test_date_without_year_takes_the_nearest_sensible_year(
    today: date, written: str, day: date
) -> None:
    assert parse(f"fravær {written}", today).commands == (Absence(day, "da"),)


@pytest.mark.parametrize(
    ("line", "code", "reason"),
    [
        ("fravær 2026-02-30", "bad-date", "no such date"),
        ("fravær 31.04.2026", "bad-date", "no such date"),
        ("fravær 30/02", "bad-date", "no such date"),
        ("fravær 29.02", "bad-date", "no such date"),  # 2026 is no leap year
        ("fravær 13-13-2026", "bad-date", "no such date"),
        ("absence 2026-00-10", "bad-date", "no such date"),
        ("fravær i morgen", "bad-date", "not a date"),
        ("fravær 22-11", "bad-date", "not a date"),
        ("fravær mandag", "bad-date", "not a date"),
        ("fravær", "missing-argument", "no date given"),
        ("første fraværsdag", "missing-argument", "no date given"),
        ("trin", "missing-argument", "no step given"),
        ("trin 2", "missing-argument", "no 'done' after the step"),
        ("trin 2 mangler", "bad-value", "a step can only be marked done"),
        ("trin ? udført", "bad-value", "not a step number or key"),
        ("medie", "missing-argument", "no medium given"),
        ("medie fax", "bad-value", "not mail, sms, social media or other"),
        ("vidne", "missing-argument", "no witness given"),
        ("witness:", "missing-argument", "no witness given"),
    ],
)
def test_commands_whose_arguments_do_not_parse_are_unknown(
    line: str, code: str, reason: str
) -> None:
    parsed = parse(line)
    assert parsed.commands == ()
    assert parsed.unknown == (UnknownCommand(line=line, reason=reason, code=code),)
    assert parsed.note == ""


@pytest.mark.parametrize(
    ("line", "meant"),
    [("lukk", "luk"), ("kviter", "kvitter"), ("ekstren", "ekstern"), ("Closed", "close"),
     ("medier", "medie"), ("hjaelpe", "hjaelp"), ("acknowledged", "acknowledge")],
)
def test_a_single_word_close_to_a_command_word_is_an_unknown_word(line: str, meant: str) -> None:
    parsed = parse(line)
    assert parsed.commands == ()
    assert parsed.unknown == (
        UnknownCommand(line=line, reason=f"did you mean {meant!r}?", code="unknown-word"),
    )
    assert parsed.note == ""


@pytest.mark.parametrize("line", ["Hej", "Tak", "Okay", "Hanne", "Stop", "Lukket?"])
def test_a_single_word_far_from_every_command_word_is_the_note(line: str) -> None:
    parsed = parse(line)
    assert (parsed.commands, parsed.unknown, parsed.note) == ((), (), line)


# -- parse_reply: tolerated decoration ----------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "Kvitter", "KVITTER", "kvitter.", "Kvitter!", "*kvitter*", "**kvitter**", "_kvitter_",
        "*kvitter.*", "*kvitter*.", "  kvitter  ", "\u00a0kvitter\u00a0", "\tkvitter",
        "kvitter:", "Kvitter!!",
    ],
)
def test_decoration_around_a_command_is_tolerated(line: str) -> None:
    assert parse(line).commands == (Acknowledge("da"),)


def test_bold_command_word_with_plain_argument_from_html() -> None:
    parsed = parse("**Fravær:** 22.11.2026\n*Trin 2* udført\nmedie\u00a0sms")
    assert parsed.commands == (
        Absence(date(2026, 11, 22), "da"), StepDone("2", "da"), Medium("sms", "da"),
    )


def test_unknown_command_keeps_the_line_as_written_but_stripped() -> None:
    parsed = parse("   **Fravær:** 30.02.2026  \n")
    assert parsed.unknown == (
        UnknownCommand(line="**Fravær:** 30.02.2026", reason="no such date", code="bad-date"),
    )


# -- parse_reply: the command block and the note -------------------------------------------


def test_commands_followed_by_a_note() -> None:
    reply = (
        "kvitter\n"
        "fravær 22.11.2026\n"
        "\n"
        "kollega\n"
        "Jeg har talt med hende i dag.\n"
        "\n"
        "Hun er sygemeldt resten af ugen.\n"
    )
    parsed = parse(reply)
    assert parsed.commands == (
        Acknowledge("da"), Absence(date(2026, 11, 22), "da"), Relation("colleague", "da"),
    )
    assert parsed.unknown == ()
    assert parsed.note == "Jeg har talt med hende i dag.\n\nHun er sygemeldt resten af ugen."
    assert parsed.language == "da"


def test_leading_blank_lines_are_skipped() -> None:
    parsed = parse("\n\n   \nack\n\nThanks.")
    assert parsed.commands == (Acknowledge("en"),)
    assert parsed.note == "Thanks."


def test_commands_after_the_note_are_part_of_the_note() -> None:
    parsed = parse("kvitter\nHej Peter\nluk\n")
    assert parsed.commands == (Acknowledge("da"),)
    assert parsed.note == "Hej Peter\nluk"


def test_failed_and_good_commands_mix_in_order() -> None:
    parsed = parse("kvitter\nfravær 2026-02-30\nlukk\nekstern\n\nNote her.")
    assert parsed.commands == (Acknowledge("da"), Relation("external", "da"))
    assert [item.code for item in parsed.unknown] == ["bad-date", "unknown-word"]
    assert parsed.note == "Note her."


@pytest.mark.parametrize(
    "text",
    [
        "Jeg har talt med hende i dag.",
        "I talked to her today, she is fine.",
        "Hun er kollega til krænkeren.",
        "ack, I'll look at it",
    ],
)
def test_a_plain_note_has_no_commands(text: str) -> None:
    parsed = parse(text)
    assert parsed == ParsedReply(commands=(), unknown=(), note=text, language=None)


@pytest.mark.parametrize(
    "text",
    [
        "Luk ikke sagen endnu, jeg venter på svar fra forælderen",
        "Luk ikke sagen",
        "luk den i morgen",
        "Close it after the meeting please",
        "close resolved at meeting",
        "Luk, men først skal vi tale sammen",
    ],
)
def test_prose_beginning_with_luk_or_close_is_not_a_close(text: str) -> None:
    parsed = parse(text + "\n\nMvh\nHanne")
    assert parsed.commands == ()
    assert parsed.unknown == ()
    assert parsed.note == text


@pytest.mark.parametrize(
    "text",
    [
        "Kvitter venligst for modtagelsen",
        "Ukendt hvem det var, hun ved det ikke",
        "Ekstern konsulent har været inde over",
        "Kollega Peter har set det hele",
        "Hjælp mig med at forstå trin 3",
        "Trin 2 er ikke gjort endnu, vi venter",
        "Fravær har der ikke været endnu",
        "Medie og presse må ikke høre om det",
        "Vidne til episoden var en kollega, men hun vil ikke stå frem",
        "First I talked to her, then to him",
        "First, I talked to her",
    ],
)
def test_prose_beginning_with_any_command_word_is_the_note(text: str) -> None:
    parsed = parse(text)
    assert (parsed.commands, parsed.unknown, parsed.note) == ((), (), text)


def test_a_command_before_prose_that_starts_with_a_command_word() -> None:
    parsed = parse("kvitter\nLuk ikke sagen endnu, jeg venter på svar fra forælderen")
    assert parsed.commands == (Acknowledge("da"),)
    assert parsed.note == "Luk ikke sagen endnu, jeg venter på svar fra forælderen"


def test_lines_over_80_characters_are_never_commands() -> None:
    reason = "x" * 80
    parsed = parse(f"luk: {reason}")
    assert parsed.commands == ()
    assert parsed.note == f"luk: {reason}"
    assert parse(f"luk: {reason[:74]}").commands == (Close(reason[:74], "da"),)


def test_witness_text_after_a_colon_may_be_a_sentence() -> None:
    text = "Vidne: til episoden var en kollega, men hun vil ikke stå frem"
    assert parse(text).commands == (
        Witness("til episoden var en kollega, men hun vil ikke stå frem", "da"),
    )


def test_empty_reply() -> None:
    assert parse("") == ParsedReply(commands=(), unknown=(), note="", language=None)


# -- parse_reply: language ---------------------------------------------------------------


def test_language_is_that_of_the_first_command() -> None:
    assert parse("ack\nkvitter").language == "en"
    assert parse("\nkvitter\nack").language == "da"
    assert parse("fravær 2026-02-30\nack").language == "en"


def test_language_of_a_reply_with_only_failed_commands_is_that_of_their_words() -> None:
    assert parse("lukk").language == "da"
    assert parse("absence tomorrow").language == "en"


def test_language_of_a_reply_without_commands_is_none() -> None:
    assert parse("Hej Hanne").language is None


# -- parse_reply: whole replies -----------------------------------------------------------


def test_outlook_reply_in_danish_with_signature() -> None:
    reply = (
        "Kvitter\n"
        "Trin 1 udført\n"
        "\n"
        "Jeg har talt med medarbejderen og hun er OK.\n"
        "\n"
        + SIGNATURE_DA
        + "\n________________________________\n"
        + OUTLOOK_DA
    )
    parsed = parse(reply)
    assert parsed.commands == (Acknowledge("da"), StepDone("1", "da"))
    assert parsed.note == "Jeg har talt med medarbejderen og hun er OK."


def test_outlook_html_reply_with_bold_markers() -> None:
    reply = "*Luk:* mødet er holdt\n\n*Med venlig hilsen*\n*Hanne Hansen*\n\n" + OUTLOOK_HTML_DA
    parsed = parse(reply)
    assert parsed.commands == (Close("mødet er holdt", "da"),)
    assert parsed.note == ""


def test_gmail_reply_in_english_ignores_commands_in_the_quote() -> None:
    reply = "step 2 done\nmedium sms\n\nShe showed me the messages.\n\n-- \nJohn\n\n" + GMAIL_EN
    parsed = parse(reply)
    assert parsed.commands == (StepDone("2", "en"), Medium("sms", "en"))
    assert parsed.note == "She showed me the messages."
    assert parsed.language == "en"


def test_gmail_reply_in_danish() -> None:
    reply = "fravær i går\nvidne Peter Jensen\n\nVh\nHanne\n\n" + GMAIL_DA
    parsed = parse(reply)
    assert parsed.commands == (Absence(date(2026, 11, 23), "da"), Witness("Peter Jensen", "da"))
    assert parsed.note == ""


def test_apple_mail_reply_from_a_phone() -> None:
    reply = "ack\n\nSent from my iPhone\n\n" + APPLE_EN
    parsed = parse(reply)
    assert parsed.commands == (Acknowledge("en"),)
    assert parsed.note == ""


def test_reply_with_nothing_but_the_quote_has_no_commands() -> None:
    assert parse(GMAIL_DA) == ParsedReply(commands=(), unknown=(), note="", language=None)


# -- help and the command types ----------------------------------------------------------


def test_command_help_in_both_languages() -> None:
    danish, english = command_help("da"), command_help("en")
    assert ("trin 2 udført", "markerer trin 2 i beredskabsplanen som udført") in danish
    assert any(syntax == "step 2 done" for syntax, _ in english)
    assert len(danish) == len(english) >= 8
    assert command_help("fr") == danish


@pytest.mark.parametrize("language", ["da", "en"])
def test_every_help_example_parses_as_a_command_of_its_language(language: str) -> None:
    for syntax, _ in command_help(language):
        for example in syntax.split(" / "):
            parsed = parse(example)
            assert len(parsed.commands) == 1, example
            assert parsed.commands[0].language == language


@pytest.mark.parametrize("language", ["da", "en"])
def test_every_listed_command_word_is_read_as_a_command(language: str) -> None:
    for word in COMMAND_WORDS[language]:
        parsed = parse(word)
        assert parsed.note == "", word
        assert parsed.language == language, word
        assert len(parsed.commands) + len(parsed.unknown) == 1, word


def test_commands_and_results_are_frozen() -> None:
    parsed = parse("kvitter")
    with pytest.raises(dataclasses.FrozenInstanceError):
        parsed.commands[0].language = "en"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        parsed.note = "x"  # type: ignore[misc]


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_lines_the_plan_mails_suggest_are_read_as_those_commands(language: str) -> None:
    lines = reply_lines()
    assert parse(lines.acknowledge(language)).commands == (Acknowledge(language=language),)
    assert parse(lines.step_done(2, language)).commands == (
        StepDone(step="2", language=language),)
