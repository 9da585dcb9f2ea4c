"""Statistics for comparing methods across seeds: intervals, tests, multiplicity, power.

    from suite.stats import mean_ci, difference, holm, mde
    suite compare runs/genrecal_toy/results.parquet --metric loss --baseline arm=SFT --by student

Every comparison the suite publishes is built from these (report/compare.py): each arm's mean with a 95%
Student-t interval over seeds; the difference to a baseline with its interval and a two-sided p-value, paired
by seed where both arms ran the same seeds (a paired t-test on the per-seed differences: the seed fixes the
initialisation and the data order, so what they share cancels), Welch's unequal-variance t-test otherwise, and
Crawford & Howell's single-case test where one arm has one seed and the other several (no test with one a side);
Holm's step-down adjustment across a table; and the minimum detectable effect at 80% power,

    MDE = (t_{1-alpha/2, df} + t_{power, df}) * SE_diff

the standard t-approximation (e.g. Cohen 1988, ch. 2): with 3 seeds a side and a seed SD of 0.01 nats,
SE_diff = 0.0082, df = 4 and MDE = (2.776 + 0.941) x 0.0082 = 0.030 nats. A difference smaller than the MDE
that is not significant says "could not tell", never "no difference".

A benchmark score's own uncertainty over its items is here too: the binomial standard error and the Wilson
interval of a proportion (eval/ stores them beside every score; report/flags.py reads them for "within chance").

numpy and scipy only; no pandas here (report/compare.py does the table).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

LEVEL = 0.95      # interval level of every published comparison
ALPHA = 0.05      # significance level, after Holm's adjustment
POWER = 0.80      # power at which the minimum detectable effect is stated
Z95 = 1.959963984540054  # the 0.975 quantile of the standard normal (scipy.special.ndtri(0.975))


def _t():
    from scipy import stats   # scipy on first use: `suite --help` stays fast

    return stats.t


def _clean(x: Sequence[float]) -> np.ndarray:
    a = np.asarray(x, dtype=float).ravel()
    return a[np.isfinite(a)]


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float
    sd: float          # sample SD (ddof 1); nan when n < 2
    ci_low: float      # Student-t interval at `level`; nan when n < 2
    ci_high: float


def mean_ci(x: Sequence[float], level: float = LEVEL) -> Summary:
    """Mean of the finite values with a Student-t interval (nan bounds for fewer than 2 values)."""
    a = _clean(x)
    n = len(a)
    if n == 0:
        return Summary(0, math.nan, math.nan, math.nan, math.nan)
    m = float(a.mean())
    if n < 2:
        return Summary(1, m, math.nan, math.nan, math.nan)
    sd = float(a.std(ddof=1))
    h = float(_t().ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return Summary(n, m, sd, m - h, m + h)


@dataclass(frozen=True)
class Difference:
    test: str          # "paired" | "welch" | "single" (one seed against several) | "none" (one seed a side)
    diff: float        # mean(a) - mean(b)
    ci_low: float
    ci_high: float
    p: float           # two-sided; nan when there is no test
    df: float
    se: float          # standard error of the difference
    mde: float         # minimum detectable |difference| at POWER, two-sided ALPHA


def difference(a: Sequence[float], b: Sequence[float], *, paired: bool = False, level: float = LEVEL,
               alpha: float = ALPHA, power: float = POWER) -> Difference:
    """mean(a) - mean(b) with its interval, p and MDE. `paired`: a[i] and b[i] share seed i (same length)."""
    if paired:
        x, y = np.asarray(a, float).ravel(), np.asarray(b, float).ravel()
        if x.shape != y.shape:
            raise ValueError(f"paired difference needs equal lengths, got {len(x)} and {len(y)}")
        d = x - y
        d = d[np.isfinite(d)]
        n = len(d)
        if n < 2:
            return _no_test(float(d.mean()) if n else math.nan)
        se, df, diff = float(d.std(ddof=1)) / math.sqrt(n), float(n - 1), float(d.mean())
        test = "paired"
    else:
        x, y = _clean(a), _clean(b)
        if len(x) == 0 or len(y) == 0:
            return _no_test(math.nan)
        diff = float(x.mean() - y.mean())
        if len(x) < 2 and len(y) < 2:
            return _no_test(diff)
        if len(x) < 2 or len(y) < 2:
            # one seed against several: Crawford & Howell's (1998) test of a single observation against a
            # sample, t = d / (s sqrt(1 + 1/n)) on n - 1 degrees of freedom (the sample's SD stands for both)
            many = y if len(x) < 2 else x
            se = float(many.std(ddof=1)) * math.sqrt(1 + 1 / len(many))
            return _finish("single", diff, se, float(len(many) - 1), level, alpha, power)
        va, vb = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
        se = float(math.sqrt(va + vb))
        # Welch-Satterthwaite degrees of freedom
        df = float((va + vb) ** 2 / (va ** 2 / (len(x) - 1) + vb ** 2 / (len(y) - 1))) if se > 0 else float(
            len(x) + len(y) - 2)
        test = "welch"
    return _finish(test, diff, se, df, level, alpha, power)


def _finish(test: str, diff: float, se: float, df: float, level: float, alpha: float, power: float) -> Difference:
    t = _t()
    if se == 0:   # identical values in both arms: no spread to test against
        p = 1.0 if diff == 0 else 0.0
        return Difference(test, diff, diff, diff, p, df, 0.0, 0.0)
    h = float(t.ppf(0.5 + level / 2, df)) * se
    p = float(2 * t.sf(abs(diff) / se, df))
    return Difference(test, diff, diff - h, diff + h, p, df, se, mde(se, df, alpha=alpha, power=power))


def _no_test(diff: float) -> Difference:
    return Difference("none", diff, math.nan, math.nan, math.nan, math.nan, math.nan, math.nan)


def mde(se: float, df: float, *, alpha: float = ALPHA, power: float = POWER) -> float:
    """Smallest true |difference| the two-sided t-test at `alpha` detects with probability `power`."""
    if not (np.isfinite(se) and np.isfinite(df)) or df <= 0:
        return math.nan
    t = _t()
    return float((t.ppf(1 - alpha / 2, df) + t.ppf(power, df)) * se)


def holm(p: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error), nan entries left out of the family and kept nan.

    Sorted ascending p_(1) <= ... <= p_(m): adjusted p_(i) = max_{j<=i} min(1, (m - j + 1) p_(j))."""
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, math.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = len(ok)
    if not m:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


# ---- a proportion over items (a benchmark score's uncertainty) ----
def binomial_stderr(p: float, n: int) -> float:
    """sqrt(p(1-p)/n): the standard error of a proportion `p` over `n` items (same scale as p); NaN when n = 0."""
    if n <= 0 or p is None or not math.isfinite(p):
        return float("nan")
    return math.sqrt(max(p * (1.0 - p), 0.0) / n)


def wilson_interval(k: float, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of `k` successes in `n` trials (fractions 0-1); (NaN, NaN) when n = 0.

    centre = (p + z²/2n) / (1 + z²/n), half-width = z·sqrt(p(1-p)/n + z²/4n²) / (1 + z²/n), with p = k/n.
    """
    if n <= 0:
        return float("nan"), float("nan")
    p = k / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(max(p * (1.0 - p), 0.0) / n + z2 / (4.0 * n * n)) / denom
    # at k = 0 (k = n) the lower (upper) bound is exactly 0 (1); computed, it can miss by one rounding
    low = 0.0 if k <= 0 else max(0.0, centre - half)
    high = 1.0 if k >= n else min(1.0, centre + half)
    return low, high
