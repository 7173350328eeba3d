"""Singular or plural by count, written as gettext's `ngettext` so that the strings can be
extracted into message catalogs later and this shim replaced by the catalogs' own."""

from __future__ import annotations


def ngettext(singular: str, plural: str, count: int) -> str:
    """`singular` for exactly one, `plural` for any other count (English rules)."""
    return singular if count == 1 else plural
