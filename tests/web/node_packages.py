"""The npm packages the web tests use (axe-core at the repository's root; oidc-provider in
tests/web/oidc), installed from their lock files when missing, and axe run on a page.

`.ci/run` installs both with `npm ci` before the README's test command; a developer who runs
the command alone gets them installed here, once, while the other pytest workers wait.
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]
AXE = REPOSITORY / "node_modules" / "axe-core" / "axe.min.js"
# The rule sets of WCAG 2.1 A and AA, the level Danish public-sector pages must meet.
WCAG_21_AA = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa")


def npm_installed(folder: Path, package: str) -> Path:
    """`folder/node_modules/<package>`, installed from the folder's package-lock.json
    (`npm ci`) when missing."""
    installed = folder / "node_modules" / package
    # Checked only under the lock: npm makes the folder long before it has filled it, and
    # another worker must not start node on a half-installed package.
    with open(Path(tempfile.gettempdir()) / "chikanemail-npm-ci.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not installed.is_dir():
            npm = shutil.which("npm")
            if npm is None:
                pytest.fail(f"npm is needed to install {package} (npm ci in {folder})")
            subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=folder, check=True,
                           timeout=300, capture_output=True)
    return installed


def axe_results(page: Any, rules: tuple[str, ...] = WCAG_21_AA) -> dict[str, Any]:
    """axe-core run on a Playwright page (whose context bypasses the page's CSP: axe is the
    test's own script): how many checks passed, and each violation's id, impact and
    nodes."""
    npm_installed(REPOSITORY, "axe-core")
    page.add_script_tag(path=str(AXE))
    return dict(page.evaluate(
        "async (rules) => { const r = await axe.run(document, {runOnly: rules});"
        " return {passes: r.passes.length, violations: r.violations.map(v => ({id: v.id,"
        " impact: v.impact, nodes: v.nodes.map(n => n.target.join(' '))}))}; }",
        list(rules)))


def serious(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The violations axe rates serious or critical."""
    return [v for v in results["violations"] if v["impact"] in ("serious", "critical")]
