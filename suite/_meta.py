"""Provenance recorded with every result: package versions and the git revision of the code."""
from __future__ import annotations

import importlib.metadata as md
import platform
import subprocess
from functools import lru_cache
from pathlib import Path

_PACKAGES = ("suite", "torch", "transformers", "tokenizers", "numpy", "submitit", "lm-eval", "scipy", "pandas")


@lru_cache(maxsize=1)
def versions() -> dict:
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    return out


@lru_cache(maxsize=1)
def git_revision() -> str | None:
    """HEAD of the repository holding this package, with '-dirty' when tracked files changed; None outside git."""
    root = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5).stdout.strip()
        if not rev:
            return None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None
