"""Evaluation: held-out cross-entropy; LLM judges for benchmark scoring (benchmarks: the evaluation issue)."""
from .heldout import heldout_loss, heldout_stats
from .judges import JUDGES, JudgeConfig, JudgeError, make_judge

__all__ = ["heldout_loss", "heldout_stats", "JUDGES", "JudgeConfig", "JudgeError", "make_judge"]
