"""suite: knowledge-distillation research at scale (sweeps, training, evaluation, scaling laws, reports)."""
__version__ = "0.1.0"
