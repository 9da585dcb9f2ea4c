"""Evaluation: held-out cross-entropy; LLM judges for benchmark scoring (benchmarks: the evaluation issue)."""
from .heldout import heldout_loss
from .judges import JUDGES, JudgeConfig, JudgeError, make_judge

__all__ = ["heldout_loss", "JUDGES", "JudgeConfig", "JudgeError", "make_judge"]
