"""The vendored htmx is the npm package's file as package-lock.json pins it, with its
licence; the pages load nothing from anyone else."""

from __future__ import annotations

import json
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[3]
VENDOR = REPOSITORY / "intake" / "web" / "static" / "vendor" / "htmx"
PACKAGE = REPOSITORY / "node_modules" / "htmx.org"


def test_vendored_htmx_is_the_locked_package() -> None:
    lock = json.loads((REPOSITORY / "package-lock.json").read_text(encoding="utf-8"))
    locked = lock["packages"]["node_modules/htmx.org"]["version"]
    assert json.loads((REPOSITORY / "package.json").read_text())["dependencies"][
        "htmx.org"] == locked
    vendored = (VENDOR / "htmx.min.js").read_bytes()
    assert f'version:"{locked}"'.encode() in vendored
    # After `npm ci` (.ci/run): byte for byte the package's own file.
    if PACKAGE.exists():
        assert (PACKAGE / "dist" / "htmx.min.js").read_bytes() == vendored
    assert "Zero-Clause BSD" in (VENDOR / "LICENSE").read_text(encoding="utf-8")


def test_the_templates_load_nothing_from_elsewhere() -> None:
    templates = (REPOSITORY / "intake" / "web" / "templates").glob("*.html")
    for template in templates:
        text = template.read_text(encoding="utf-8")
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, \
            template.name
        assert "<style" not in text and " style=" not in text, template.name
        assert "<script>" not in text, template.name
