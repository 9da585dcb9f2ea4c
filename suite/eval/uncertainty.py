"""Uncertainty over items, and the facts that flag a degenerate score: pure numpy, no model or file.

    binomial_stderr(0.5, 100)                     # 0.05: sqrt(p(1-p)/n), a fraction
    wilson_interval(50, 100)                      # (0.4038, 0.5962): 95% Wilson score interval, fractions
    mean_stderr([0.0, 0.5, 1.0])                  # sample SD (ddof=1) / sqrt(n)
    accuracy_uncertainty([1, 0, 1, 1], scale=100) # {"stderr", "ci_low", "ci_high", "ci_method": "wilson"}
    graded_uncertainty([0.2, 0.9, 1.0], scale=100)   # {"stderr", "ci_low", "ci_high", "ci_method": "normal"}
    answer_distribution(["A", "B", "A", None])    # {"entropy_bits", "top", "top_share", "n", "n_missing", "counts"}
    chance_accuracy([4, 4, 3, 0])                 # mean of 1/k over items; k = 0 (free-form) counts as 0

Which interval for which score:
- accuracy (0/1 item scores): the Wilson score interval, which stays inside [0, 1] and is not empty at p = 0
  or 1, where the binomial stderr sqrt(p(1-p)/n) is 0 (reported as is, beside the interval);
- graded scores (e.g. MM-Vet's 0-1 judge grades): mean ± z·SE with SE = sample SD / sqrt(n) (the normal
  approximation; `ci_method` "normal").
Both treat the items as a sample from the benchmark's population of items; seeds are another axis.

Undefined values (no items; one item for a sample SD) are NaN from the low-level functions and None in the
dicts, so summaries stay JSON-ready.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import numpy as np

from ..stats import Z95, binomial_stderr, wilson_interval  # noqa: F401  (part of this module's surface)
MISSING = "<missing>"    # the category answer_distribution counts missing / empty answers under


def mean_stderr(values: Iterable[float]) -> float:
    """Sample standard deviation (ddof=1) over sqrt(n): the standard error of a mean; NaN for n < 2."""
    x = np.asarray(list(values), dtype=np.float64)
    if x.size < 2:
        return float("nan")
    return float(np.std(x, ddof=1) / math.sqrt(x.size))


def _none(v: float) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


def accuracy_uncertainty(hits: Iterable[Any], scale: float = 1.0, z: float = Z95) -> dict[str, Any]:
    """Binomial stderr and the Wilson interval of an accuracy over 0/1 item scores, on `scale` (100: percent)."""
    h = np.asarray([bool(x) for x in hits], dtype=np.float64)
    n, k = int(h.size), float(h.sum())
    p = k / n if n else float("nan")
    low, high = wilson_interval(k, n, z)
    return {"stderr": _none(scale * binomial_stderr(p, n)), "ci_low": _none(scale * low),
            "ci_high": _none(scale * high), "ci_method": "wilson"}


def graded_uncertainty(scores: Iterable[float], scale: float = 1.0, z: float = Z95) -> dict[str, Any]:
    """SE = sample SD / sqrt(n) of graded item scores and mean ± z·SE, on `scale` (scores 0-1, 100: percent)."""
    x = np.asarray(list(scores), dtype=np.float64)
    se = mean_stderr(x)
    mean = float(x.mean()) if x.size else float("nan")
    return {"stderr": _none(scale * se), "ci_low": _none(scale * (mean - z * se)),
            "ci_high": _none(scale * (mean + z * se)), "ci_method": "normal"}


def is_missing(value: Any) -> bool:
    """None, NaN, or a string that is empty after stripping whitespace."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    if isinstance(value, str):
        return not value.strip()
    try:
        return bool(np.isnan(value))
    except (TypeError, ValueError):  # not a number; pandas' NA / NaT refuse bool() and np.isnan
        return type(value).__name__ in ("NAType", "NaTType")


def entropy_bits(counts: Sequence[float]) -> float:
    """Shannon entropy (bits) of the distribution proportional to `counts`; NaN when they sum to 0."""
    c = np.asarray(counts, dtype=np.float64)
    total = c.sum()
    if total <= 0:
        return float("nan")
    p = c[c > 0] / total
    return float(max(0.0, -(p * np.log2(p)).sum()))


def answer_distribution(predictions: Iterable[Any]) -> dict[str, Any]:
    """The distribution of (extracted) answers: each distinct value is a category, missing ones one more.

    Returns `entropy_bits` (0 when every answer is the same; log2(k) when k answers are equally frequent),
    `top` (the most frequent answer; ties go to the first in sorted order), `top_share` (its fraction of all
    answers, 0-1), `n` (answers counted, missing included), `n_missing` (None / NaN / empty, counted under
    MISSING) and `counts` (answer -> count, sorted by answer). With no answers, entropy, top and share are None.
    """
    counts: dict[str, int] = {}
    n_missing = 0
    for p in predictions:
        if is_missing(p):
            key = MISSING
            n_missing += 1
        else:
            key = str(p)
        counts[key] = counts.get(key, 0) + 1
    n = sum(counts.values())
    counts = dict(sorted(counts.items()))
    if not n:
        return {"entropy_bits": None, "top": None, "top_share": None, "n": 0, "n_missing": 0, "counts": {}}
    most = max(counts.values())
    top = min(k for k, c in counts.items() if c == most)  # the most frequent; ties: the first in sorted order
    return {"entropy_bits": entropy_bits(list(counts.values())), "top": top, "top_share": counts[top] / n,
            "n": n, "n_missing": n_missing, "counts": counts}


def chance_accuracy(n_options: Iterable[int | None]) -> float:
    """Expected accuracy (0-1) of a uniform random guess: the mean over items of 1/k, k the item's number of
    options; an item with no options (free-form: k 0 or None) counts 0. NaN with no items."""
    k = [0 if v is None else int(v) for v in n_options]
    if not k:
        return float("nan")
    return float(np.mean([1.0 / v if v > 0 else 0.0 for v in k]))


__all__ = ["Z95", "MISSING", "binomial_stderr", "wilson_interval", "mean_stderr", "accuracy_uncertainty",
           "graded_uncertainty", "is_missing", "entropy_bits", "answer_distribution", "chance_accuracy"]
