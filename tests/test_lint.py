"""The code passes ruff with the project's rules (pyproject.toml [tool.ruff]: pycodestyle, pyflakes, three
bugbear checks, lines up to 120 characters), so a finding fails CI instead of piling up."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _ruff() -> list[str]:
    exe = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if exe is None:
        pytest.skip("ruff is not installed (pip install -e '.[test]' installs it)")
    return [exe]


def test_ruff_is_clean():
    out = subprocess.run([*_ruff(), "check", "--no-cache", "suite", "tests"], cwd=ROOT, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stdout[-5000:] + out.stderr[-2000:]
