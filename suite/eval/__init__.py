"""Evaluation: benchmarks (one registry, config.BENCHMARKS; see benchmarks.py), held-out cross-entropy, LLM judges.

Importing the package (as the `suite.plugins` entry point `suite.eval.benchmarks` does, to validate names)
imports no torch: the held-out functions load on first use.
"""
from .judges import JUDGES, JudgeConfig, JudgeError, make_judge

__all__ = ["heldout_loss", "heldout_stats", "JUDGES", "JudgeConfig", "JudgeError", "make_judge"]


def __getattr__(name: str):
    if name in ("heldout_loss", "heldout_stats"):  # torch
        from . import heldout

        return getattr(heldout, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
