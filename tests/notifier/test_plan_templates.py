"""The response plan's mails: reminder, escalation, digest and confirmation, in da and en.

Rendered straight from the built-in templates with the service's own environment
(StrictUndefined, one-line values, autoescaped HTML), from contexts shaped the way the code
hands them over: every string already formatted, no dates computed in the templates.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import pytest
from jinja2 import Environment, UndefinedError

from notifier.templating import make_environment

LANGUAGES = ("da", "en")
KINDS = ("reminder", "escalation", "digest", "confirmation")
SCRIPT = "<script>alert(1)</script>"
DASH = "\u2013"  # the en dash the templates put between a value and its mark

# Strings the code formats; the templates only print them.
WORDS: dict[str, dict[str, Any]] = {
    "da": {
        "tag": "[Sag 2026-0001]",
        "due": "mandag 23. november 2026 kl. 14.00 (CET)",
        "opened": "fredag 20. november 2026 kl. 09.12 (CET)",
        "title": "Psykisk førstehjælp",
        "description": "Tal med medarbejderen hurtigst muligt. Lyt, og aftal hvem der gør hvad.",
        "done_command": "trin 1 udført",
        "help": "hjælp",
        "overdue": "OVERSKREDET",
        "within": "1 arbejdsdag",
        "ack": "kvitter",
        "routing": "Skole Nord: leder efter routing-tabellen",
        "absence": "søndag 22. november 2026",
        "easy_due": "senest søndag 6. december 2026",
        "step_value": "2 Dokumentation",
        "commands": [
            {"syntax": "kvitter", "explanation": "kvittér for sagen"},
            {"syntax": "trin N udført", "explanation": "meld trin N i beredskabsplanen udført"},
            {"syntax": "fravær DATO", "explanation": "registrér medarbejderens første fraværsdag"},
        ],
    },
    "en": {
        "tag": "[Case 2026-0001]",
        "due": "Monday 23 November 2026, 14:00 (CET)",
        "opened": "Friday 20 November 2026, 09:12 (CET)",
        "title": "Psychological first aid",
        "description": "Talk to the employee as soon as possible. Listen, and agree who does what.",
        "done_command": "step 1 done",
        "help": "help",
        "overdue": "OVERDUE",
        "within": "1 working day",
        "ack": "ack",
        "routing": "North School: manager from the routing table",
        "absence": "Sunday 22 November 2026",
        "easy_due": "by Sunday 6 December 2026",
        "step_value": "2 Documentation",
        "commands": [
            {"syntax": "ack", "explanation": "acknowledge the case"},
            {"syntax": "step N done", "explanation": "mark step N of the response plan as done"},
            {"syntax": "absence DATE", "explanation": "record the employee's first day of absence"},
        ],
    },
}

# The text body's last line: (any case mail, the digest).
FOOTERS = {
    "da": ("Denne mail er sendt automatisk.", "Denne mail er sendt automatisk hver uge."),
    "en": ("This mail was sent automatically.", "This mail is sent automatically every week."),
}

# -- contexts ---------------------------------------------------------------------------


def common(language: str, **changes: Any) -> dict[str, Any]:
    """What every one of the four mails sees."""
    context: dict[str, Any] = {
        "language": language,
        "recipient": "lars.jensen@kommune.example",
        "recipient_name": "Lars Jensen",
        "recipient_display": "Lars Jensen <lars.jensen@kommune.example>",
        "reply_address": "chikanemail@kommune.example",
    }
    context.update(changes)
    return context


def case_common(language: str, **changes: Any) -> dict[str, Any]:
    """What every mail about one case sees."""
    return common(language, case_number="2026-0001", case_tag=WORDS[language]["tag"], **changes)


def reminder(language: str, **changes: Any) -> dict[str, Any]:
    words = WORDS[language]
    context = case_common(
        language,
        step={"number": 1, "key": "first_aid", "title": words["title"],
              "description": words["description"], "owner": "manager", "due": words["due"]},
        timing="ahead",
        recipient_role="manager",
        done_command=words["done_command"],
        opened=words["opened"],
        reporter_display="Mette Hansen <mette.hansen@kommune.example>",
    )
    context.update(changes)
    return context


def escalation(language: str, **changes: Any) -> dict[str, Any]:
    words = WORDS[language]
    context = case_common(
        language,
        recipient_name="Birgitte Holm",
        level=1,
        manager_display="Lars Jensen <lars.jensen@kommune.example>",
        previous=[],
        reporter_display="Mette Hansen <mette.hansen@kommune.example>",
        opened=words["opened"],
        acknowledge_within=words["within"],
        routing_reason=words["routing"],
        ack_command=words["ack"],
        item_count=3,
    )
    context.update(changes)
    return context


def digest_case(language: str, number: str, **changes: Any) -> dict[str, Any]:
    words = WORDS[language]
    tag = words["tag"].replace("2026-0001", number)
    case: dict[str, Any] = {
        "number": number, "case_tag": tag, "opened": words["opened"],
        "reporter_display": "Mette Hansen <mette.hansen@kommune.example>",
        "acknowledged": True, "relation": None, "first_absence_day": None,
        "next_step": {"number": 2, "title": words["step_value"][2:], "due": words["due"],
                      "overdue": False},
        "overdue_count": 0, "related_count": 0,
    }
    case.update(changes)
    return case


def digest(language: str, cases: list[dict[str, Any]] | None = None,
           **changes: Any) -> dict[str, Any]:
    cases = cases or []
    context = common(
        language, week=47, year=2026, case_count=len(cases),
        overdue_total=sum(case["overdue_count"] for case in cases), cases=cases,
    )
    context.update(changes)
    return context


def busy_digest(language: str) -> dict[str, Any]:
    """Four open cases: one overdue and unacknowledged, one done, one like two others."""
    words = WORDS[language]
    return digest(language, [
        digest_case(language, "2026-0001", acknowledged=False, relation="external",
                    first_absence_day=words["absence"], overdue_count=2,
                    next_step={"number": 1, "title": words["title"], "due": words["due"],
                               "overdue": True}),
        digest_case(language, "2026-0002", relation="colleague", next_step=None),
        digest_case(language, "2026-0003", related_count=2,
                    next_step={"number": 5, "title": "Opfølgning", "due": None,
                               "overdue": False}),
        digest_case(language, "2026-0004", relation="unknown"),
    ])


def confirmation(language: str, **changes: Any) -> dict[str, Any]:
    context = case_common(
        language,
        actor_display="Lars Jensen <lars.jensen@kommune.example>",
        results=[{"action": "step", "value": WORDS[language]["step_value"], "outcome": "done"}],
        implicit_ack=False, easy_due=None, easy_step=None, unknown=[], show_help=False,
        commands=WORDS[language]["commands"], note_saved=False, attachment_count=0,
    )
    context.update(changes)
    return context


def _variants() -> list[Any]:
    """Every kind in each of its shapes, in both languages."""
    variants: list[Any] = []
    for language in LANGUAGES:
        words = WORDS[language]
        shapes: dict[str, dict[str, Any]] = {
            "reminder-ahead": reminder(language),
            "reminder-today": reminder(language, timing="today"),
            "reminder-overdue": reminder(language, timing="overdue"),
            "reminder-deputy": reminder(language, recipient_role="deputy"),
            "reminder-reporter": reminder(language, recipient_role="reporter",
                                          done_command=None, recipient_name=None),
            "reminder-safety-rep": reminder(language, recipient_role="safety_rep",
                                            done_command=None),
            "reminder-hr": reminder(language, recipient_role="hr", timing="overdue"),
            "escalation-1": escalation(language),
            "escalation-2": escalation(language, level=2, recipient_name=None,
                                       previous=["Birgitte Holm <birgitte.holm@kommune.example>"]),
            "escalation-2-alone": escalation(language, level=2),
            "digest-empty": digest(language),
            "digest-busy": busy_digest(language),
            "confirmation-step": confirmation(language),
            "confirmation-all": confirmation(
                language, implicit_ack=True, easy_due=words["easy_due"], easy_step=4,
                results=[{"action": action, "value": value, "outcome": outcome}
                         for action, value, outcome, _ in OUTCOMES[language]],
                unknown=[{"line": "foo bar", "code": "unknown-word"}],
                show_help=True, note_saved=True, attachment_count=1),
            "confirmation-nothing": confirmation(language, results=[], recipient_name=None),
        }
        variants += [pytest.param(name.split("-")[0], language, context, id=f"{language}-{name}")
                     for name, context in shapes.items()]
    return variants


# Every action with every outcome it can have, and what the mail says about it.
OUTCOMES: dict[str, list[tuple[str, str | None, str, str]]] = {
    "da": [
        ("ack", None, "done", "Du har kvitteret for sagen."),
        ("ack", None, "already", "Sagen var allerede kvitteret. Intet er ændret."),
        ("ack", None, "case-closed", "Kvittering: ikke registreret, fordi sagen er lukket."),
        ("step", "2 Dokumentation", "done", "Trin 2 Dokumentation er registreret som udført."),
        ("step", "2 Dokumentation", "already",
         "Trin 2 Dokumentation var allerede registreret som udført. Intet er ændret."),
        ("step", "7", "no-such-step", "Der er ikke noget trin 7 i beredskabsplanen."),
        ("step", "3 Stop chikanen", "case-closed",
         "Trin 3 Stop chikanen: ikke registreret, fordi sagen er lukket."),
        ("absence", "søndag 22. november 2026", "done",
         "Første fraværsdag er registreret: søndag 22. november 2026."),
        ("absence", "søndag 22. november 2026", "already",
         "Første fraværsdag var allerede registreret som søndag 22. november 2026."),
        ("relation", "external", "done", "Relationen er registreret: ekstern (fx en borger eller "
         "forælder): vold efter AT-vejledning D.4.3."),
        ("relation", "colleague", "already",
         "Relationen var allerede registreret som kollega: krænkende handlinger."),
        ("medium", "social-media", "done", "Kanalen er registreret: sociale medier."),
        ("medium", "sms", "already", "Kanalen var allerede registreret som sms."),
        ("medium", "other", "case-closed", "Kanal: ikke registreret, fordi sagen er lukket."),
        ("witness", "Peter Hansen, pædagog", "done",
         "Vidnet er registreret: Peter Hansen, pædagog."),
        ("witness", "Peter Hansen, pædagog", "already",
         "Vidnet var allerede registreret: Peter Hansen, pædagog. Intet er ændret."),
        ("close", "Afsluttet efter opfølgningsmødet", "done",
         "Sagen er lukket. Begrundelse: Afsluttet efter opfølgningsmødet."),
        ("close", None, "done", "Sagen er lukket."),
        ("close", None, "already", "Sagen var allerede lukket. Intet er ændret."),
    ],
    "en": [
        ("ack", None, "done", "You have acknowledged the case."),
        ("ack", None, "already", "The case was already acknowledged. Nothing was changed."),
        ("ack", None, "case-closed", "Acknowledgement: not recorded, because the case is closed."),
        ("step", "2 Documentation", "done", "Step 2 Documentation is recorded as done."),
        ("step", "2 Documentation", "already",
         "Step 2 Documentation was already recorded as done. Nothing was changed."),
        ("step", "7", "no-such-step", "There is no step 7 in the response plan."),
        ("step", "3 Stop the harassment", "case-closed",
         "Step 3 Stop the harassment: not recorded, because the case is closed."),
        ("absence", "Sunday 22 November 2026", "done",
         "The first day of absence is recorded: Sunday 22 November 2026."),
        ("absence", "Sunday 22 November 2026", "already",
         "The first day of absence was already recorded as Sunday 22 November 2026."),
        ("relation", "external", "done", "The relation is recorded: external (e.g. a citizen or "
         "a parent): violence, AT guidance D.4.3."),
        ("relation", "colleague", "already", "The relation was already recorded as colleague: "
         "offensive behaviour (krænkende handlinger)."),
        ("medium", "social-media", "done", "The medium is recorded: social media."),
        ("medium", "sms", "already", "The medium was already recorded as text message (SMS)."),
        ("medium", "other", "case-closed", "Medium: not recorded, because the case is closed."),
        ("witness", "Peter Hansen, teacher", "done",
         "The witness is recorded: Peter Hansen, teacher."),
        ("witness", "Peter Hansen, teacher", "already",
         "The witness was already recorded: Peter Hansen, teacher. Nothing was changed."),
        ("close", "Closed after the follow-up meeting", "done",
         "The case is closed. Reason: Closed after the follow-up meeting."),
        ("close", None, "done", "The case is closed."),
        ("close", None, "already", "The case was already closed. Nothing was changed."),
    ],
}

# -- helpers ----------------------------------------------------------------------------

Envs = dict[str, Environment]  # one environment per language


@pytest.fixture(scope="module")
def env() -> Envs:
    return {language: make_environment(language=language) for language in LANGUAGES}


def render(env: Envs, kind: str, language: str,
           context: dict[str, Any]) -> tuple[str, str, str]:
    """Subject (stripped, as the composer one-lines it), text body and HTML body."""
    subject, text, html = (env[language].get_template(f"{kind}.{part}.j2").render(context)
                           for part in ("subject", "txt", "html"))
    return subject.strip(), text, html


def visible(html: str) -> str:
    """The HTML's text on one line, entities resolved: what the reader sees."""
    parser = _Text()
    parser.feed(html)
    parser.close()
    return " ".join("".join(parser.parts).split())


def flat(text: str) -> str:
    """The text with its line breaks folded, for phrases a template wraps."""
    return " ".join(text.split())


class _Text(HTMLParser):
    """The text of the body (the head's title is not what the reader sees in the mail)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.in_body = False

    BREAKS = frozenset({"p", "br", "h2", "table", "tr", "td", "ul", "ol", "li"})

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.in_body = self.in_body or tag == "body"
        if tag in self.BREAKS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if self.in_body:
            self.parts.append(data)


class _Nesting(HTMLParser):
    """Fails on a closing tag that does not close the innermost open element."""

    VOID = frozenset({"meta", "br"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open[-1] == tag, f"</{tag}> closes {self.open}"
        self.open.pop()


def assert_well_formed(html: str) -> None:
    assert html.startswith("<!DOCTYPE html>\n")
    parser = _Nesting()
    parser.feed(html)
    parser.close()
    assert parser.open == []


# -- every template in every shape ----------------------------------------------------------


@pytest.mark.parametrize(("kind", "language", "context"), _variants())
def test_renders_cleanly(env: Envs, kind: str, language: str,
                         context: dict[str, Any]) -> None:
    subject, text, html = render(env, kind, language, context)
    assert "\n" not in subject
    if kind == "digest":
        assert not subject.startswith("[")
    else:
        assert subject.startswith(WORDS[language]["tag"] + " ")
    for body in (subject, text, html):
        assert "None" not in body
        assert "Undefined" not in body
        assert "{{" not in body and "{%" not in body
    greeting = "Hej" if language == "da" else "Hello"
    assert text.startswith(greeting)
    assert text.endswith("\nChikanemail\n" + FOOTERS[language][kind == "digest"] + "\n")
    assert "\n\n\n\n" not in text
    assert not re.search(r"[ \t]\n", text), "no line ends in blanks"
    assert_well_formed(html)
    assert f'<html lang="{language}">' in html
    assert visible(html).startswith(greeting)


@pytest.mark.parametrize(("kind", "language", "context"), _variants())
def test_values_are_escaped_in_html_and_kept_on_one_line(
        env: Envs, kind: str, language: str, context: dict[str, Any]) -> None:
    hostile = f"Mette\nHansen {SCRIPT}"
    context = dict(context, recipient_name=hostile)
    for key in ("reporter_display", "actor_display"):
        if key in context:
            context[key] = hostile
    if kind == "digest":
        context["cases"] = [dict(case, reporter_display=hostile) for case in context["cases"]]
    _, text, html = render(env, kind, language, context)
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert f"Mette Hansen {SCRIPT}" in visible(html)
    assert f"Mette Hansen {SCRIPT}" in text
    assert "Mette\n" not in text


def test_strict_undefined_catches_a_missing_key(env: Envs) -> None:
    context = reminder("da")
    del context["step"]
    with pytest.raises(UndefinedError):
        env["da"].get_template("reminder.txt.j2").render(context)


# -- reminder --------------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("timing", ["ahead", "today", "overdue"])
def test_reminder_says_which_step_and_when(env: Envs, language: str, timing: str) -> None:
    words = WORDS[language]
    subject, text, html = render(env, "reminder", language, reminder(language, timing=timing))
    title = words["title"]
    step = "trin 1" if language == "da" else "step 1"
    starts = {
        "da": {"ahead": "Påmindelse:", "today": "Frist i dag:", "overdue": "Overskredet:"},
        "en": {"ahead": "Reminder:", "today": "Due today:", "overdue": "Overdue:"},
    }[language][timing]
    assert subject.startswith(f"{words['tag']} {starts} {step} {title} ")
    assert subject.endswith(words["due"])
    for body in (flat(text), visible(html)):
        assert words["due"] in body
        assert title in body
        assert words["description"] in body
        assert words["opened"] in body
        assert "Mette Hansen <mette.hansen@kommune.example>" in body
        assert (words["overdue"] in body) == (timing == "overdue")
        assert ("i dag" in body or "today" in body) == (timing == "today")


def test_reminder_subject_examples(env: Envs) -> None:
    subject, _, _ = render(env, "reminder", "da", reminder("da"))
    assert subject == ("[Sag 2026-0001] Påmindelse: trin 1 Psykisk førstehjælp senest "
                       "mandag 23. november 2026 kl. 14.00 (CET)")
    subject, _, _ = render(env, "reminder", "en", reminder("en", timing="overdue"))
    assert subject == (f"[Case 2026-0001] Overdue: step 1 Psychological first aid {DASH} it was "
                       "due by Monday 23 November 2026, 14:00 (CET)")


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("role", ["manager", "deputy", "reporter", "safety_rep", "hr"])
@pytest.mark.parametrize("can_reply", [True, False])
def test_reminder_mentions_commands_only_when_the_recipient_can_reply(
        env: Envs, language: str, role: str, can_reply: bool) -> None:
    words = WORDS[language]
    context = reminder(language, recipient_role=role, step=dict(reminder(language)["step"],
                                                                  owner=role if role != "deputy"
                                                                  else "manager"),
                       done_command=words["done_command"] if can_reply else None)
    _, text, html = render(env, "reminder", language, context)
    for body in (flat(text), visible(html)):
        assert (words["done_command"] in body) == can_reply
        assert (f'"{words["help"]}"' in text) == can_reply
        assert (words["tag"] in body) == can_reply
        assert ("første linje" in body or "first line" in body) == can_reply
        assert ("Mette Hansen" in body) == (role != "reporter")
    owners = {"da": {"manager": "lederen", "deputy": "lederen", "reporter": "medarbejderen",
                     "safety_rep": "arbejdsmiljørepræsentanten", "hr": "HR"},
              "en": {"manager": "the manager", "deputy": "the manager",
                     "reporter": "the employee", "safety_rep": "the safety representative",
                     "hr": "HR"}}
    assert owners[language][role] in text


# -- escalation ------------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("level", [1, 2])
@pytest.mark.parametrize("previous", [[], ["Birgitte Holm <birgitte.holm@kommune.example>",
                                           "Søren Dahl <soren.dahl@kommune.example>"]])
def test_escalation_asks_someone_to_take_the_case(
        env: Envs, language: str, level: int, previous: list[str]) -> None:
    words = WORDS[language]
    context = escalation(language, level=level, previous=previous)
    subject, text, html = render(env, "escalation", language, context)
    still = {"da": "Stadig ikke kvitteret", "en": "Still not acknowledged"}[language]
    assert (still in subject) == (level == 2)
    told = {"da": "allerede fået besked", "en": "Already told"}[language]
    for body in (flat(text), visible(html)):
        assert "Lars Jensen <lars.jensen@kommune.example>" in body
        assert "Mette Hansen <mette.hansen@kommune.example>" in body
        assert words["within"] in body
        assert words["opened"] in body
        assert words["routing"] in body
        assert words["tag"] in body
        assert ("3 elementer" if language == "da" else "3 items") in body
        assert ("første samtale" if language == "da" else "first conversation") in body
        assert (told in body) == bool(previous)
        for name in previous:
            assert name in body
    assert f"\n   {words['ack']}\n" in text
    assert f"<strong>{words['ack']}</strong>" in html
    deputy = {"da": "stedfortræder", "en": "deputy"}[language]
    assert (deputy in text) == (level == 1)


# -- digest ---------------------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
def test_empty_digest(env: Envs, language: str) -> None:
    subject, text, html = render(env, "digest", language, digest(language))
    assert subject == {"da": "Ugeoversigt: 0 åbne chikanesager (uge 47)",
                       "en": "Weekly overview: 0 open harassment cases (week 47)"}[language]
    none = {"da": "ingen åbne chikanesager", "en": "no open harassment cases"}[language]
    for body in (flat(text), visible(html)):
        assert none in body
        assert "2026" in body
        assert WORDS[language]["overdue"] not in body
        assert "[" not in body


@pytest.mark.parametrize("language", LANGUAGES)
def test_digest_lists_each_case(env: Envs, language: str) -> None:
    words = WORDS[language]
    subject, text, html = render(env, "digest", language, busy_digest(language))
    assert subject == {
        "da": "Ugeoversigt: 4 åbne chikanesager, 2 overskredne frister (uge 47)",
        "en": "Weekly overview: 4 open harassment cases, 2 overdue deadlines (week 47)",
    }[language]
    labels = {
        "da": {"external": "ekstern (fx en borger eller forælder): vold efter AT-vejledning D.4.3",
               "colleague": "kollega: krænkende handlinger", "unknown": "ukendt",
               "related": "Ligner 2 andre sager", "done": "alle trin er udført",
               "absence": f"første fraværsdag {words['absence']}", "no": "nej",
               "not set": "ikke angivet", "no absence": "ikke registreret"},
        "en": {"external": "external (e.g. a citizen or a parent): violence, AT guidance D.4.3",
               "colleague": "colleague: offensive behaviour (krænkende handlinger)",
               "unknown": "unknown", "related": "Resembles 2 other cases",
               "done": "all steps are done",
               "absence": f"first day of absence {words['absence']}", "no": "no",
               "not set": "not recorded", "no absence": "not recorded"},
    }[language]
    for body in (flat(text), visible(html)):
        for number in ("2026-0001", "2026-0002", "2026-0003", "2026-0004"):
            assert words["tag"].replace("2026-0001", number) in body
        for label in labels.values():
            assert label in body
        assert body.count(words["overdue"]) == 1
        assert f"{words['due']} {DASH} {words['overdue']}" in body
        assert words["opened"] in body
    blocks = text.split("\n\n\n")
    first = next(block for block in blocks if block.startswith(words["tag"]))
    assert words["overdue"] in first
    assert labels["external"] in first
    assert labels["absence"] in first


def test_digest_with_a_case_without_anything_recorded(env: Envs) -> None:
    context = digest("da", [digest_case("da", "2026-0009")])
    subject, text, html = render(env, "digest", "da", context)
    assert subject == "Ugeoversigt: 1 åben chikanesag (uge 47)"
    for body, colon in ((flat(text), ":"), (visible(html), "")):
        assert "Du har 1 åben sag." in body
        assert "Kvitteret" + colon + " ja" in body
        assert "Relation" + colon + " ikke angivet" in body
        assert "Fravær" + colon + " ikke registreret" in body
        assert "Næste trin" + colon + " trin 2 Dokumentation, senest mandag 23." in body
        assert "OVERSKREDET" not in body
        assert "Overskredet" not in body
        assert "Ligner" not in body


def test_digest_escapes_an_unknown_relation_code(env: Envs) -> None:
    context = digest("en", [digest_case("en", "2026-0004", relation="<b>odd</b>")])
    _, _, html = render(env, "digest", "en", context)
    assert "<b>" not in html
    assert "&lt;b&gt;odd&lt;/b&gt;" in html


# -- confirmation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "action", "value", "outcome", "says"),
    [pytest.param(language, *row, id=f"{language}-{row[0]}-{row[2]}-{index}")
     for language in LANGUAGES for index, row in enumerate(OUTCOMES[language])])
def test_confirmation_says_what_was_done(env: Envs, language: str, action: str,
                                         value: str | None, outcome: str, says: str) -> None:
    context = confirmation(language, results=[
        {"action": action, "value": value, "outcome": outcome}])
    subject, text, html = render(env, "confirmation", language, context)
    assert subject == WORDS[language]["tag"] + (" Registreret" if language == "da"
                                                else " Recorded")
    assert f"\n- {says}" in text
    assert says in visible(html)
    assert WORDS[language]["commands"][0]["explanation"] not in text


@pytest.mark.parametrize("language", LANGUAGES)
def test_confirmation_lists_lines_not_understood_and_the_commands(
        env: Envs, language: str) -> None:
    words = WORDS[language]
    unknown = [{"line": "foo bar", "code": "unknown-word"},
               {"line": "fravær i overmorgen", "code": "bad-date"},
               {"line": "trin", "code": "missing-argument"},
               {"line": "relation nabo", "code": "bad-value"}]
    explained = {
        "da": ["Kommandoen kendes ikke.", "Datoen kunne ikke læses.",
               "Kommandoen mangler en værdi", "Værdien kan ikke bruges med kommandoen."],
        "en": ["The command is not known.", "The date could not be read.",
               "The command is missing a value", "The value cannot be used with the command."],
    }[language]
    context = confirmation(language, results=[], unknown=unknown, show_help=True)
    subject, text, html = render(env, "confirmation", language, context)
    assert subject == words["tag"] + (" Kommando ikke forstået" if language == "da"
                                      else " Command not understood")
    for body in (flat(text), visible(html)):
        for line, explanation in zip(unknown, explained, strict=True):
            assert f'"{line["line"]}": {explanation}' in body
        for command in words["commands"]:
            assert f"{command['syntax']} {DASH} {command['explanation']}" in body
        assert ("ingen kommandoer" not in body) and ("no commands" not in body)


@pytest.mark.parametrize("language", LANGUAGES)
def test_confirmation_points_to_help_when_the_list_is_not_shown(
        env: Envs, language: str) -> None:
    words = WORDS[language]
    context = confirmation(language, unknown=[{"line": "hmm", "code": "unknown-word"}])
    subject, text, html = render(env, "confirmation", language, context)
    assert subject.endswith("Kommando ikke forstået" if language == "da"
                            else "Command not understood")
    assert f'"{words["help"]}"' in text
    assert f"<strong>{words['help']}</strong>" in html
    for body in (flat(text), visible(html)):
        for command in words["commands"]:
            assert command["explanation"] not in body


@pytest.mark.parametrize("language", LANGUAGES)
def test_confirmation_help_without_unknown_lines(env: Envs, language: str) -> None:
    words = WORDS[language]
    context = confirmation(language, results=[], show_help=True)
    subject, text, html = render(env, "confirmation", language, context)
    assert subject.endswith(" Registreret" if language == "da" else " Recorded")
    for body in (flat(text), visible(html)):
        for command in words["commands"]:
            assert command["syntax"] in body
        assert words["tag"] in body


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("attachments", [0, 1, 3])
def test_confirmation_note_easy_and_implicit_ack(env: Envs, language: str,
                                                 attachments: int) -> None:
    words = WORDS[language]
    context = confirmation(language, implicit_ack=True, easy_due=words["easy_due"], easy_step=3,
                           results=[{"action": "absence", "value": words["absence"],
                                     "outcome": "done"}],
                           note_saved=True, attachment_count=attachments)
    _, text, html = render(env, "confirmation", language, context)
    kept = {
        "da": {1: "1 vedhæftet fil er gemt som bevis i sagen.",
               3: "3 vedhæftede filer er gemt som beviser i sagen."},
        "en": {1: "1 attached file is kept as evidence in the case.",
               3: "3 attached files are kept as evidence in the case."},
    }[language]
    for body in (flat(text), visible(html)):
        assert words["easy_due"] in body
        assert "EASY" in body and "14" in body and "Arbejdstilsynet" in body
        assert ("trin 3 i beredskabsplanen" in body) or ("step 3 of the response plan" in body)
        assert ("kvittering for sagen" in body) or ("acknowledging the case" in body)
        assert ("Resten af dit svar er gemt som en note" in body
                or "The rest of your reply is kept as a note" in body)
        for count, sentence in kept.items():
            assert (sentence in body) == (count == attachments)


@pytest.mark.parametrize("language", LANGUAGES)
def test_confirmation_without_easy_or_note(env: Envs, language: str) -> None:
    _, text, html = render(env, "confirmation", language, confirmation(language))
    for body in (flat(text), visible(html)):
        assert "EASY" not in body
        assert "note" not in body.lower()
        assert WORDS[language]["step_value"] in body


@pytest.mark.parametrize("language", LANGUAGES)
def test_confirmation_of_a_reply_without_commands(env: Envs, language: str) -> None:
    context = confirmation(language, results=[], note_saved=True)
    _, text, html = render(env, "confirmation", language, context)
    for body in (flat(text), visible(html)):
        assert ("ingen kommandoer" in body) or ("no commands" in body)
        assert ("Dit svar er gemt som en note" in body
                or "Your reply is kept as a note" in body)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("lines", [1, 2])
def test_confirmation_counts_the_lines_not_understood(env: Envs, language: str,
                                                      lines: int) -> None:
    unknown = [{"line": f"linje {number}", "code": "unknown-word"} for number in range(lines)]
    _, text, html = render(env, "confirmation", language,
                           confirmation(language, unknown=unknown))
    said = {"da": {1: "Linjen har ikke ændret noget i sagen.",
                   2: "Linjerne har ikke ændret noget i sagen."},
            "en": {1: "The line has not changed anything in the case.",
                   2: "The lines have not changed anything in the case."}}[language][lines]
    for body in (flat(text), visible(html)):
        assert said in body
