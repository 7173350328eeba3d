"""html_to_text: line structure, entities, what is dropped, and hostile or huge markup."""

from __future__ import annotations

import random

import pytest

from intake.parse.html_text import html_to_text


def test_block_elements_and_br_become_line_breaks() -> None:
    html = (
        "<div>første</div><div>anden<br>tredje</div>"
        "<ul><li>punkt 1</li><li>punkt 2</ul>"
        "<table><tr><td>Navn</td><td>Søren</td></tr><tr><td>Afdeling</td><td>HR</td></tr></table>"
        "<h2>Overskrift</h2><blockquote>citat</blockquote>slut"
    )
    assert html_to_text(html) == (
        "første\nanden\ntredje\npunkt 1\npunkt 2\nNavn Søren\nAfdeling HR\n\n"
        "Overskrift\n\ncitat\n\nslut"
    )


def test_paragraphs_are_lines_and_empty_paragraphs_blank_lines() -> None:
    """Outlook writes one <p class=MsoNormal> per line and an empty one for a blank line."""
    html = (
        '<p class="MsoNormal">Hej Mette<o:p></o:p></p>'
        '<p class="MsoNormal"><o:p>&nbsp;</o:p></p>'
        '<p class="MsoNormal">Det her er ikke i orden.</p>'
        '<p class="MsoNormal">Venlig hilsen</p>'
    )
    assert html_to_text(html) == "Hej Mette\n\nDet her er ikke i orden.\nVenlig hilsen"


def test_runs_of_blank_lines_and_spaces_collapse() -> None:
    html = "a<br><br><br><br>b   \n\t  c&nbsp;&nbsp;&nbsp;d<br>   <br>"
    assert html_to_text(html) == "a\n\nb c d"


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("Bl&aring;b&aelig;r og &oslash;l", "Blåbær og øl"),
        ("S&#248;ren &#x2013; igen", "Søren \u2013 igen"),
        ("a&nbsp;b", "a b"),
        ("&lt;jens@firma.dk&gt; &amp; co", "<jens@firma.dk> & co"),
        ("&quot;citat&quot; &apos;x&apos;", "\"citat\" 'x'"),
        ("&ukendt; &amp", "&ukendt; &"),
        ("Blåbær direkte", "Blåbær direkte"),
        ("soft&shy;hyphen zero&#8203;width", "softhyphen zerowidth"),
    ],
)
def test_entities_are_decoded(html: str, text: str) -> None:
    assert html_to_text(html) == text


def test_script_style_head_title_and_comments_are_dropped() -> None:
    html = (
        "<!DOCTYPE html><html><head><title>Titel</title><meta charset=utf-8>"
        "<style>p { color: red; } /* </p> */</style></head>"
        "<body><script type='text/javascript'>if (a < b) { alert('x'); }</script>"
        "<!-- en kommentar med <b>tags</b> -->synlig"
        "<!--[if gte mso 9]><xml><o:OfficeDocumentSettings/></xml><![endif]-->"
        "<style>.gmail { x: y }</style> tekst<SCRIPT>document.write('<p>nej</p>')</SCRIPT>"
        "</body></html>"
    )
    assert html_to_text(html) == "synlig tekst"


def test_outlook_conditional_markers_are_dropped_but_their_content_kept() -> None:
    html = "<p><![if !supportLists]>1.<![endif]>Første punkt</p><?xml:namespace prefix = o />"
    assert html_to_text(html) == "1.Første punkt"


def test_unclosed_head_ends_at_the_body() -> None:
    assert html_to_text("<html><head><meta charset=utf-8><body><p>indhold</p>") == "indhold"


def test_links_keep_their_text_and_show_a_different_target() -> None:
    html = (
        '<a href="https://example.com/side?id=1">her</a>, '
        '<a href="https://example.com/">https://example.com</a>, '
        '<a href="mailto:jens@firma.dk">jens@firma.dk</a>, '
        '<a href="mailto:jens@firma.dk">Jens Jensen</a>, '
        '<a href="javascript:alert(1)">klik</a>, '
        '<a href="cid:image001.png@01D">billede</a>, '
        '<a name="top">anker</a>'
    )
    assert html_to_text(html) == (
        "her [https://example.com/side?id=1], https://example.com, jens@firma.dk, "
        "Jens Jensen [mailto:jens@firma.dk], klik, billede, anker"
    )
    assert html_to_text(html, show_links=False) == (
        "her, https://example.com, jens@firma.dk, Jens Jensen, klik, billede, anker"
    )


def test_images_show_their_alt_text_and_gmail_emoji_inline() -> None:
    html = (
        'Se <img src="cid:x" alt="skærmbillede"> og '
        '<img data-emoji="😡" alt="😡" src="https://fonts.gstatic.com/x.png"> '
        '<img src="https://tracker.example/p.gif">'
    )
    assert html_to_text(html) == "Se [image: skærmbillede] og 😡"


def test_pre_keeps_its_line_breaks() -> None:
    assert html_to_text("<pre>linje 1\n  linje 2\r\nlinje 3</pre>efter") == (
        "linje 1\nlinje 2\nlinje 3\n\nefter"
    )


def test_outlook_forward_header_block_becomes_header_lines() -> None:
    html = (
        '<div style="border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0cm 0cm 0cm">'
        '<p class="MsoNormal"><b>From:</b> Jens Jensen &lt;jens@firma.dk&gt;<br>'
        "<b>Sent:</b> Monday, March 3, 2025 10:15 AM<br>"
        '<b>To:</b> <a href="mailto:mette@kommune.dk">Mette Hansen</a><br>'
        "<b>Subject:</b> Dit projekt</p></div>"
    )
    assert html_to_text(html).splitlines() == [
        "From: Jens Jensen <jens@firma.dk>",
        "Sent: Monday, March 3, 2025 10:15 AM",
        "To: Mette Hansen [mailto:mette@kommune.dk]",
        "Subject: Dit projekt",
    ]


def test_gmail_forward_header_block_becomes_header_lines() -> None:
    html = (
        '<div dir="ltr">Se nedenfor<br><br><div class="gmail_quote">'
        '<div dir="ltr" class="gmail_attr">---------- Videresendt meddelelse ---------<br>'
        'Fra: <strong class="gmail_sendername" dir="auto">Søren Østergaard</strong> '
        '<span dir="auto">&lt;<a href="mailto:soren@gmail.com">soren@gmail.com</a>&gt;</span><br>'
        "Date: man. 3. mar. 2025 kl. 10.15<br></div></div></div>"
    )
    assert html_to_text(html).splitlines() == [
        "Se nedenfor",
        "",
        "---------- Videresendt meddelelse ---------",
        "Fra: Søren Østergaard <soren@gmail.com>",
        "Date: man. 3. mar. 2025 kl. 10.15",
    ]


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<p>uafsluttet <b>fed <i>kursiv", "uafsluttet fed kursiv"),
        ("<div><p>a</div></p></span>b</td>", "a\nb"),
        ("a < b og c > d, <3", "a < b og c > d, <3"),
        ("før <!-- aldrig lukket", "før"),
        ("før <script>alert(1)", "før"),
        ("før <a href='uafsluttet>tekst", "før <a href='uafsluttet>tekst"),
        ("før <div class=x", "før <div class=x"),
        ("før </div", "før </div"),
        ("før <!DOCTYPE", "før"),
        ("tom<!-->kommentar<!--->her", "tomkommentarher"),
        ("<b>nul\x00tegn</b>", "nul\x00tegn"),
        ("\ufffd\ufffd<p>ødelagte bytes \ufffd</p>", "\ufffd\ufffd\nødelagte bytes \ufffd"),
        ("<a <a <a>tekst", "tekst"),
        ("<p title='a>b'>attribut med >", "attribut med >"),
        ("</>tom slut</ div>", "tom slut"),
        ("", ""),
    ],
)
def test_malformed_html_gives_text_and_never_raises(html: str, text: str) -> None:
    assert html_to_text(html) == text


def test_random_markup_never_raises() -> None:
    pieces = ["<", ">", "</", "/>", "<!--", "-->", "<!", "<?", "<![", "]>", '"', "'", "=", "&",
              "&#", ";", "a", "p", "br", "div", "<script>", "</script>", "<style>", "<pre>",
              "<a href=\"", "</a>", "<td>", " ", "\n", "ø", "\ufffd", "\x00", "\udcff"]
    generator = random.Random(20250303)
    for _ in range(2000):
        html = "".join(generator.choice(pieces) for _ in range(generator.randint(0, 80)))
        assert isinstance(html_to_text(html), str)


def test_five_megabyte_body_is_converted() -> None:
    paragraph = (
        '<p class="MsoNormal"><span style="font-family:Calibri">Linje {n} med '
        '<b>fed</b> tekst, &aelig;&oslash;&aring; og <a href="https://example.com/{n}">et link'
        "</a></span></p>\n"
    )
    html = "".join(paragraph.format(n=n) for n in range(40_000))
    assert len(html) > 5_000_000
    lines = html_to_text(html).splitlines()
    assert len(lines) == 40_000
    assert lines[-1] == "Linje 39999 med fed tekst, æøå og et link [https://example.com/39999]"


@pytest.mark.parametrize(
    "html",
    [
        "<a " * 1_700_000,  # stdlib html.parser rescans to the end for each of these
        "<!--" * 1_300_000,
        "<![if x>" * 650_000,
        "<p title='" + "x" * 5_000_000,
        "&#" * 2_600_000,
    ],
    ids=["unclosed-start-tags", "unclosed-comments", "marked-sections", "open-quote", "charrefs"],
)
def test_five_megabytes_of_hostile_markup_are_converted(html: str) -> None:
    text = html_to_text(html)
    assert isinstance(text, str)
    assert len(text) <= len(html)
