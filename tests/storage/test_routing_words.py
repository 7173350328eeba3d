"""Why a case went to its manager, in the reader's language (issue 19)."""

from __future__ import annotations

import pytest

from storage.routing_words import routing_words


@pytest.mark.parametrize(("source", "params", "da", "en"), [
    ("default", {}, "standardleder", "default manager"),
    ("rule", {"rule": 1, "match": "*@skole.example.dk"}, "regel 1: alle fra skole.example.dk",
     "rule 1: everyone at skole.example.dk"),
    ("rule", {"rule": 2, "match": "*.kommune.dk", "deputy_fallback": True},
     "regel 2: alle fra underdomæner af kommune.dk; stedfortræder fra fordelingsindstillingerne",
     "rule 2: everyone at a subdomain of kommune.dk; deputy from the routing settings"),
    ("rule", {"rule": 3, "match": "anna@kommune.dk"}, "regel 3: anna@kommune.dk",
     "rule 3: anna@kommune.dk"),
    ("rule", {"rule": 4, "match": "a*@kommune.dk"},
     "regel 4: adresser, der passer på a*@kommune.dk",
     "rule 4: addresses matching a*@kommune.dk"),
    ("directory", {"line": 12, "department": "Skole", "employee": "bo@kommune.dk"},
     "linje 12 i medarbejderlisten (Skole): bo@kommune.dk",
     "line 12 of the employee list (Skole): bo@kommune.dk"),
])
def test_each_source_in_both_languages(source: str, params: dict[str, object], da: str,
                                       en: str) -> None:
    assert routing_words(source, params, "stored", "da") == da
    assert routing_words(source, params, "stored", "en") == en


def test_a_case_from_before_the_parameters_shows_its_stored_text() -> None:
    assert routing_words("rule", None, "rule 1: *@x.dk", "da") == "rule 1: *@x.dk"
