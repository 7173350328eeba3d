"""Phone-chat screenshots of about 1 MB, each with its own Danish text, and the report mails
that forward them (P7 `ocr_throughput.py`, P2 `notify_latency.py --screenshots`).

A screenshot is a 1280 x 2400 PNG: a header bar, chat bubbles with lines of Danish text in
DejaVuSans (what tesseract has to read), on a soft gradient with faint noise, as a phone's
rendering and a re-saved screenshot have; the noise keeps the PNG near the size of a real
one instead of compressing to a few KiB. The text differs per number, so every picture and
every mail has its own SHA-256.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import random
from email.message import EmailMessage
from pathlib import Path

from daemon_process import INTAKE_ADDRESS, SERVER_HOSTNAME  # bench/ is the script's folder
from PIL import Image, ImageChops, ImageDraw, ImageFont

FONT_FOLDER = Path("/usr/share/fonts/truetype/dejavu")
WIDTH, HEIGHT = 1280, 2400
# Standard deviation of the grey noise laid over the picture; about 1 MB at this size.
NOISE_SIGMA = 1.4

NAMES = ("Mette", "Jonas", "Kasper", "Lone", "Henrik", "Birgitte", "Søren", "Pernille")
PHRASES = (
    "Du skal ikke tro, du slipper for det her i morgen.",
    "Alle på afdelingen ved, hvad du gjorde til julefrokosten.",
    "Svar nu, eller jeg sender billedet til hele holdet.",
    "Jeg venter ved parkeringen efter vagten.",
    "Hvorfor blev du ikke bare hjemme? Ingen gider arbejde med dig.",
    "Jeg har skrevet til din leder om dig. Held og lykke.",
    "Du er så grim i det nye profilbillede, ha ha.",
    "Tænk dig om, før du går til tillidsrepræsentanten.",
    "Vi ses på fredag. Kom alene.",
    "Det var ikke en joke. Jeg ved, hvor du bor.",
    "Slet det opslag, ellers deler jeg skærmbilledet med alle.",
    "Ingen vil tro på dig alligevel.",
)
REPLIES = (
    "Lad være med at skrive til mig.",
    "Stop nu. Jeg gemmer beskederne.",
    "Jeg har ikke gjort noget.",
    "Hvad mener du?",
)


def _font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVuSans at this size (Pillow's own font when DejaVu is not installed)."""
    path = FONT_FOLDER / ("DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf")
    if path.exists():
        return ImageFont.truetype(str(path), size)
    return ImageFont.load_default()


def _wrapped(text: str, width: int) -> list[str]:
    """The text broken into lines of at most `width` characters, at spaces."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return [*lines, line] if line else lines


def chat_lines(number: int) -> list[tuple[bool, str]]:
    """The chat of screenshot `number`: (theirs?, text) per bubble, distinct per number."""
    chooser = random.Random(number)
    name = NAMES[number % len(NAMES)]
    bubbles: list[tuple[bool, str]] = []
    minute = chooser.randrange(60)
    for index in range(9):
        minute = (minute + chooser.randrange(1, 6)) % 60
        stamp = f"kl. 22:{minute:02d}"
        if index % 3 == 2:
            bubbles.append((False, f"{chooser.choice(REPLIES)} ({stamp})"))
        else:
            bubbles.append((True, f"{name} ({stamp}): {chooser.choice(PHRASES)}"))
    bubbles.append((True, f"{name}: Besked nummer {number}. Det her glemmer du ikke."))
    return bubbles


def chat_screenshot(number: int) -> bytes:
    """Screenshot `number` as PNG bytes (about 1 MB, its text the same for the same number)."""
    gradient = Image.linear_gradient("L").resize((WIDTH, HEIGHT)).point(
        lambda value: 226 + value * 26 // 255)
    noise = Image.effect_noise((WIDTH, HEIGHT), NOISE_SIGMA).point(lambda value: value - 128
                                                                   if value > 128 else 0)
    background = ImageChops.subtract(gradient, noise)
    image = Image.merge("RGB", (background, background,
                                background.point(lambda value: min(255, value + 6))))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, WIDTH, 150), fill=(30, 110, 90))
    name = NAMES[number % len(NAMES)]
    draw.text((140, 45), name, fill="white", font=_font(48, bold=True))
    draw.ellipse((30, 30, 120, 120), fill=(200, 220, 210))
    text_font = _font(34)
    top = 200
    for theirs, text in chat_lines(number):
        lines = _wrapped(text, 44)
        height = 30 + 48 * len(lines)
        left = 40 if theirs else 380
        colour = (255, 255, 255) if theirs else (215, 245, 200)
        draw.rounded_rectangle((left, top, left + 860, top + height), radius=28, fill=colour)
        for line_number, line in enumerate(lines):
            draw.text((left + 28, top + 16 + 48 * line_number), line, fill=(20, 20, 20),
                      font=text_font)
        top += height + 36
    draw.rectangle((0, HEIGHT - 140, WIDTH, HEIGHT), fill=(245, 245, 245))
    draw.text((60, HEIGHT - 95), "Skriv en besked", fill=(150, 150, 150), font=text_font)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def _write_screenshot(job: tuple[int, Path]) -> Path:
    number, path = job
    path.write_bytes(chat_screenshot(number))
    return path


def write_screenshots(count: int, folder: Path) -> list[Path]:
    """Screenshots 0 .. count-1 as PNG files in `folder`, drawn on every core."""
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [(number, folder / f"skaermbillede-{number:05d}.png") for number in range(count)]
    with multiprocessing.get_context("fork").Pool(os.cpu_count() or 1) as pool:
        return pool.map(_write_screenshot, jobs, chunksize=8)


def employee(number: int) -> str:
    """The address of the employee who sends report `number`."""
    return f"ansat{number:05d}@{SERVER_HOSTNAME}"


def screenshot_report(number: int, screenshot: bytes, run: str = "") -> bytes:
    """Report `number`: an employee forwarding one screenshot, "VS: ..." to the intake.

    Each report comes from its own employee and names no harasser of its own in headers,
    so no two cases are linked (see bench/README.md on quadratic linking).
    """
    mail = EmailMessage()
    mail["From"] = f"Ansat {number} <{employee(number)}>"
    mail["To"] = INTAKE_ADDRESS
    mail["Subject"] = f"VS: skærmbillede fra {NAMES[number % len(NAMES)]} {run} #{number}"
    mail["Message-ID"] = f"<report.{run or 'bench'}.{number}@{SERVER_HOSTNAME}>"
    mail.set_content("Hej, jeg fik de her beskeder i aftes. Skærmbilledet er vedhæftet.\n")
    mail.add_attachment(screenshot, maintype="image", subtype="png",
                        filename=f"skaermbillede-{number}.png")
    return mail.as_bytes()
