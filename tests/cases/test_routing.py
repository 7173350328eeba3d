"""Routing a report to a manager: directory, then rules, then the default; the CSV directory."""

from __future__ import annotations

import json
from pathlib import Path

import pydantic
import pytest

from intake.cases.routing import (
    Directory,
    DirectoryError,
    Router,
    RoutingDecision,
    RoutingRule,
    RoutingSettings,
    load_directory,
    validate_routing,
)
from storage.errors import SettingsError

RULES = (
    RoutingRule(match="*@skole.kommune.dk", manager="skoleleder@kommune.dk",
                deputy="viceskoleleder@kommune.dk"),
    RoutingRule(match="*.kommune.dk", manager="omraadeleder@kommune.dk"),
    RoutingRule(match="Anna@Kommune.DK", manager="direktoer@kommune.dk"),
    RoutingRule(match="kommune.dk", manager="hr@kommune.dk", deputy="hr2@kommune.dk"),
)
SETTINGS = RoutingSettings(default_manager="leder@kommune.dk", rules=RULES)


def write(tmp_path: Path, data: bytes, name: str = "directory.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


DIRECTORY_CSV = (
    "Medarbejder;Leder;Stedfortræder;Afdeling\r\n"
    "bo@skole.kommune.dk;leder.nord@kommune.dk;stedfortraeder.nord@kommune.dk;Skole Nord\r\n"
    "\r\n"
    "Carl@Skole.Kommune.dk;leder.syd@kommune.dk;;Skole Syd\r\n"
)


@pytest.fixture
def directory(tmp_path: Path) -> Directory:
    return load_directory(write(tmp_path, DIRECTORY_CSV.encode("utf-8")))


def test_directory_beats_rule_beats_default(directory: Directory) -> None:
    router = Router(SETTINGS, directory)
    assert router.route("bo@skole.kommune.dk") == RoutingDecision(
        "leder.nord@kommune.dk", "stedfortraeder.nord@kommune.dk", "directory",
        "directory line 2 (Skole Nord): bo@skole.kommune.dk")
    assert router.route("dorte@skole.kommune.dk") == RoutingDecision(
        "skoleleder@kommune.dk", "viceskoleleder@kommune.dk", "rule",
        "rule 1: *@skole.kommune.dk")
    assert router.route("eva@gmail.com") == RoutingDecision(
        "leder@kommune.dk", None, "default", "default manager")


def test_without_a_directory_rules_decide() -> None:
    decision = Router(SETTINGS).route("bo@skole.kommune.dk")
    assert (decision.source, decision.reason) == ("rule", "rule 1: *@skole.kommune.dk")


def test_globs_on_address_and_domain() -> None:
    router = Router(SETTINGS)
    # A domain glob: subdomains of kommune.dk, not kommune.dk itself.
    assert router.route("finn@vej.kommune.dk").reason == "rule 2: *.kommune.dk"
    # The first rule that matches wins: rule 3 names anna, but rule 4 is a domain rule...
    assert router.route("anna@kommune.dk").reason == "rule 3: Anna@Kommune.DK"
    # ...that matches everyone else at kommune.dk exactly.
    assert router.route("jens@kommune.dk").reason == "rule 4: kommune.dk"
    assert router.route("jens@kommune.dk.evil.example").source == "default"


def test_first_matching_rule_wins() -> None:
    rules = (RoutingRule(match="*.dk", manager="first@kommune.dk"),
             RoutingRule(match="*@skole.kommune.dk", manager="second@kommune.dk"))
    decision = Router(RoutingSettings(rules=rules)).route("bo@skole.kommune.dk")
    assert (decision.manager, decision.reason) == ("first@kommune.dk", "rule 1: *.dk")


def test_case_insensitive_everywhere(directory: Directory) -> None:
    router = Router(SETTINGS, directory)
    assert router.route("BO@SKOLE.KOMMUNE.DK").source == "directory"
    # The directory wrote Carl@Skole.Kommune.dk; the reporter writes it another way.
    assert router.route("<carl@skole.KOMMUNE.dk>").reason == (
        "directory line 4 (Skole Syd): carl@skole.kommune.dk")
    assert router.route("Carl <CARL@skole.kommune.dk>").source == "directory"
    assert router.route("DORTE@Skole.Kommune.DK").reason == "rule 1: *@skole.kommune.dk"
    assert router.route("ANNA@KOMMUNE.DK").reason == "rule 3: Anna@Kommune.DK"


def test_deputy_falls_back_to_the_routing_deputy(directory: Directory) -> None:
    settings = RoutingSettings(default_manager="leder@kommune.dk", deputy="vagt@kommune.dk",
                               rules=RULES)
    router = Router(settings, directory)
    carl = router.route("carl@skole.kommune.dk")  # directory line without a deputy
    assert (carl.deputy, carl.reason) == (
        "vagt@kommune.dk",
        "directory line 4 (Skole Syd): carl@skole.kommune.dk; deputy from routing.deputy")
    finn = router.route("finn@vej.kommune.dk")  # rule without a deputy
    assert (finn.deputy, finn.reason) == (
        "vagt@kommune.dk", "rule 2: *.kommune.dk; deputy from routing.deputy")
    own = router.route("dorte@skole.kommune.dk")  # a rule's own deputy comes first
    assert (own.deputy, own.reason) == ("viceskoleleder@kommune.dk",
                                        "rule 1: *@skole.kommune.dk")
    default = router.route("eva@gmail.com")
    assert (default.manager, default.deputy, default.reason) == (
        "leder@kommune.dk", "vagt@kommune.dk", "default manager")
    # With no routing.deputy, nobody: None.
    assert Router(SETTINGS, directory).route("carl@skole.kommune.dk").deputy is None


def test_reporter_without_a_domain_gets_the_default() -> None:
    assert Router(SETTINGS).route("not an address").source == "default"
    assert Router(SETTINGS).route("").source == "default"


# --- the directory file ---


def test_excel_utf8_bom_semicolons_and_header(tmp_path: Path) -> None:
    path = write(tmp_path, b"\xef\xbb\xbf" + DIRECTORY_CSV.encode("utf-8"))
    directory = load_directory(path)
    assert len(directory) == 2
    entry = directory.lookup("bo@skole.kommune.dk")
    assert entry is not None
    assert (entry.line, entry.manager, entry.deputy, entry.department) == (
        2, "leder.nord@kommune.dk", "stedfortraeder.nord@kommune.dk", "Skole Nord")


def test_commas_without_header(tmp_path: Path) -> None:
    path = write(tmp_path, b"bo@skole.kommune.dk,leder@kommune.dk,,\"Skole Nord, afd. 2\"\n"
                           b"eva@kommune.dk,leder@kommune.dk\n")
    directory = load_directory(path)
    bo, eva = directory.lookup("bo@skole.kommune.dk"), directory.lookup("eva@kommune.dk")
    assert bo is not None and eva is not None
    assert (bo.line, bo.deputy, bo.department) == (1, "", "Skole Nord, afd. 2")
    assert (eva.line, eva.deputy, eva.department) == (2, "", "")


def test_semicolons_with_commas_inside_unquoted_cells(tmp_path: Path) -> None:
    path = write(tmp_path, b"bo@skole.kommune.dk;leder@kommune.dk;;Skole Nord, afd. 2\n")
    entry = load_directory(path).lookup("bo@skole.kommune.dk")
    assert entry is not None and entry.department == "Skole Nord, afd. 2"


def test_windows_1252_department(tmp_path: Path) -> None:
    text = ("Medarbejder;Leder;Stedfortræder;Afdeling\r\n"
            "bo@kommune.dk;leder@kommune.dk;;Børnehuset Æblegården\r\n"
            "eva@kommune.dk;leder@kommune.dk;;Rådhuset Ø\r\n")
    directory = load_directory(write(tmp_path, text.encode("cp1252")))
    assert [entry.department for entry in directory.entries.values()] == [
        "Børnehuset Æblegården", "Rådhuset Ø"]
    decision = Router(RoutingSettings(), directory).route("bo@kommune.dk")
    assert decision.reason == "directory line 2 (Børnehuset Æblegården): bo@kommune.dk"


def test_utf16_tab_separated_excel_unicode_text(tmp_path: Path) -> None:
    text = "Medarbejder\tLeder\tStedfortræder\tAfdeling\r\nbo@kommune.dk\tleder@kommune.dk\t\tÅ\r\n"
    directory = load_directory(write(tmp_path, text.encode("utf-16")))
    entry = directory.lookup("bo@kommune.dk")
    assert entry is not None and (entry.line, entry.department) == (2, "Å")


def test_names_around_addresses_and_blank_lines(tmp_path: Path) -> None:
    path = write(tmp_path, b"\n\n  \nBo Berg <bo@kommune.dk>;Lis Leder <LIS@kommune.dk>;;\n;;;\n")
    entry = load_directory(path).lookup("bo@kommune.dk")
    assert entry is not None and (entry.line, entry.manager) == (4, "LIS@kommune.dk")


@pytest.mark.parametrize(("text", "line", "problem"), [
    ("bo@kommune.dk;leder@kommune.dk\nbo;leder@kommune.dk\n", 2, "employee 'bo'"),
    ("Medarbejder;Leder\nbo@kommune.dk;leder@kommune.dk\neva@kommune.dk;\n", 3,
     "no manager address for eva@kommune.dk"),
    ("bo@kommune.dk;leder@kommune.dk\neva@kommune.dk;Lis Leder\n", 2, "manager 'Lis Leder'"),
    ("bo@kommune.dk;leder@kommune.dk;vice at kommune\n", 1, "deputy 'vice at kommune'"),
])
def test_a_bad_line_names_file_and_line(tmp_path: Path, text: str, line: int,
                                        problem: str) -> None:
    path = write(tmp_path, text.encode())
    with pytest.raises(DirectoryError) as caught:
        load_directory(path)
    assert caught.value.line == line
    assert str(caught.value).startswith(f"{path}, line {line}: {problem}")


def test_a_duplicate_employee_names_both_lines(tmp_path: Path) -> None:
    path = write(tmp_path, b"Medarbejder;Leder\nbo@kommune.dk;a@kommune.dk\n\n"
                           b"eva@kommune.dk;a@kommune.dk\nBO@Kommune.dk;b@kommune.dk\n")
    with pytest.raises(DirectoryError) as caught:
        load_directory(path)
    assert str(caught.value) == (f"{path}, line 5: employee bo@kommune.dk is listed twice "
                                 "(line 2 and line 5)")


def test_line_numbers_count_quoted_line_breaks(tmp_path: Path) -> None:
    path = write(tmp_path, b'bo@kommune.dk;a@kommune.dk;;"Skole\nNord"\neva@kommune.dk;bad\n')
    with pytest.raises(DirectoryError, match=r", line 3: manager 'bad'"):
        load_directory(path)


@pytest.mark.parametrize(("data", "problem"), [
    (None, "no such file"),
    (b"", "lists no employees"),
    (b"Medarbejder;Leder;Stedfortraeder;Afdeling\r\n", "lists no employees"),
])
def test_unusable_files(tmp_path: Path, data: bytes | None, problem: str) -> None:
    path = tmp_path / "directory.csv"
    if data is not None:
        path.write_bytes(data)
    with pytest.raises(DirectoryError, match=problem) as caught:
        load_directory(path)
    assert str(caught.value) == f"{path}: {problem}"


def test_from_settings_loads_the_directory(tmp_path: Path) -> None:
    path = write(tmp_path, DIRECTORY_CSV.encode())
    router = Router.from_settings(RoutingSettings(directory=str(path)))
    assert router.route("bo@skole.kommune.dk").source == "directory"
    assert Router.from_settings(RoutingSettings()).directory is None


# --- the [routing] settings ---


def test_settings_validate_from_toml_shaped_data() -> None:
    adapter = pydantic.TypeAdapter(RoutingSettings)
    data = {"default_manager": "leder@kommune.dk", "deputy": "vagt@kommune.dk",
            "rules": [{"match": "*.kommune.dk", "manager": "m@kommune.dk"}]}
    settings = adapter.validate_json(json.dumps(data))
    assert settings.rules == (RoutingRule("*.kommune.dk", "m@kommune.dk"),)
    with pytest.raises(pydantic.ValidationError) as caught:
        adapter.validate_json(json.dumps({"rules": [{"match": "x", "manager": "m@k.dk",
                                                     "mangaer": "typo"}]}))
    assert caught.value.errors()[0]["loc"] == ("rules", 0, "mangaer")


def test_validate_routing_accepts_good_settings(tmp_path: Path) -> None:
    path = write(tmp_path, DIRECTORY_CSV.encode())
    validate_routing(RoutingSettings(deputy="vagt@kommune.dk", rules=RULES,
                                     directory=str(path)), "chikanemail.toml")


@pytest.mark.parametrize(("settings", "key"), [
    (RoutingSettings(default_manager="leder"), "routing.default_manager"),
    (RoutingSettings(deputy="vagt at kommune"), "routing.deputy"),
    (RoutingSettings(rules=(*RULES, RoutingRule("", "m@kommune.dk"))), "routing.rules[5].match"),
    (RoutingSettings(rules=(RoutingRule("a b.dk", "m@kommune.dk"),)), "routing.rules[1].match"),
    (RoutingSettings(rules=(RoutingRule("a@b@c.dk", "m@kommune.dk"),)),
     "routing.rules[1].match"),
    (RoutingSettings(rules=(RoutingRule("@kommune.dk", "m@kommune.dk"),)),
     "routing.rules[1].match"),
    (RoutingSettings(rules=(*RULES[:1], RoutingRule("*.dk", "m"))), "routing.rules[2].manager"),
    (RoutingSettings(rules=(RoutingRule("*.dk", "m@k.dk", "d"),)), "routing.rules[1].deputy"),
    (RoutingSettings(directory="/nonexistent/directory.csv"), "routing.directory"),
])
def test_validate_routing_names_the_key(settings: RoutingSettings, key: str) -> None:
    with pytest.raises(SettingsError) as caught:
        validate_routing(settings, "chikanemail.toml")
    assert caught.value.key == key
    assert str(caught.value).startswith(f"chikanemail.toml: {key}: ")


def test_validate_routing_reports_the_directory_line(tmp_path: Path) -> None:
    path = write(tmp_path, b"bo@kommune.dk;leder@kommune.dk\nbo;x\n")
    with pytest.raises(SettingsError) as caught:
        validate_routing(RoutingSettings(directory=str(path)), "chikanemail.toml")
    assert caught.value.problem == f"{path}, line 2: employee 'bo' is not a mail address"
