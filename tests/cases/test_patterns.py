"""Patterns across cases, end to end: the same harasser's address, their domain (never a
free-mail one), and the same screenshot re-encoded as a smaller JPEG link cases; the new
case's manager is told without seeing another manager's case; `chikanemail patterns`."""

from __future__ import annotations

import io
import json
import random
from email.message import EmailMessage
from typing import Any

from click.testing import CliRunner
from PIL import Image, ImageDraw

from intake.cases.patterns import hamming_distance
from intake.cases.routing import RoutingRule
from intake.commands.cli.main import main
from tests.mail_flow import CapturingRelay, list_cases_of, send
from tests.support import INTAKE_ADDRESS, MANAGER, DaemonThread, wait_until, write_toml

SCHOOL_MANAGER = "skoleleder@kommune.example"


def screenshot(size: tuple[int, int] = (900, 640)) -> Image.Image:
    """A picture with enough structure to have a telling dHash."""
    rng = random.Random(20261121)
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    for _ in range(40):
        x, y = rng.randrange(size[0]), rng.randrange(size[1])
        w, h = rng.randrange(40, 300), rng.randrange(20, 200)
        draw.rectangle((x, y, x + w, y + h), fill=tuple(rng.randrange(256) for _ in range(3)))
    return image


def encoded(image: Image.Image, image_format: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    return buffer.getvalue()


def forwarded(reporter: str, original_from: str, *,
              picture: tuple[bytes, str] | None = None) -> bytes:
    """A report forwarding a mail from `original_from`, maybe with a screenshot."""
    mail = EmailMessage()
    mail["From"] = reporter
    mail["To"] = INTAKE_ADDRESS
    mail["Subject"] = "VS: Nu igen"
    mail.set_content("Se nedenfor.\n\n---------- Forwarded message ---------\n"
                     f"From: Afsender <{original_from}>\n"
                     "Date: Wed, 18 Nov 2026 21:47:00 +0100\nSubject: Nu igen\n"
                     f"To: <{reporter}>\n\nDu skal passe på.\n")
    if picture is not None:
        data, subtype = picture
        mail.add_attachment(data, maintype="image", subtype=subtype,
                            filename=f"skaermbillede.{subtype}")
    return mail.as_bytes()


def report_and_wait(daemon: DaemonThread, raw: bytes, reporter: str, count: int) -> str:
    send(daemon, raw, mail_from=reporter)
    numbers = wait_until(lambda: list_cases_of(daemon) if len(list_cases_of(daemon)) == count
                         else [], message=f"case {count}")
    return sorted(numbers)[-1]


def notification_to(capture: CapturingRelay, manager: str, number: str) -> str:
    def found() -> list[str]:
        return [mail.message.get_body(("plain",)).get_content() for mail in capture.to(manager)
                if number in str(mail.message["Subject"])
                and mail.message["Auto-Submitted"] == "auto-generated"]
    return wait_until(found, message=f"the notification of {number}")[0]


def test_the_screenshot_hash_survives_a_jpeg_at_another_size() -> None:
    from intake.parse.images.pictures import difference_hash

    picture = screenshot()
    small = Image.open(io.BytesIO(encoded(picture.resize((600, 427)), "JPEG", quality=70)))
    assert hamming_distance(difference_hash(picture), difference_hash(small)) <= 6
    other = Image.new("RGB", (900, 640), "white")
    ImageDraw.Draw(other).ellipse((100, 100, 700, 500), fill="navy")
    assert hamming_distance(difference_hash(picture), difference_hash(other)) > 6


def test_cases_are_linked_by_sender_domain_and_screenshot(
        start: Any, relay: tuple[CapturingRelay, int], tmp_path: Any) -> None:
    capture, _ = relay
    daemon = start(routing={"rules": (RoutingRule(match="skole.kommune.example",
                                                  manager=SCHOOL_MANAGER),)})
    first = report_and_wait(daemon, forwarded("ansat@kommune.example", "trold@trolde.example"),
                            "ansat@kommune.example", 1)
    # Another manager's employee, the same harasser: linked, but the school manager does
    # not learn the other case's number.
    second = report_and_wait(
        daemon, forwarded("laerer@skole.kommune.example", "Trold@Trolde.example"),
        "laerer@skole.kommune.example", 2)
    text = notification_to(capture, SCHOOL_MANAGER, second)
    assert "en sag, som en anden leder behandler (samme afsender)" in " ".join(text.split())
    assert first not in text
    # The same domain, another address, and the first case's own manager: the number shows.
    third = report_and_wait(daemon, forwarded("ansat2@kommune.example", "fjols@trolde.example"),
                            "ansat2@kommune.example", 3)
    text = " ".join(notification_to(capture, MANAGER, third).split())
    assert f"Sagen ligner din sag {first} (samme afsenderdomæne)" in text
    # Free mail: the domain says nothing; the screenshot does, even as a smaller JPEG.
    picture = screenshot()
    fourth = report_and_wait(daemon, forwarded("ansat3@kommune.example", "a@gmail.com",
                                               picture=(encoded(picture, "PNG"), "png")),
                             "ansat3@kommune.example", 4)
    fifth = report_and_wait(
        daemon, forwarded("ansat4@kommune.example", "b@gmail.com",
                          picture=(encoded(picture.resize((600, 427)), "JPEG", quality=70),
                                   "jpeg")),
        "ansat4@kommune.example", 5)
    text = " ".join(notification_to(capture, MANAGER, fifth).split())
    assert f"Sagen ligner din sag {fourth} (samme skærmbillede)" in text

    config_file = write_toml(tmp_path / "config.toml", {
        "storage": {"data_dir": daemon.config.storage.data_dir,
                    "database_url": daemon.config.storage.database_url},
    })
    result = CliRunner().invoke(main, ["--config", str(config_file), "patterns", "--json"])
    assert result.exit_code == 0, result.output
    groups = json.loads(result.output)
    by_cases = {tuple(case["number"] for case in group["cases"]): group for group in groups}
    assert set(by_cases) == {(first, second, third), (fourth, fifth)}
    reasons = {(reason["reason"], reason["detail"])
               for reason in by_cases[(first, second, third)]["reasons"]}
    assert reasons == {("sender", "trold@trolde.example"), ("domain", "trolde.example")}
    (image_reason,) = by_cases[(fourth, fifth)]["reasons"]
    assert image_reason["reason"] == "image"

    shown = CliRunner().invoke(main, ["--config", str(config_file), "cases", "show", second,
                                      "--json"])
    assert shown.exit_code == 0, shown.output
    related = json.loads(shown.output)["related"]
    assert [(other["number"], other["manager"], [reason["reason"] for reason in other["reasons"]])
            for other in related] == [(first, MANAGER, ["sender"]), (third, MANAGER, ["domain"])]
    table = CliRunner().invoke(main, ["--config", str(config_file), "patterns"])
    assert table.exit_code == 0 and "2 grupper af relaterede sager" in table.output  # Danish
