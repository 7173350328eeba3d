"""A forward's date without a zone (issue 16): read in the workplace's zone and flagged, or
kept as raw text only; stored, and shown so in the notification, `messages show`,
`cases show` and the export's report.html. Real daemon, real SMTP both ways, both backends."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from intake.commands.cli.main import main
from storage.local_time import local_time_with_zone, read_in_workplace_zone
from storage.messages import list_messages
from storage.models import Message
from tests.mail_flow import REPORTER, CapturingRelay, database_of, list_cases_of, send
from tests.support import INTAKE_ADDRESS, MANAGER, DaemonThread, wait_until, write_toml

COPENHAGEN = ZoneInfo("Europe/Copenhagen")  # [ui] timezone's default

WINTER_RAW = "19. november 2026 21:14"
# 21:14 Danish winter time (CET, +01:00) is 20:14 UTC.
WINTER_UTC = datetime(2026, 11, 19, 20, 14, tzinfo=UTC)


def outlook_text(date: str, subject: str) -> str:
    """A Danish Outlook forward as its text part: a From/Sent block, no separator line."""
    return (f"Se nedenfor.\n\n________________________________\n"
            f"Fra: Kasper Krænker <kasper@eksempel.example>\nSendt: {date}\n"
            f"Til: Ansat <{REPORTER}>\nEmne: {subject}\n\nVi ved hvor du bor.\n")


def outlook_html(date: str, subject: str) -> str:
    """The same forward as Outlook's HTML part."""
    return (f'<html><body><div>Se nedenfor.</div><hr tabindex="-1" style="width:98%">'
            f'<div id="divRplyFwdMsg" dir="ltr"><font face="Calibri, sans-serif">'
            f"<b>Fra:</b> Kasper Krænker &lt;kasper@eksempel.example&gt;<br>"
            f"<b>Sendt:</b> {date}<br><b>Til:</b> Ansat &lt;{REPORTER}&gt;<br>"
            f"<b>Emne:</b> {subject}</font><div>&nbsp;</div></div>"
            f"<div>Vi ved hvor du bor.</div></body></html>")


def english_outlook_text(date: str, subject: str) -> str:
    """An English Outlook forward ("-----Original Message-----")."""
    return (f"See below.\n\n-----Original Message-----\n"
            f"From: Kasper <kasper@eksempel.example>\nSent: {date}\n"
            f"To: {REPORTER}\nSubject: {subject}\n\nWe know where you live.\n")


def forward(key: str, body: str, *, html: bool = False) -> bytes:
    """The employee's mail to the intake address; `key` makes its Message-ID."""
    mail = EmailMessage()
    mail["From"] = f"Ansat <{REPORTER}>"
    mail["To"] = INTAKE_ADDRESS
    mail["Subject"] = f"VS: {key}"
    mail["Message-ID"] = f"<{key}@kommune.example>"
    mail.set_content(body, subtype="html" if html else "plain")
    return mail.as_bytes(policy=policy.SMTP)  # CRLF, as mail programs send


def attached(key: str, date: str) -> bytes:
    """A forward with the original attached, whose Date header names no zone."""
    original = EmailMessage()
    original["From"] = "Kasper <kasper@eksempel.example>"
    original["To"] = REPORTER
    original["Subject"] = "Vedhæftet"
    original["Date"] = date
    original.set_content("Vi ved hvor du bor.\n")
    mail = EmailMessage()
    mail["From"] = f"Ansat <{REPORTER}>"
    mail["To"] = INTAKE_ADDRESS
    mail["Subject"] = f"VS: {key}"
    mail["Message-ID"] = f"<{key}@kommune.example>"
    mail.set_content("Se den vedhæftede.\n")
    mail.add_attachment(original)
    return mail.as_bytes(policy=policy.SMTP)  # CRLF, as mail programs send


# key -> (the mail, what is stored: the date in UTC or None, zone assumed)
REPORTS: dict[str, tuple[bytes, datetime | None, bool]] = {
    "winter-text": (forward("winter-text", outlook_text(WINTER_RAW, "Vinter")), WINTER_UTC,
                    True),
    "winter-html": (forward("winter-html", outlook_html(WINTER_RAW, "Vinter"), html=True),
                    WINTER_UTC, True),
    # Danish summer time (CEST, +02:00).
    "summer": (forward("summer", outlook_text("19. juni 2026 21:14", "Sommer")),
               datetime(2026, 6, 19, 19, 14, tzinfo=UTC), True),
    # A zone written in the line is the mail's own: nothing assumed.
    "zoned": (forward("zoned", english_outlook_text("Thu, 19 Nov 2026 21:14:00 +0000", "Z")),
              datetime(2026, 11, 19, 21, 14, tzinfo=UTC), False),
    # Raw text only, never completed or guessed:
    "no-year": (forward("no-year", outlook_text("19. november 21:14", "x")), None, False),
    "no-time": (forward("no-time", outlook_text("19. november 2026", "x")), None, False),
    "relative": (forward("relative", outlook_text("i går kl. 21.14", "x")), None, False),
    "day-or-month": (forward("day-or-month", english_outlook_text("05/11/2026 21:14", "x")),
                     None, False),
    # 02:30 on 25 October 2026 happens twice in Denmark; on 29 March 2026 not at all.
    "hour-repeated": (forward("hour-repeated", outlook_text("25. oktober 2026 02:30", "x")),
                      None, False),
    "hour-skipped": (forward("hour-skipped", outlook_text("29. marts 2026 02:30", "x")),
                     None, False),
    # An attached original's Date header was written in its sender's zone, unknown here.
    "attached": (attached("attached", "Thu, 19 Nov 2026 21:14:00"), None, False),
}


def processed_rows(daemon: DaemonThread, count: int) -> dict[str, Message]:
    """The daemon's message rows by the key in their Message-ID, once `count` are done."""
    database = database_of(daemon)

    def done() -> list[Message]:
        rows = list_messages(database)
        finished = len(rows) == count and all(row.state == "processed" for row in rows)
        return rows if finished else []

    try:
        rows = wait_until(done, timeout=60, message=f"{count} messages processed")
    finally:
        database.dispose()
    return {str(row.message_id).strip("<>").split("@")[0]: row for row in rows}


def test_zone_less_dates_are_read_in_the_workplace_zone_or_kept_raw(
        start: Any, relay: tuple[CapturingRelay, int]) -> None:
    daemon = start()
    for raw, _date, _assumed in REPORTS.values():
        send(daemon, raw)
    rows = processed_rows(daemon, len(REPORTS))
    assert set(rows) == set(REPORTS)
    for key, (_raw, date, assumed) in REPORTS.items():
        row = rows[key]
        assert row.original_rule is not None, key
        assert row.original_date_raw, key  # the text is always kept
        assert (row.original_date, row.original_date_zone_assumed) == (date, assumed), key
    assert rows["winter-text"].original_rule == "outlook-da"
    assert rows["winter-html"].original_rule == "outlook-da"
    assert rows["winter-html"].original_date_raw == WINTER_RAW
    assert rows["attached"].original_rule == "attached-message"
    # In Danish time: +01:00 in winter, +02:00 in summer.
    local = {key: local_time_with_zone(date, COPENHAGEN)
             for key in ("winter-text", "winter-html", "summer")
             if (date := rows[key].original_date) is not None}
    assert local == {"winter-text": "2026-11-19 21:14:00 CET (+0100)",
                     "winter-html": "2026-11-19 21:14:00 CET (+0100)",
                     "summer": "2026-06-19 21:14:00 CEST (+0200)"}


def test_daylight_saving_edges() -> None:
    """The hour before and after each change reads; the repeated and skipped ones do not."""
    assert read_in_workplace_zone(datetime(2026, 10, 25, 2, 30), COPENHAGEN) is None
    assert read_in_workplace_zone(datetime(2026, 3, 29, 2, 30), COPENHAGEN) is None
    around = {datetime(2026, 10, 25, 1, 59): 2, datetime(2026, 10, 25, 3, 0): 1,
              datetime(2026, 3, 29, 1, 59): 1, datetime(2026, 3, 29, 3, 0): 2}
    for wall, hours in around.items():
        moment = read_in_workplace_zone(wall, COPENHAGEN)
        assert moment is not None and moment.replace(tzinfo=None) == wall
        assert moment.utcoffset() == timedelta(hours=hours)


# What each view says of a zone-assumed date and of a raw-only one, by language.
ASSUMED_NOTE = {
    "da": "Tidszone antaget: mailen angiver ingen, så tiden er læst som dansk tid.",
    "en": "Time zone assumed: the mail names none, so the time is read as Danish time.",
}
SHOWN_DATE = {"da": "torsdag 19. november 2026 kl. 21.14 (CET)",
              "en": "Thursday 19 November 2026, 21:14 (CET)"}
RAW_NOTE = {"da": "Som skrevet i mailen; kunne ikke læses som et præcist tidspunkt.",
            "en": "As written in the mail; it could not be read as an exact time."}
REPORT_ASSUMED = {
    "da": "tidszone antaget: mailen angiver ingen, så tiden er læst som dansk tid",
    "en": "time zone assumed: the mail names none, so the time is read as Danish time",
}
REPORT_RAW = {"da": "som skrevet i mailen; kunne ikke læses som et præcist tidspunkt",
              "en": "as written in the mail; it could not be read as an exact time"}


def words(text: str) -> str:
    """The text with every run of white space one space (mail bodies wrap)."""
    return " ".join(text.split())


def mail_text(message: EmailMessage, subtype: str) -> str:
    """What a reader sees of the mail's text/plain or text/html part, in `words`."""
    part = message.get_body((subtype,))
    assert part is not None
    return words(str(part.get_content()).replace("&quot;", '"').replace("&#34;", '"'))


# Each language once, each on one backend: the rows test above covers both backends.
@pytest.mark.parametrize(("database_url", "language"),
                         [("sqlite", "da"), ("postgresql", "en")], indirect=["database_url"])
def test_every_view_says_the_zone_was_assumed(
        start: Any, relay: tuple[CapturingRelay, int], tmp_path: Path, language: str) -> None:
    capture, _ = relay
    daemon = start(language=language)
    send(daemon, REPORTS["winter-html"][0])
    send(daemon, REPORTS["hour-repeated"][0])
    notes = wait_until(lambda: capture.to(MANAGER) if len(capture.to(MANAGER)) == 2 else [],
                       message="two notifications")
    by_subject = {("winter" if "Vinter" in mail_text(note.message, "plain") else "raw"):
                  note.message for note in notes}
    winter, raw_only = by_subject["winter"], by_subject["raw"]
    for subtype in ("plain", "html"):
        text = mail_text(winter, subtype)
        assert SHOWN_DATE[language] in text
        assert ASSUMED_NOTE[language] in text and f'"{WINTER_RAW}"' in text
        other = mail_text(raw_only, subtype)
        assert "25. oktober 2026 02:30" in other and RAW_NOTE[language] in other
        assert ASSUMED_NOTE[language] not in other

    storage = daemon.config.storage
    config = write_toml(tmp_path / "cli.toml", {
        "storage": {"data_dir": storage.data_dir, "database_url": storage.effective_database_url},
        "ui": {"language": language}})
    runner = CliRunner(env={"COLUMNS": "400"})

    def cli(*args: str) -> str:
        result = runner.invoke(main, ["--config", str(config), *args])
        assert result.exit_code == 0, result.output
        return result.stdout

    rows = processed_rows(daemon, 2)
    shown = json.loads(cli("messages", "show", str(rows["winter-html"].id), "--json"))
    assert shown["original"]["date_zone_assumed"] is True
    assert datetime.fromisoformat(shown["original"]["date"]) == WINTER_UTC
    assert shown["original"]["date_raw"] == WINTER_RAW
    # The CLI speaks [ui] language too.
    assumed_line = {
        "da": (f"{SHOWN_DATE[language]}, tidszone antaget (mailen angiver ingen, så tiden er "
               f'læst som dansk tid), i mailen: "{WINTER_RAW}"'),
        "en": (f"{SHOWN_DATE[language]}, zone assumed (the mail names none; read as Danish "
               f'time), as written: "{WINTER_RAW}"')}[language]
    assert assumed_line in cli("messages", "show", str(rows["winter-html"].id))
    raw_line = {"da": '"25. oktober 2026 02:30" (som skrevet i mailen; kunne ikke læses som et '
                      'præcist tidspunkt)',
                "en": '"25. oktober 2026 02:30" (as written; not read as an exact time)'}
    assert raw_line[language] in cli("messages", "show", str(rows["hour-repeated"].id))

    cases = {number: json.loads(cli("cases", "show", number, "--json"))
             for number in list_cases_of(daemon)}
    numbers = {message["message_id"]: number for number, case in cases.items()
               for message in case["messages"]}
    winter_case = numbers[rows["winter-html"].message_id]
    assert cases[winter_case]["original"]["date_zone_assumed"] is True
    assert assumed_line in cli("cases", "show", winter_case)

    cli("export", winter_case, "--out", str(tmp_path / "winter"))
    report = words((tmp_path / "winter" / "report.html").read_text("utf-8")
                   .replace("&#34;", '"').replace("&quot;", '"'))
    assert REPORT_ASSUMED[language] in report and f'"{WINTER_RAW}"' in report
    raw_case = numbers[rows["hour-repeated"].message_id]
    cli("export", raw_case, "--out", str(tmp_path / "raw"))
    report = words((tmp_path / "raw" / "report.html").read_text("utf-8")
                   .replace("&#34;", '"').replace("&quot;", '"'))
    assert '"25. oktober 2026 02:30"' in report and REPORT_RAW[language] in report
    assert REPORT_ASSUMED[language] not in report
