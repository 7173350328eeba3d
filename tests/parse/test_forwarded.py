"""Finding the original of a forward: attached messages, inline header blocks, the corpus."""

from __future__ import annotations

import base64
import email
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from email import policy
from email.message import EmailMessage

import pytest

from intake.parse.forwarded.original import find_inline_forward, original_from_attached
from intake.parse.html_text import html_to_text
from storage.forwarded_original import ForwardedOriginal
from tests.support import CORPUS

CONTEXT = "Se nedenfor \u2013 det er tredje gang i denne uge."
CET = timezone(timedelta(hours=1))

# -- helpers (local to this file) ---------------------------------------------


def forward_mail(body: str, *, html: bool = False) -> bytes:
    """A mail as the employee's program sends it to the intake address."""
    message = EmailMessage()
    message["From"] = "Mette Hansen <mette.hansen@kommune.dk>"
    message["To"] = "chikanemail@kommune.example"
    message["Subject"] = "VS: Sidste advarsel"
    message.set_content(body, subtype="html" if html else "plain")
    return message.as_bytes()


def body_text(message: EmailMessage) -> str | None:
    """The first text/plain part, else the first text/html part as text; None if neither.

    The same choice the intake pipeline makes; errors in get_content() are the parser's.
    """
    first_html: str | None = None
    for part in message.walk():
        if part.get_content_maintype() != "text":
            continue
        content = _content(part)
        if content is None:
            continue
        if part.get_content_subtype() == "plain":
            return content
        if part.get_content_subtype() == "html" and first_html is None:
            first_html = html_to_text(content)
    return first_html


def _content(part: EmailMessage) -> str | None:
    try:
        content = part.get_content()
    except Exception:  # the email package's own failure, tested elsewhere
        return None
    return content if isinstance(content, str) else None


def parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def find_in_mail(raw: bytes) -> ForwardedOriginal | None:
    text = body_text(parse(raw))
    assert text is not None
    return find_inline_forward(text)


@dataclass(frozen=True)
class Expected:
    rule: str
    from_name: str | None
    from_address: str | None
    date: datetime | None
    date_raw: str
    subject: str


def check(found: ForwardedOriginal | None, expected: Expected) -> None:
    assert found is not None
    assert found.rule == expected.rule
    assert found.from_name == expected.from_name
    assert found.from_address == expected.from_address
    assert found.date_raw == expected.date_raw
    assert found.subject == expected.subject
    if expected.date is None:
        assert found.date is None
    else:
        assert found.date == expected.date  # equal instants when both are aware
        assert (found.date.tzinfo is None) == (expected.date.tzinfo is None)
        if expected.date.tzinfo is not None:
            assert found.date.utcoffset() == expected.date.utcoffset()
    json.dumps(found.to_json())


# -- the formats, as mail programs write them ----------------------------------

OUTLOOK_EN = f"""{CONTEXT}

Mette

-----Original Message-----
From: Jens Jensen [mailto:Jens.Jensen@Firma.dk]
Sent: Monday, March 3, 2025 10:15 AM
To: Mette Hansen <mette.hansen@kommune.dk>
Subject: Dit projekt

Du er den dårligste projektleder vi nogensinde har haft.
"""

OUTLOOK_DA = f"""{CONTEXT}

-----Oprindelig meddelelse-----
Fra: Søren Østergaard <soren.ostergaard@firma.dk>
Sendt: 3. marts 2025 10:15
Til: Mette Hansen <mette.hansen@kommune.dk>
Cc: HR <hr@kommune.dk>
Emne: Sidste advarsel

Hvis du siger noget til nogen, ved du hvad der sker.
"""

OUTLOOK_365_DA_NO_SEPARATOR = f"""{CONTEXT}

________________________________
Fra: Søren Østergaard <soren.ostergaard@firma.dk>
Sendt: mandag den 3. marts 2025 10:15
Til: Mette Hansen <mette.hansen@kommune.dk>
Emne: Sidste advarsel

Tekst.
"""

OUTLOOK_HTML_DA = f"""<html><head><style>p.MsoNormal {{margin:0cm}}</style></head>
<body lang="DA"><div class="WordSection1">
<p class="MsoNormal">{CONTEXT}<o:p></o:p></p>
<p class="MsoNormal"><o:p>&nbsp;</o:p></p>
<div style="border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0cm 0cm 0cm">
<p class="MsoNormal"><b>Fra:</b> S&oslash;ren &Oslash;stergaard &lt;soren.ostergaard@firma.dk&gt;
<br><b>Sendt:</b> mandag den 3. marts 2025 10:15<br>
<b>Til:</b> <a href="mailto:mette.hansen@kommune.dk">Mette Hansen</a><br>
<b>Emne:</b> Sidste advarsel<o:p></o:p></p></div>
<p class="MsoNormal">Hvis du siger noget til nogen, ved du hvad der sker.</p>
</div></body></html>"""

OUTLOOK_HTML_EN = f"""<html><body><div>{CONTEXT}</div><hr>
<div id="divRplyFwdMsg"><font face="Calibri"><b>From:</b> Jens Jensen &lt;jens@firma.dk&gt;<br>
<b>Sent:</b> Monday, March 3, 2025 10:15 AM<br><b>To:</b> Mette Hansen<br>
<b>Subject:</b> Dit projekt</font><div>&nbsp;</div></div><div>Tekst.</div></body></html>"""

GMAIL_EN = f"""{CONTEXT}

---------- Forwarded message ---------
From: Jens Jensen <jens.jensen@gmail.com>
Date: Mon, Mar 3, 2025 at 10:15 AM
Subject: Dit projekt
To: Mette Hansen <mette.hansen@kommune.dk>


Du er den dårligste projektleder vi nogensinde har haft.
"""

GMAIL_DA_BOLD = f"""{CONTEXT}

---------- Videresendt meddelelse ----------
*Fra:* Søren Østergaard <soren@gmail.com>
*Date:* man. 3. mar. 2025 kl. 10.15
*Subject:* Sidste advarsel
*To:* Mette Hansen <mette.hansen@kommune.dk>

Tekst.
"""

GMAIL_DA_BESKED = f"""{CONTEXT}

---------- Videresendt besked ---------
Fra: Søren Østergaard <soren@gmail.com>
Dato: man. 3. mar. 2025 kl. 10.15
Emne: Sidste advarsel
Til: Mette Hansen <mette.hansen@kommune.dk>
"""

GMAIL_HTML_DA = f"""<div dir="ltr"><div>{CONTEXT}</div><br><div class="gmail_quote">
<div dir="ltr" class="gmail_attr">---------- Videresendt meddelelse ---------<br>Fra:
<strong class="gmail_sendername" dir="auto">Søren Østergaard</strong>
<span dir="auto">&lt;<a href="mailto:soren@gmail.com">soren@gmail.com</a>&gt;</span><br>
Date: man. 3. mar. 2025 kl. 10.15<br>Subject: Sidste advarsel<br>To: Mette Hansen &lt;<a
href="mailto:mette.hansen@kommune.dk">mette.hansen@kommune.dk</a>&gt;<br></div><br><br>
<div dir="ltr">Tekst.</div></div></div>"""

APPLE_EN = f"""{CONTEXT}

Begin forwarded message:

From: Jens Jensen <jens@firma.dk>
Subject: Dit projekt
Date: 3 March 2025 at 10:15:23 CET
To: Mette Hansen <mette.hansen@kommune.dk>

Tekst.
"""

APPLE_DA = f"""{CONTEXT}

Sendt fra min iPhone

Start på videresendt besked:

Fra: Søren Østergaard <soren@firma.dk>
Emne: Sidste advarsel
Dato: 3. marts 2025 kl. 10.15.23 CET
Til: Mette Hansen <mette.hansen@kommune.dk>

Tekst.
"""

APPLE_HTML_DA = f"""<html><body><div>{CONTEXT}</div><div><br><blockquote type="cite">
<div>Start på videresendt besked:</div><br class="Apple-interchange-newline">
<div style="margin: 0px;"><span><b>Fra: </b></span><span>Søren Østergaard &lt;<a
href="mailto:soren@firma.dk">soren@firma.dk</a>&gt;<br></span></div>
<div style="margin: 0px;"><span><b>Emne: </b></span><span><b>Sidste advarsel</b><br></span></div>
<div style="margin: 0px;"><span><b>Dato: </b></span><span>3. marts 2025 kl. 10.15.23 CET<br>
</span></div><div style="margin: 0px;"><span><b>Til: </b></span><span>Mette Hansen &lt;<a
href="mailto:mette.hansen@kommune.dk">mette.hansen@kommune.dk</a>&gt;<br></span></div><br>
<div>Tekst.</div></blockquote></div></body></html>"""

THUNDERBIRD_EN = f"""{CONTEXT}


-------- Forwarded Message --------
Subject: \tDit projekt
Date: \tMon, 3 Mar 2025 10:15:00 +0100
From: \tJens Jensen <jens@firma.dk>
To: \tMette Hansen <mette.hansen@kommune.dk>, Søren Østergaard
<soren@firma.dk>



Tekst.
"""

THUNDERBIRD_DA = f"""{CONTEXT}

-------- Videresendt meddelelse --------
Emne: \tSidste advarsel
Dato: \tMon, 3 Mar 2025 10:15:00 +0100
Fra: \tSøren Østergaard <soren@firma.dk>
Til: \tMette Hansen <mette.hansen@kommune.dk>

Tekst.
"""

THUNDERBIRD_HTML_DA = f"""<html><body><p>{CONTEXT}</p>
<div class="moz-forward-container"><br><br>-------- Videresendt meddelelse --------
<table class="moz-email-headers-table" border="0" cellpadding="0" cellspacing="0"><tbody>
<tr><th valign="BASELINE" nowrap="nowrap" align="RIGHT">Emne: </th><td>Sidste advarsel</td></tr>
<tr><th valign="BASELINE" nowrap="nowrap" align="RIGHT">Dato: </th>
<td>Mon, 3 Mar 2025 10:15:00 +0100</td></tr>
<tr><th valign="BASELINE" nowrap="nowrap" align="RIGHT">Fra: </th><td>Søren Østergaard <a
class="moz-txt-link-rfc2396E" href="mailto:soren@firma.dk">&lt;soren@firma.dk&gt;</a></td></tr>
<tr><th valign="BASELINE" nowrap="nowrap" align="RIGHT">Til: </th><td>Mette Hansen <a
class="moz-txt-link-rfc2396E" href="mailto:mette.hansen@kommune.dk">
&lt;mette.hansen@kommune.dk&gt;</a></td></tr></tbody></table><br><p>Tekst.</p></div>
</body></html>"""

NAIVE_0315 = datetime(2025, 3, 3, 10, 15)
AWARE_0315 = datetime(2025, 3, 3, 10, 15, tzinfo=CET)
AWARE_031523 = datetime(2025, 3, 3, 10, 15, 23, tzinfo=CET)
JENS = ("Jens Jensen", "jens@firma.dk")
SOREN = ("Søren Østergaard", "soren@firma.dk")

FORMAT_CASES = [
    pytest.param(OUTLOOK_EN, False, Expected(
        "original-message-en", "Jens Jensen", "jens.jensen@firma.dk", NAIVE_0315,
        "Monday, March 3, 2025 10:15 AM", "Dit projekt"), id="outlook-en-plain"),
    pytest.param(OUTLOOK_DA, False, Expected(
        "original-message-da", "Søren Østergaard", "soren.ostergaard@firma.dk", NAIVE_0315,
        "3. marts 2025 10:15", "Sidste advarsel"), id="outlook-da-plain"),
    pytest.param(OUTLOOK_365_DA_NO_SEPARATOR, False, Expected(
        "outlook-da", "Søren Østergaard", "soren.ostergaard@firma.dk", NAIVE_0315,
        "mandag den 3. marts 2025 10:15", "Sidste advarsel"), id="outlook-da-no-separator"),
    pytest.param(OUTLOOK_HTML_DA, True, Expected(
        "outlook-da", "Søren Østergaard", "soren.ostergaard@firma.dk", NAIVE_0315,
        "mandag den 3. marts 2025 10:15", "Sidste advarsel"), id="outlook-da-html"),
    pytest.param(OUTLOOK_HTML_EN, True, Expected(
        "outlook-en", *JENS, NAIVE_0315, "Monday, March 3, 2025 10:15 AM", "Dit projekt"),
        id="outlook-en-html"),
    pytest.param(GMAIL_EN, False, Expected(
        "gmail-en", "Jens Jensen", "jens.jensen@gmail.com", NAIVE_0315,
        "Mon, Mar 3, 2025 at 10:15 AM", "Dit projekt"), id="gmail-en-plain"),
    pytest.param(GMAIL_DA_BOLD, False, Expected(
        "gmail-da", "Søren Østergaard", "soren@gmail.com", NAIVE_0315,
        "man. 3. mar. 2025 kl. 10.15", "Sidste advarsel"), id="gmail-da-plain-bold"),
    pytest.param(GMAIL_DA_BESKED, False, Expected(
        "gmail-da", "Søren Østergaard", "soren@gmail.com", NAIVE_0315,
        "man. 3. mar. 2025 kl. 10.15", "Sidste advarsel"), id="gmail-da-videresendt-besked"),
    pytest.param(GMAIL_HTML_DA, True, Expected(
        "gmail-da", "Søren Østergaard", "soren@gmail.com", NAIVE_0315,
        "man. 3. mar. 2025 kl. 10.15", "Sidste advarsel"), id="gmail-da-html"),
    pytest.param(APPLE_EN, False, Expected(
        "apple-en", *JENS, AWARE_031523, "3 March 2025 at 10:15:23 CET", "Dit projekt"),
        id="apple-en-plain"),
    pytest.param(APPLE_DA, False, Expected(
        "apple-da", *SOREN, AWARE_031523, "3. marts 2025 kl. 10.15.23 CET", "Sidste advarsel"),
        id="apple-da-plain"),
    pytest.param(APPLE_HTML_DA, True, Expected(
        "apple-da", *SOREN, AWARE_031523, "3. marts 2025 kl. 10.15.23 CET", "Sidste advarsel"),
        id="apple-da-html"),
    pytest.param(THUNDERBIRD_EN, False, Expected(
        "thunderbird-en", *JENS, AWARE_0315, "Mon, 3 Mar 2025 10:15:00 +0100", "Dit projekt"),
        id="thunderbird-en-plain"),
    pytest.param(THUNDERBIRD_DA, False, Expected(
        "thunderbird-da", *SOREN, AWARE_0315, "Mon, 3 Mar 2025 10:15:00 +0100",
        "Sidste advarsel"), id="thunderbird-da-plain"),
    pytest.param(THUNDERBIRD_HTML_DA, True, Expected(
        "thunderbird-da", *SOREN, AWARE_0315, "Mon, 3 Mar 2025 10:15:00 +0100",
        "Sidste advarsel"), id="thunderbird-da-html"),
]


@pytest.mark.parametrize(("body", "html", "expected"), FORMAT_CASES)
def test_inline_forward_in_a_sent_mail(body: str, html: bool, expected: Expected) -> None:
    """Each format survives a round trip through a real MIME mail and html_to_text."""
    check(find_in_mail(forward_mail(body, html=html)), expected)


def test_aware_dates_name_the_right_instant() -> None:
    found = find_inline_forward(APPLE_EN)
    assert found is not None and found.date is not None
    assert found.date.astimezone(UTC) == datetime(2025, 3, 3, 9, 15, 23, tzinfo=UTC)


def test_wrapped_recipient_list_is_joined() -> None:
    found = find_inline_forward(THUNDERBIRD_EN)
    assert found is not None
    assert found.to == ("Mette Hansen <mette.hansen@kommune.dk>, Søren Østergaard "
                        "<soren@firma.dk>")


def test_quoted_lines_crlf_blank_lines_and_no_break_spaces() -> None:
    text = (
        f"{CONTEXT}\r\n\r\n"
        "> \r\n"
        ">  From:\u00a0Jens Jensen <jens@firma.dk>\r\n"
        ">\r\n"
        "> Sent:\u00a0Monday, March 3, 2025 10:15\u00a0AM\r\n"
        ">\r\n"
        ">> To: Mette Hansen\r\n"
        "> Subject:\u00a0Dit\u00a0projekt\r\n"
        ">\r\n"
        "> Tekst.\r\n"
    )
    check(find_inline_forward(text), Expected(
        "outlook-en", *JENS, NAIVE_0315, "Monday, March 3, 2025 10:15 AM", "Dit projekt"))


def test_the_first_block_wins_in_nested_forwards() -> None:
    text = GMAIL_EN + "\n" + APPLE_DA
    found = find_inline_forward(text)
    assert found is not None and found.rule == "gmail-en"


@pytest.mark.parametrize(
    ("labels", "rule"),
    [
        (("Von", "Gesendet", "An", "Betreff"), "outlook-de"),
        (("Da", "Inviato", "A", "Oggetto"), "outlook-it"),
        (("De", "Envoyé", "À", "Objet"), "outlook-fr"),
        (("Från", "Skickat", "Till", "Ämne"), "outlook-sv"),
        (("Van", "Verzonden", "Aan", "Onderwerp"), "outlook-nl"),
        (("From", "Sent", "To", "Subject"), "outlook-en"),
        (("Fra", "Sendt", "Til", "Emne"), "outlook-da"),
        (("Fra", "Dato", "Til", "Emne"), "outlook-da"),  # new Outlook writes Dato
    ],
)
def test_outlook_blocks_in_other_languages(labels: tuple[str, ...], rule: str) -> None:
    from_label, sent_label, to_label, subject_label = labels
    text = (f"{CONTEXT}\n\n{from_label}: Jens Jensen <jens@firma.dk>\n"
            f"{sent_label}: 03.03.2025 10:15\n{to_label}: Mette\n{subject_label}: Dit projekt\n")
    check(find_inline_forward(text), Expected(
        rule, *JENS, NAIVE_0315, "03.03.2025 10:15", "Dit projekt"))


@pytest.mark.parametrize(
    ("marker", "rule"),
    [
        ("-----Original Message-----", "original-message-en"),
        ("----- Original Message -----", "original-message-en"),
        ("-------- Original Message --------", "original-message-en"),
        ("-----Oprindelig meddelelse-----", "original-message-da"),
        ("-----Ursprüngliche Nachricht-----", "original-message-de"),
        ("---------- Forwarded message ---------", "gmail-en"),
        ("---------- Videresendt meddelelse ----------", "gmail-da"),
        ("-------- Forwarded Message --------", "thunderbird-en"),
        ("-------- Videresendt meddelelse --------", "thunderbird-da"),
        ("-------- Weitergeleitete Nachricht --------", "thunderbird-de"),
        ("Begin forwarded message:", "apple-en"),
        ("Start på videresendt besked:", "apple-da"),
        ("Inizio messaggio inoltrato:", "apple-it"),
    ],
)
def test_separator_lines_name_the_rule(marker: str, rule: str) -> None:
    text = f"{CONTEXT}\n\n{marker}\n\nFrom: Jens Jensen <jens@firma.dk>\nSubject: Dit projekt\n"
    found = find_inline_forward(text)
    assert found is not None
    assert (found.rule, found.from_address, found.subject) == (rule, "jens@firma.dk",
                                                               "Dit projekt")


@pytest.mark.parametrize(
    ("sender", "name", "address"),
    [
        ("Jens Jensen <Jens@Firma.DK>", "Jens Jensen", "jens@firma.dk"),
        ("Jens Jensen [mailto:jens@firma.dk]", "Jens Jensen", "jens@firma.dk"),
        ("Jens Jensen<mailto:jens@firma.dk>", "Jens Jensen", "jens@firma.dk"),
        ('"Jensen, Jens" <jens@firma.dk>', "Jensen, Jens", "jens@firma.dk"),
        ("jens@firma.dk", None, "jens@firma.dk"),
        ("<jens@firma.dk>", None, "jens@firma.dk"),
        ("jens@firma.dk [mailto:jens@firma.dk]", None, "jens@firma.dk"),
        ("Jens Jensen", "Jens Jensen", None),
        ("=?utf-8?q?S=C3=B8ren?= <soren@firma.dk>", "Søren", "soren@firma.dk"),
    ],
)
def test_sender_forms(sender: str, name: str | None, address: str | None) -> None:
    text = f"-----Original Message-----\nFrom: {sender}\nSent: 3. marts 2025 10:15\nSubject: x\n"
    found = find_inline_forward(text)
    assert found is not None
    assert (found.from_name, found.from_address) == (name, address)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Mon, 3 Mar 2025 10:15:00 +0100", AWARE_0315),
        ("Mon, 3 Mar 2025 09:15:00 GMT", AWARE_0315),
        ("Mon, 3 Mar 2025 10:15:00 CET", AWARE_0315),
        ("Mon, 3 Mar 2025 10:15:00 -0000", None),  # RFC 5322: the zone is unknown
        ("Monday, March 3, 2025 10:15 AM", NAIVE_0315),
        ("Monday, March 3, 2025 10:15 PM", datetime(2025, 3, 3, 22, 15)),
        ("3. marts 2025 10:15", NAIVE_0315),
        ("mandag den 3. marts 2025 10:15", NAIVE_0315),
        ("man. 3. mar. 2025 kl. 10.15", NAIVE_0315),
        ("Mon, Mar 3, 2025 at 10:15 AM", NAIVE_0315),
        ("March 3, 2025 at 10:15:23 AM GMT+1", AWARE_031523),
        ("3. marts 2025 kl. 10.15.23 CET", AWARE_031523),
        ("3 mars 2025 à 11:15:23 UTC+02:00", AWARE_031523),
        ("Montag, 3. März 2025 10:15", NAIVE_0315),
        ("lunedì 3 marzo 2025 10:15", NAIVE_0315),
        ("2025-03-03 10:15", NAIVE_0315),
        ("2025-03-03T10:15:00+01:00", AWARE_0315),
        ("2025-03-03", None),
        ("03-03-2025 10:15", NAIVE_0315),
        ("3/14/2025 10:15 AM", datetime(2025, 3, 14, 10, 15)),
        ("3/4/2025 10:15", None),  # March or April depends on the writer's country
        ("i går ved frokosttid", None),
        ("3. marts 2025", None),  # no time: no instant
        ("Mon, 32 Mar 2025 10:15:00 +0100", None),
    ],
)
def test_dates(raw: str, expected: datetime | None) -> None:
    text = f"-----Original Message-----\nFrom: Jens <jens@firma.dk>\nSent: {raw}\nSubject: x\n"
    found = find_inline_forward(text)
    assert found is not None
    assert found.date_raw == raw
    assert found.date == expected  # the same instant when both are aware
    if expected is not None:
        assert found.date is not None
        assert (found.date.tzinfo is None) == (expected.tzinfo is None)


# How each mail program starts its block, and its labels for From, the date, To and Subject.
BLOCKS: dict[str, tuple[str, str, str, str, str]] = {
    "outlook-da": ("", "Fra", "Sendt", "Til", "Emne"),
    "gmail-da": ("---------- Videresendt meddelelse ---------", "Fra", "Dato", "Til", "Emne"),
    "apple-da": ("Start på videresendt besked:", "Fra", "Dato", "Til", "Emne"),
    "thunderbird-da": ("-------- Videresendt meddelelse --------", "Emne", "Dato", "Fra",
                       "Til"),
    "gmail-no": ("---------- Videresendt melding ---------", "Fra", "Dato", "Til", "Emne"),
    "outlook-sv": ("", "Från", "Skickat", "Till", "Ämne"),
    "gmail-sv": ("---------- Vidarebefordrat meddelande ---------", "Från", "Datum", "Till",
                 "Ämne"),
    "outlook-de": ("", "Von", "Gesendet", "An", "Betreff"),
    "gmail-de": ("---------- Weitergeleitete Nachricht ---------", "Von", "Datum", "An",
                 "Betreff"),
    "thunderbird-de": ("-------- Weitergeleitete Nachricht --------", "Betreff", "Datum",
                       "Von", "An"),
    "outlook-en": ("", "From", "Sent", "To", "Subject"),
    "gmail-en": ("---------- Forwarded message ---------", "From", "Date", "Subject", "To"),
    "apple-en": ("Begin forwarded message:", "From", "Date", "To", "Subject"),
}
# A Norwegian Outlook's labels are the Danish ones: its block counts as da.
BLOCKS["outlook-no"] = BLOCKS["outlook-da"]


def forward_block(rule: str, date: str) -> str:
    """An employee's line and a forwarded original's header block as `rule`'s program
    writes it, with `date` on the date line."""
    marker, *labels = BLOCKS[rule]
    sender, recipient = "Jens <jens@firma.dk>", "Mette <mette@kommune.dk>"
    values = dict.fromkeys(("Fra", "Från", "Von", "From"), sender)
    values.update(dict.fromkeys(("Til", "Till", "An", "To"), recipient))
    lines = [f"{label}: {values.get(label, 'Dit projekt')}" for label in labels]
    lines[labels.index(BLOCKS[rule][2])] = f"{BLOCKS[rule][2]}: {date}"
    return f"{CONTEXT}\n\n{marker}\n" + "\n".join(lines) + "\n\nTekst.\n"


EVENING = datetime(2026, 11, 19, 21, 14)
EVENING_05 = datetime(2026, 11, 19, 21, 14, 5, tzinfo=CET)


@pytest.mark.parametrize(
    ("rule", "raw", "expected"),
    [
        ("outlook-da", "19. november 2026 21:14", EVENING),
        ("outlook-da", "torsdag 19. november 2026 21:14", EVENING),
        ("outlook-da", "torsdag den 19. november 2026 21:14", EVENING),
        ("gmail-da", "tor. 19. nov. 2026 kl. 21.14", EVENING),
        ("apple-da", "19. november 2026 kl. 21.14.05 CET", EVENING_05),
        ("thunderbird-da", "Thu, 19 Nov 2026 21:14:05 +0100", EVENING_05),
        ("outlook-no", "torsdag 19. november 2026 21:14", EVENING),
        ("gmail-no", "tor. 19. nov. 2026 kl. 21:14", EVENING),
        ("gmail-no", "lør. 19. des. 2026 kl. 21:14", datetime(2026, 12, 19, 21, 14)),
        ("outlook-no", "19. desember 2026 21:14", datetime(2026, 12, 19, 21, 14)),
        ("outlook-sv", "den 19 november 2026 21:14", EVENING),
        ("gmail-sv", "tors 19 nov. 2026 kl. 21:14", EVENING),
        ("outlook-de", "Donnerstag, 19. November 2026 21:14", EVENING),
        ("gmail-de", "Do., 19. Nov. 2026 um 21:14 Uhr", EVENING),
        ("thunderbird-de", "19.11.26 um 21:14", EVENING),
        ("outlook-en", "Thursday, November 19, 2026 9:14 PM", EVENING),
        ("outlook-en", "Thursday, 19 November 2026 21:14", EVENING),
        ("gmail-en", "Thu, Nov 19, 2026 at 9:14 PM", EVENING),
        ("apple-en", "19 November 2026 at 21:14:05 CET", EVENING_05),
        ("apple-en", "November 19, 2026 at 9:14:05 PM GMT+1", EVENING_05),
        # Numeric dates: the labels' language settles the day/month order.
        ("outlook-da", "05/11/2026 21:14", datetime(2026, 11, 5, 21, 14)),
        ("outlook-de", "05.11.2026 21:14", datetime(2026, 11, 5, 21, 14)),
        ("outlook-sv", "05-11-2026 21:14", datetime(2026, 11, 5, 21, 14)),
        ("outlook-en", "05.11.2026 21:14", datetime(2026, 11, 5, 21, 14)),  # dots: day first
        ("outlook-en", "15/11/2026 21:14", datetime(2026, 11, 15, 21, 14)),  # one reading
        ("outlook-en", "11/15/2026 9:14 PM", datetime(2026, 11, 15, 21, 14)),  # one reading
        ("outlook-en", "05/11/2026 21:14", None),  # 5 November in London, May 11 in Boston
        ("outlook-en", "05-11-2026 21:14", None),
        ("gmail-en", "5/11/2026, 9:14 PM", None),
        # A part missing: never completed from today's date.
        ("outlook-da", "19. november 21:14", None),  # no year
        ("outlook-da", "november 2026 21:14", None),  # no day
        ("outlook-da", "19. november 2026", None),  # no time
        ("outlook-de", "Donnerstag, 19. November 2026", None),
        ("outlook-en", "Thursday 9:14 PM", None),
        ("outlook-da", "torsdag kl. 21.14", None),
        # Relative dates.
        ("outlook-da", "i går kl. 21.14", None),
        ("gmail-da", "i dag 21:14", None),
        ("outlook-sv", "igår 21:14", None),
        ("outlook-de", "gestern um 21:14", None),
        ("outlook-en", "Yesterday at 9:14 PM", None),
        # The hours a daylight-saving change repeats or skips still read here, zone-less:
        # the store decides (tests/parse/test_forward_dates.py).
        ("outlook-da", "25. oktober 2026 02:30", datetime(2026, 10, 25, 2, 30)),
        ("outlook-da", "29. marts 2026 02:30", datetime(2026, 3, 29, 2, 30)),
    ],
)
def test_dates_as_each_program_and_language_writes_them(
        rule: str, raw: str, expected: datetime | None) -> None:
    """Zone-less dates come back naive, zoned ones aware, incomplete or ambiguous ones None."""
    found = find_inline_forward(forward_block(rule, raw))
    assert found is not None
    assert found.rule == rule.replace("outlook-no", "outlook-da")
    assert (found.date_raw, found.from_address) == (raw, "jens@firma.dk")
    assert found.date == expected
    if expected is not None:
        assert found.date is not None
        assert found.date.utcoffset() == expected.utcoffset()


@pytest.mark.parametrize(
    "body",
    [
        f"{CONTEXT}\n\nHan bliver ved med at skrive til mig om aftenen.\n",
        "",
        # A quoted reply is not a forward: its attribution line is free text in endless
        # variants, and the quote holds only what the employee chose to keep.
        "Tak for din mail.\n\nOn Mon, 3 Mar 2025 at 10:15, Jens Jensen <jens@firma.dk> wrote:\n"
        "> Du er den dårligste projektleder vi nogensinde har haft.\n",
        "Tak.\n\nDen man. 3. mar. 2025 kl. 10.15 skrev Søren Østergaard <soren@firma.dk>:\n"
        "> Hvis du siger noget til nogen, ved du hvad der sker.\n",
        # A separator in prose, with no header block after it.
        "Begin forwarded message:\nI never got round to it.\n",
        # "From:" alone is not an Outlook block; it needs a Sent or Date line.
        "From: en kollega, der ønsker at være anonym\nTo: ledelsen\n",
    ],
    ids=["no-forward", "empty", "quoted-reply-en", "quoted-reply-da", "marker-in-prose",
         "from-in-prose"],
)
def test_bodies_without_a_forward(body: str) -> None:
    assert find_inline_forward(body) is None


def test_to_json_is_serialisable_with_an_iso_date() -> None:
    found = find_inline_forward(THUNDERBIRD_DA)
    assert found is not None
    data = json.loads(json.dumps(found.to_json()))
    assert data == {
        "rule": "thunderbird-da",
        "from_name": "Søren Østergaard",
        "from_address": "soren@firma.dk",
        "date": "2025-03-03T10:15:00+01:00",
        "date_raw": "Mon, 3 Mar 2025 10:15:00 +0100",
        "subject": "Sidste advarsel",
        "to": "Mette Hansen <mette.hansen@kommune.dk>",
        "message_id": None,
    }


def test_huge_body_is_scanned() -> None:
    filler = "Han skriver igen og igen, From: ham, To: mig.\n" * 120_000
    found = find_inline_forward(filler + OUTLOOK_DA)
    assert found is not None and found.rule == "original-message-da"
    assert find_inline_forward("From: x\n" * 200_000) is None


# -- attached originals --------------------------------------------------------

ATTACHED_TEMPLATE = """From: Mette Hansen <mette.hansen@kommune.dk>
To: chikanemail@kommune.example
Subject: VS: Sidste advarsel
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b0undary"

--b0undary
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

{context}
--b0undary
Content-Type: message/rfc822
Content-Disposition: attachment; filename="Sidste advarsel.eml"

{headers}
Hvis du siger noget til nogen, ved du hvad der sker.
--b0undary--
"""

ORIGINAL_HEADERS = """From: =?utf-8?q?S=C3=B8ren_=C3=98stergaard?= <Soren.Ostergaard@Firma.DK>
To: Mette Hansen <mette.hansen@kommune.dk>
Subject: =?utf-8?q?Sidste_advarsel_=E2=80=93_l=C3=A6s_den?=
Date: Mon, 3 Mar 2025 10:15:00 +0100
Message-ID: <abc123@firma.dk>
"""


def attached_part(headers: str | bytes) -> EmailMessage:
    """The message/rfc822 part of a forward-as-attachment with the given original headers."""
    head = headers if isinstance(headers, bytes) else headers.encode()
    raw = ATTACHED_TEMPLATE.format(context=CONTEXT, headers="{headers}").encode()
    message = parse(raw.replace(b"{headers}", head))
    parts = [part for part in message.walk() if part.get_content_type() == "message/rfc822"]
    assert len(parts) == 1
    assert isinstance(parts[0], EmailMessage)
    return parts[0]


def test_attached_original_with_encoded_danish_headers() -> None:
    found = original_from_attached(attached_part(ORIGINAL_HEADERS))
    assert found == ForwardedOriginal(
        rule="attached-message",
        from_name="Søren Østergaard",
        from_address="soren.ostergaard@firma.dk",
        date=AWARE_0315,
        date_raw="Mon, 3 Mar 2025 10:15:00 +0100",
        subject="Sidste advarsel \u2013 læs den",
        to="Mette Hansen <mette.hansen@kommune.dk>",
        message_id="<abc123@firma.dk>",
    )
    assert found.date is not None and found.date.utcoffset() == timedelta(hours=1)
    json.dumps(found.to_json())


def test_the_inner_message_itself_is_accepted_too() -> None:
    part = attached_part(ORIGINAL_HEADERS)
    payload = part.get_payload()
    assert isinstance(payload, list)
    inner = payload[0]
    assert isinstance(inner, EmailMessage)
    assert original_from_attached(inner) == original_from_attached(part)


def test_broken_date_keeps_the_raw_text() -> None:
    headers = ORIGINAL_HEADERS.replace("Mon, 3 Mar 2025 10:15:00 +0100", "mandag ved 10-tiden")
    found = original_from_attached(attached_part(headers))
    assert found.date is None
    assert found.date_raw == "mandag ved 10-tiden"
    assert found.from_address == "soren.ostergaard@firma.dk"


@pytest.mark.parametrize(
    ("from_header", "name", "address"),
    [
        (b"From: S\xc3\xb8ren \xc3\x98stergaard <soren@firma.dk>", "Søren Østergaard",
         "soren@firma.dk"),  # raw UTF-8
        (b"From: S\xf8ren \xd8stergaard <soren@firma.dk>", "Søren Østergaard",
         "soren@firma.dk"),  # raw Windows-1252
        (b"From: =?x-unknown?q?S=F8ren?= <soren@firma.dk>", "Søren", "soren@firma.dk"),
        (b"From: <<<@@@>>> (((", None, None),
        ("From: Søren Østergaard".encode(), "Søren Østergaard", None),
        (b"From: =?utf-8?b?!!!?= <soren@firma.dk", None, "soren@firma.dk"),
    ],
    ids=["8bit-utf8", "8bit-cp1252", "unknown-charset", "garbage", "name-only",
         "broken-encoded-word"],
)
def test_broken_from_headers_never_raise(from_header: bytes, name: str | None,
                                         address: str | None) -> None:
    headers = ORIGINAL_HEADERS.encode().replace(
        b"From: =?utf-8?q?S=C3=B8ren_=C3=98stergaard?= <Soren.Ostergaard@Firma.DK>", from_header)
    found = original_from_attached(attached_part(headers))
    assert found.from_address == address
    if name is not None:
        assert found.from_name == name
    assert found.subject == "Sidste advarsel \u2013 læs den"
    json.dumps(found.to_json(), ensure_ascii=False).encode("utf-8")  # no lone surrogates


def test_missing_headers_are_none() -> None:
    found = original_from_attached(attached_part("X-Nothing: here\n"))
    assert found == ForwardedOriginal(rule="attached-message")


def test_base64_encoded_attached_message_is_decoded() -> None:
    """RFC 2046 forbids it, but mail programs encode message/rfc822 parts anyway."""
    encoded = base64.encodebytes(ORIGINAL_HEADERS.encode() + b"\nTekst.\n").decode()
    raw = ATTACHED_TEMPLATE.format(context=CONTEXT, headers=encoded).replace(
        "Content-Disposition: attachment",
        "Content-Transfer-Encoding: base64\nContent-Disposition: attachment")
    message = parse(raw.encode())
    part = next(p for p in message.walk() if p.get_content_type() == "message/rfc822")
    assert isinstance(part, EmailMessage)
    found = original_from_attached(part)
    assert (found.from_address, found.subject) == ("soren.ostergaard@firma.dk",
                                                   "Sidste advarsel \u2013 læs den")


# -- the real-world corpus -----------------------------------------------------

INLINE_MARKERS = {"fwd-marker:gmail", "fwd-marker:thunderbird", "fwd-marker:original-message"}

# What find_inline_forward reports for every corpus mail tagged forward-inline.
CORPUS_INLINE: dict[str, tuple[str, str | None, str] | None] = {
    "django-helpdesk/forwarded-message.eml": (
        "original-message-en", "noreply@github.com",
        "[GitHub API] Update notice for access token [SEC=UNOFFICIAL]"),
    "django-helpdesk/utf-nondecodable.eml": (
        "thunderbird-en", "nikola@example.cz", "Cyklozaměstnavatel - změna vyhodnocení"),
    "flanker/multi-received-headers.eml": (
        "gmail-en", "hello@example.com", "Fwd: Please forward this email to me"),
    # The top-level text part is empty: the Outlook block sits in the text of the third
    # message/rfc822 nested inside it (checked below), which original_from_attached covers.
    "james-mime4j/mimetools-testmsgs/frag.msg": None,
    "mikel-mail/attachment_emails/attachment_with_base64_encoded_name.eml": (
        "gmail-en", "xxxxxxxx@xxx.com", "Signed email causes file attachments"),
    "mikel-mail/attachment_emails/attachment_with_encoded_name.eml": (
        "gmail-en", "xxxxxxxx@xxx.com", "Signed email causes file attachments"),
    "mikel-mail/mime_emails/raw_email2.eml": (
        "gmail-en", "xxxxxxxx@xxx.com", "Signed email causes file attachments"),
    "mikel-mail/plain_emails/raw_email8.eml": (
        "gmail-en", "xxxxxxxx@xxx.com", "Signed email causes file attachments"),
    "spamscope-mail-parser/mail_test_7": ("outlook-it", "chiarodiluce@gmail.com", "Ordine"),
    # An Outlook reply: its header block is the same as a forward's (see the module doc).
    "talon/standard_replies/outlook.eml": (
        "outlook-en", "xxx@xxx.mailgun.org", "The manager has commented on your Loop"),
    "webklex-php-imap/issue-348.eml": (
        "original-message-en", "anothersender@testaddres.com",
        "2 - test with a strange attachement"),
    "webklex-php-imap/issue-412.eml": ("outlook-en", "gmx@tonymarston.co.uk", "Re: TEST MESSAGE"),
}

# Mails tagged forward-attached whose attached part holds no message to read.
ATTACHED_WITHOUT_ORIGINAL = {
    "msgreader/TestWithAttachmentsAndInlines.eml",  # the "message" is the text of a file
    "nodemailer-mailparser/decoderended.eml",  # the attached message is empty
    "stalwart-mail-parser/malformed/022.eml",  # "this attachment is not a valid eml"
}


def corpus_index() -> list[tuple[str, set[str]]]:
    rows = (CORPUS / "index.tsv").read_text(encoding="utf-8").splitlines()
    return [(row.split("\t")[0], set(row.split("\t")[3].split(","))) for row in rows if row]


def corpus_message(path: str) -> EmailMessage:
    return parse((CORPUS / path).read_bytes())


def test_corpus_index_lists_the_expected_inline_forwards() -> None:
    tagged = {path for path, tags in corpus_index() if "forward-inline" in tags}
    assert tagged == set(CORPUS_INLINE)


@pytest.mark.parametrize(
    "path",
    sorted(path for path, tags in corpus_index()
           if "forward-inline" in tags and tags & INLINE_MARKERS),
)
def test_corpus_inline_forwards_with_a_separator_are_found(path: str) -> None:
    message = corpus_message(path)
    text = body_text(message)
    found = find_inline_forward(text) if text is not None else None
    expected = CORPUS_INLINE[path]
    if expected is None:
        assert found is None
        found = next(filter(None, (find_inline_forward(content) for part in message.walk()
                                   if (content := _content(part)) is not None)), None)
    assert found is not None
    assert found.from_address or found.from_name or found.subject
    if expected is not None:
        assert (found.rule, found.from_address, found.subject) == expected


@pytest.mark.parametrize(
    "path",
    sorted(path for path, tags in corpus_index()
           if "forward-inline" in tags and not tags & INLINE_MARKERS),
)
def test_corpus_outlook_header_blocks_are_found(path: str) -> None:
    text = body_text(corpus_message(path))
    found = find_inline_forward(text) if text is not None else None
    expected = CORPUS_INLINE[path]
    assert found is not None and expected is not None
    assert (found.rule, found.from_address, found.subject) == expected


def test_corpus_attached_originals() -> None:
    """Every message/rfc822 part reads without raising; forwarded ones name a sender."""
    for path, tags in corpus_index():
        message = corpus_message(path)
        originals = [original_from_attached(part) for part in message.walk()
                     if part.get_content_type() == "message/rfc822"]
        for original in originals:
            json.dumps(original.to_json(), ensure_ascii=False).encode("utf-8")
        if "forward-attached" in tags and path not in ATTACHED_WITHOUT_ORIGINAL:
            assert any(o.from_address or o.subject for o in originals), path


def test_no_corpus_text_part_makes_the_readers_raise() -> None:
    parts = 0
    for path, _tags in corpus_index():
        for part in corpus_message(path).walk():
            if part.get_content_maintype() != "text":
                continue
            content = _content(part)
            if content is None:
                continue
            parts += 1
            as_text = html_to_text(content)
            find_inline_forward(content)
            find_inline_forward(as_text)
    assert parts > 200
