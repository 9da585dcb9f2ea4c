"""Learning-rate schedules: linear warmup, then cosine or linear decay to min_lr_ratio × lr."""
from __future__ import annotations

import math


def warmup_steps(warmup: float, total_steps: int) -> int:
    """`warmup` < 1 is a fraction of the run, >= 1 a number of steps."""
    n = int(round(warmup * total_steps)) if warmup < 1 else int(warmup)
    return max(0, min(n, total_steps))


def lr_factor(step: int, total_steps: int, warmup: int, schedule: str, min_ratio: float) -> float:
    """Multiplier of the peak lr at optimizer step `step` (0-based)."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    span = max(1, total_steps - warmup)
    progress = min(1.0, (step - warmup) / span)
    if schedule == "cosine":
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    if schedule == "linear":
        return min_ratio + (1 - min_ratio) * (1 - progress)
    raise ValueError(f"unknown schedule {schedule!r}; valid: constant, cosine, linear")
