"""The built wheel holds every module and data file of the three packages, and nothing else.

The packages are found by setuptools (every folder with an `__init__.py`); a folder that
lost its `__init__.py`, or a data file pattern that no longer matches, would install a
daemon that fails at its first import or its first mail. This builds the real wheel.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.support import REPO_ROOT

pytestmark = pytest.mark.integration

PACKAGES = ("intake", "notifier", "storage")
# Files that ship besides the modules: templates, the migration template, type markers, and
# the message catalogs with their compiled .mo files.
DATA_SUFFIXES = (".j2", ".mako", "py.typed", ".po", ".mo")
# The web view's templates and static files (style sheet, vendored scripts and their licence).
DATA_FOLDERS = ("intake/web/templates/", "intake/web/static/")


def _source_files() -> set[str]:
    """Every file of the packages that git tracks and the wheel must carry."""
    listed = subprocess.run(
        ["git", "ls-files", *PACKAGES], cwd=REPO_ROOT, capture_output=True, text=True,
        check=True).stdout.split()
    return {name for name in listed if name.endswith(".py") or name.endswith(DATA_SUFFIXES)
            or name.startswith(DATA_FOLDERS)}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from this checkout."""
    # Built from a copy of the tracked files: setuptools reuses an in-tree build/ folder,
    # which can still hold modules that have since moved.
    source = tmp_path_factory.mktemp("source")
    for name in subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True,
                               text=True, check=True).stdout.splitlines():
        if (REPO_ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, source / name)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(out),
         str(source)], check=True, capture_output=True, timeout=300)
    wheels = list(out.glob("chikanemail-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="module")
def wheel_names(wheel: Path) -> set[str]:
    """The names inside the wheel."""
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def test_the_wheel_holds_every_module_and_data_file(wheel_names: set[str]) -> None:
    expected = _source_files()
    assert "intake/pipeline/__init__.py" in expected
    missing = sorted(expected - wheel_names)
    assert not missing, f"not in the wheel: {missing}"


def test_the_wheel_holds_no_tests_and_nothing_untracked(wheel_names: set[str]) -> None:
    shipped = {name for name in wheel_names if not name.startswith("chikanemail-")}
    assert not [name for name in shipped if name.startswith("tests/")]
    assert shipped <= _source_files(), sorted(shipped - _source_files())


def test_the_console_script_points_at_a_shipped_module(wheel: Path,
                                                       wheel_names: set[str]) -> None:
    entry_points = next(name for name in wheel_names if name.endswith("entry_points.txt"))
    with zipfile.ZipFile(wheel) as archive:
        lines = archive.read(entry_points).decode().splitlines()
    script = next(line for line in lines if line.startswith("chikanemail ="))
    module = script.split("=", 1)[1].strip().split(":")[0]
    assert module.replace(".", "/") + ".py" in wheel_names
