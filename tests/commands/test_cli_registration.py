"""`chikanemail cases register|easy` and the registration in `cases show` and the export
(issue 22), over a real case: a Danish Outlook inline forward mailed over SMTP to a running
daemon. The registration starts from what the case knows, is saved as versions, a bad
option saves nothing and is named, the plan's `registration` step waits for it, the EASY
report is recorded, and the exported bundle carries every version, checked by `sha256sum -c`.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from intake.commands.cli.main import main
from storage.database import Database
from storage.models import AuditEvent, Case
from tests.mail_flow import REPORTER, send
from tests.parse.test_forwarded import OUTLOOK_DA
from tests.support import (
    INTAKE_ADDRESS,
    MANAGER,
    DaemonThread,
    make_config,
    wait_until,
    write_toml,
)
from tests.support import describe as described


@dataclass(frozen=True)
class RegisteredCase:
    """A case opened by the daemon, and the config file the CLI reads."""

    config_file: Path
    database_url: str
    number: str

    def cli(self, *args: str) -> Result:
        return CliRunner(env={"CHIKANEMAIL_CONFIG": None}).invoke(
            main, ["--config", str(self.config_file), *args])


def outlook_forward() -> bytes:
    mail = EmailMessage()
    mail["From"] = f"Mette Hansen <{REPORTER}>"
    mail["To"] = INTAKE_ADDRESS
    mail["Subject"] = "VS: Sidste advarsel"
    mail.set_content(OUTLOOK_DA)
    return mail.as_bytes()


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegisteredCase]:
    base = tmp_path_factory.mktemp("registration")
    url = f"sqlite:///{base / 'test.sqlite3'}"
    config = make_config(base / "data", url)
    with DaemonThread(config) as daemon:
        send(daemon, outlook_forward())
        database = Database(config.storage.effective_database_url)
        try:
            def opened() -> str:
                with database.read() as session:
                    return session.execute(
                        select(Case.number).where(Case.reporter == REPORTER)).scalar() or ""
            number = wait_until(opened, message="the case")
        finally:
            database.dispose()
    config_file = write_toml(base / "config.toml", {
        "storage": {"data_dir": config.storage.data_dir, "database_url": url}})
    yield RegisteredCase(config_file, url, number)


def as_json(result: Result) -> dict[str, object]:
    assert result.exit_code == 0, described(result)
    value = json.loads(result.stdout)
    assert isinstance(value, dict)
    return value


def test_register_from_the_prefill_to_two_versions_and_the_easy_report(
        case: RegisteredCase) -> None:
    number = case.number
    shown = as_json(case.cli("cases", "register", number, "--json"))
    fields = shown["fields"]
    assert isinstance(fields, dict)
    assert (shown["version"], shown["saved"], shown["problems"]) == (None, False, [])
    assert "soren.ostergaard@firma.dk" in fields["harasser"]
    assert (fields["period_start"], fields["medium"], fields["handler"]) == (
        "2025-03-03", "mail", MANAGER)
    assert REPORTER in fields["affected_employee"]

    refused = case.cli("cases", "step", number, "registration")
    assert refused.exit_code == 1, described(refused)
    assert "ikke registreret endnu" in refused.output and "cases register" in refused.output

    bad = case.cli("cases", "register", number, "--relation", "nabo", "--period-start",
                   "2025-13-01", "--type", "threats")
    assert bad.exit_code == 2, described(bad)
    assert "--relation: er ikke et af valgene (citizen" in bad.stderr
    assert "--period-start: er ikke en dato (ÅÅÅÅ-MM-DD)" in bad.stderr
    assert "--description: skal udfyldes" in bad.stderr
    assert "intet er gemt" in bad.stderr
    assert as_json(case.cli("cases", "register", number, "--versions", "--json"))[
        "versions"] == []

    first = case.cli("cases", "register", number, "--relation", "citizen", "--type",
                     "threats", "--description", "Trusler i en mail.\nFlere følger.",
                     "--absence", "sick-leave", "--first-absence-day", "2025-03-05",
                     "--actions", "Samtale med Mette.")
    assert first.exit_code == 0, described(first)
    assert first.output.strip() == f"Sag {number}: registrering gemt som version 1"
    same = case.cli("cases", "register", number, "--type", "threats")
    assert same.output.strip() == (
        f"Sag {number}: intet ændret; registreringen er allerede version 1")
    second = as_json(case.cli("cases", "register", number, "--type", "insults", "--json"))
    assert (second["version"], second["saved"]) == (2, True)
    assert second["fields"]["harassment_type"] == "insults"  # type: ignore[index]
    assert second["fields"]["relation"] == "citizen"  # type: ignore[index]

    done = case.cli("cases", "step", number, "registration")
    assert done.exit_code == 0, described(done)
    easy = case.cli("cases", "easy", number, "--easy-number", "2025-0042",
                    "--reported-on", "2025-03-10")
    assert easy.exit_code == 0, described(easy)
    assert "EASY-sagsnummer 2025-0042" in easy.output and "10. marts 2025" in easy.output

    versions = as_json(case.cli("cases", "register", number, "--versions", "--json"))
    listed = versions["versions"]
    assert isinstance(listed, list)
    assert [entry["version"] for entry in listed] == [1, 2]
    assert all(entry["author"].startswith("cli:") for entry in listed)
    database = Database(case.database_url)
    try:
        with database.read() as session:
            digests = [event.details["fields_sha256"] for event in session.execute(
                select(AuditEvent).where(AuditEvent.action == "registration-saved")
                .order_by(AuditEvent.seq)).scalars()]
    finally:
        database.dispose()
    assert [entry["fields_sha256"] for entry in listed] == digests

    report = as_json(case.cli("cases", "show", number, "--json"))
    assert report["registration"]["version"] == 2  # type: ignore[index]
    assert report["registration"]["harassment_type"] == "insults"  # type: ignore[index]
    assert report["easy"]["easy_case_number"] == "2025-0042"  # type: ignore[index]
    assert report["easy"]["deadline"] == "2025-03-19"  # type: ignore[index]
    tree = case.cli("cases", "show", number)
    assert "Registrering: version 2" in tree.output
    assert "nedsættende eller krænkende" in tree.output and "en borger" in tree.output
    assert "EASY: anmeldt mandag 10. marts 2025, EASY-sagsnummer 2025-0042" in tree.output

    text = case.cli("cases", "register", number)  # no options: shows, saves nothing
    assert text.exit_code == 0, described(text)
    assert f"Sag {number}: registrering, version 2" in text.output
    assert "(--type)" in text.output

    exported = case_export(case, number)
    check_bundle(exported, number, digests)


def case_export(case: RegisteredCase, number: str) -> Path:
    out = case.config_file.parent / "bundle"
    result = case.cli("export", number, "--out", str(out))
    assert result.exit_code == 0, described(result)
    return out


def check_bundle(out: Path, number: str, digests: list[str]) -> None:
    check = subprocess.run(["sha256sum", "-c", "--strict", "SHA256SUMS"], cwd=out,
                           capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    checked = {line.rsplit(": ", 1)[0] for line in check.stdout.splitlines()}
    assert {"registration.json", "registration.html"} <= checked

    data = json.loads((out / "registration.json").read_text("utf-8"))
    assert data["case"] == number
    assert [version["version"] for version in data["versions"]] == [1, 2]
    assert [version["fields_sha256"] for version in data["versions"]] == digests
    assert data["versions"][0]["fields"]["harassment_type"] == "threats"
    assert data["versions"][1]["created_at"][-6:] in ("+01:00", "+02:00")
    assert data["easy"]["easy_case_number"] == "2025-0042"
    assert data["easy"]["reported_on"] == "2025-03-10"

    page = (out / "registration.html").read_text("utf-8")
    assert page.index("Version 2 af 2") < page.index("Version 1 af 2")  # newest first
    assert "nedsættende eller krænkende" in page and "trusler" in page  # each version in words
    assert "vold (AT-vejledning D.4.3)" in page or "D.4.3" in page
    assert "GDPR" in page and "2025-0042" in page
    assert "Trusler i en mail.\nFlere følger." in page

    report = (out / "report.html").read_text("utf-8")
    section = report[report.index('id="registration"'):report.index('id="notes"')]
    assert "Version 2 af 2, gemt" in section and "registration.html" in section
    assert "en borger" in section

    readme = (out / "README.txt").read_text("utf-8")
    assert "registration.html" in readme and "registration.json" in readme
    manifest = json.loads((out / "manifest.json").read_text("utf-8"))
    assert {"registration.json", "registration.html"} <= {
        entry["path"] for entry in manifest["files"]}
