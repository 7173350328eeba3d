"""The README's first two commands are the ones a user and CI run."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.support import REPO_ROOT


def readme_commands() -> list[str]:
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```sh\n(.+?)\n```", text)


def test_ci_runs_exactly_the_readme_test_command() -> None:
    install_and_serve, run_tests = readme_commands()[:2]
    assert install_and_serve.endswith("chikanemail serve")
    assert "pytest" in run_tests
    ci_lines = (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert run_tests in ci_lines


def test_ci_fails_when_the_readme_test_command_fails(tmp_path: Path) -> None:
    """`.ci/run` with the README's command standing in for a failing one exits non-zero,
    even though the soak suite after it passes (a failure inside `a && b` does not stop
    a `set -e` script)."""
    run_tests = readme_commands()[1]
    script = (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8")
    tail = script[script.index(run_tests):]
    fake = tail.replace(run_tests, "true && false && true").replace(
        ".venv/bin/python -m pytest -m soak", "true")
    runner = tmp_path / "tail"
    runner.write_text("set -euo pipefail\n" + fake, encoding="utf-8")
    done = subprocess.run(["bash", str(runner)], capture_output=True, text=True, check=False)
    assert done.returncode != 0, done.stderr
    passing = tmp_path / "passing"
    passing.write_text("set -euo pipefail\n" + tail.replace(run_tests, "true").replace(
        ".venv/bin/python -m pytest -m soak", "true"), encoding="utf-8")
    assert subprocess.run(["bash", str(passing)], check=False).returncode == 0
