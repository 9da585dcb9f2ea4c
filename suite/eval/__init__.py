"""Evaluation: held-out cross-entropy (and, from the evaluation issue on, benchmarks)."""
from .heldout import heldout_loss

__all__ = ["heldout_loss"]
