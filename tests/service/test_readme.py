"""The README's first two commands are the ones a user and CI run."""

from __future__ import annotations

import re

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
