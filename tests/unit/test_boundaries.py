"""The architecture rules, checked by import-linter on the real tree and on planted violations."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=tree, env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )


def copy_tree(destination: Path) -> Path:
    for package in ("gatherly", "services", "gateway"):
        shutil.copytree(ROOT / package, destination / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", destination / "pyproject.toml")
    return destination


def test_the_project_keeps_its_import_contracts() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("module", "planted", "broken"),
    [
        ("services/members/domain.py", "import services.kpi.queries", "never import each other"),
        ("services/kpi/api.py", "import nats", "Only gatherly.bus imports nats"),
        ("gatherly/web.py", "import services.members.views", "never imports a service"),
    ],
)
def test_a_planted_violation_breaks_the_build(
    tmp_path: Path, module: str, planted: str, broken: str
) -> None:
    tree = copy_tree(tmp_path)
    target = tree / module
    target.write_text(target.read_text() + f"\n{planted}  # noqa\n")
    result = lint_imports(tree)
    assert result.returncode != 0
    assert f"{broken}" in result.stdout and "BROKEN" in result.stdout
