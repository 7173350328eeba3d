"""Jinja2 environments that speak one language: `{% trans %}`, `_()`, `ngettext()` and
`pgettext()` (a context for a word that reads differently in two places).

The i18n extension's new-style gettext is used (`{{ _("Hello %(name)s", name=x) }}`), with
gettext functions of our own so that a text template's `finalize` (which puts every printed
value on one line) sees the translated paragraph as template text, not as a value, while each
variable passed into it still goes through `clean_value`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jinja2 import Environment, pass_context
from jinja2.runtime import Context
from markupsafe import Markup

from storage.i18n.catalogs import translations

I18N_EXTENSION = "jinja2.ext.i18n"


class TranslatedText(str):
    """A translated template text: already the template's own words, never a value."""

    __slots__ = ()


def _identity(value: Any) -> Any:
    return value


def install_translations(environment: Environment, language: str,
                         clean_value: Callable[[Any], Any] | None = None) -> None:
    """Make the environment's `{% trans %}`, `_()`, `gettext()`, `ngettext()` and
    `pgettext()` speak `language`; `clean_value` is applied to every variable put into a
    translated text."""
    catalog = translations(language)
    clean = clean_value or _identity

    def fill(context: Context, text: str, variables: dict[str, Any]) -> str:
        if context.eval_ctx.autoescape:
            # The translated text is the template's own markup, from our catalogs; the
            # values put into it are escaped by Markup's % operator.
            return Markup(text) % {key: clean(value)  # noqa: S704
                                   for key, value in variables.items()}
        return TranslatedText(text % {key: clean(value) for key, value in variables.items()})

    @pass_context
    def gettext(context: Context, message: str, /, **variables: Any) -> str:
        return fill(context, catalog.gettext(message), variables)

    @pass_context
    def pgettext(context: Context, message_context: str, message: str, /,
                 **variables: Any) -> str:
        return fill(context, catalog.pgettext(message_context, message), variables)

    @pass_context
    def ngettext(context: Context, singular: str, plural: str, number: int, /,
                 **variables: Any) -> str:
        # Positional-only: `{% trans count=… %}` passes `count` among the variables.
        variables.setdefault("num", number)
        return fill(context, catalog.ngettext(singular, plural, number), variables)

    if I18N_EXTENSION not in environment.extensions:
        environment.add_extension(I18N_EXTENSION)
    environment.newstyle_gettext = True  # type: ignore[attr-defined]
    environment.globals.update(gettext=gettext, _=gettext, ngettext=ngettext,
                               pgettext=pgettext)
