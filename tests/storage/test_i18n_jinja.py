"""A Jinja2 environment of one language: translated texts, plurals, contexts, and values that
stay values (escaped in HTML, cleaned in text) while the translated text stays template text."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment

from storage.i18n.jinja import install_translations


def environment(language: str, *, autoescape: bool = False) -> Environment:
    """An environment as the renderers make one, cleaning values onto one line."""
    # Off for the text templates, as select_autoescape has it for .txt.j2.
    env = Environment(autoescape=autoescape, trim_blocks=True,  # noqa: S701
                      lstrip_blocks=True, keep_trailing_newline=True)

    def clean(value: Any) -> Any:
        return " ".join(value.split()) if type(value) is str else value

    install_translations(env, language, clean_value=clean)
    return env


def test_trans_blocks_and_calls_speak_the_language() -> None:
    template = ('{% trans %}Received: {{ received }}{% endtrans %} | '
                '{{ _("[Case %(number)s]", number=n) }}')
    assert environment("da").from_string(template).render(received="i dag", n="2026-0001") == (
        "Modtaget: i dag | [Sag 2026-0001]")
    assert environment("en").from_string(template).render(received="today", n="2026-0001") == (
        "Received: today | [Case 2026-0001]")


def test_pluralize_with_a_count_variable() -> None:
    template = ("{% trans count=n %}The line has not changed anything in the case."
                "{% pluralize %}The lines have not changed anything in the case.{% endtrans %}")
    da = environment("da").from_string(template)
    assert da.render(n=1) == "Linjen har ikke ændret noget i sagen."
    assert da.render(n=2) == "Linjerne har ikke ændret noget i sagen."


def test_a_context_tells_two_meanings_apart() -> None:
    env = environment("da")
    assert env.from_string('{{ pgettext("step", "open") }}').render() == "ikke udført"
    assert env.from_string('{{ _("open") }}').render() == "åben"


def test_values_are_escaped_in_html_and_the_texts_markup_is_kept() -> None:
    template = ("{% trans %}<strong>Case {{ case_number }}</strong> is now handled by "
                "{{ manager_display }}.{% endtrans %}")
    html = environment("en", autoescape=True).from_string(template).render(
        case_number="2026-0001", manager_display="<script>x</script>")
    assert html == ("<strong>Case 2026-0001</strong> is now handled by "
                    "&lt;script&gt;x&lt;/script&gt;.")


def test_a_value_cannot_break_a_line_of_a_text_template() -> None:
    template = "{% trans %}Received: {{ received }}{% endtrans %}"
    assert environment("en").from_string(template).render(received="today\nBcc: x@y") == (
        "Received: today Bcc: x@y")
