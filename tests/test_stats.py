"""suite.stats against scipy.stats and worked examples: intervals, paired and Welch tests, Holm, the MDE."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as ss

from suite import stats

A = [0.806, 0.812, 0.801, 0.809]
B = [0.795, 0.799, 0.790, 0.801]


def test_mean_ci_is_the_student_t_interval():
    s = stats.mean_ci(A)
    lo, hi = ss.t.interval(0.95, len(A) - 1, loc=np.mean(A), scale=ss.sem(A))
    assert s.n == 4 and s.mean == pytest.approx(np.mean(A))
    assert (s.ci_low, s.ci_high) == (pytest.approx(lo), pytest.approx(hi))
    one = stats.mean_ci([1.0, np.nan])
    assert one.n == 1 and math.isnan(one.ci_low)


def test_paired_difference_matches_scipy_ttest_rel():
    d = stats.difference(A, B, paired=True)
    ref = ss.ttest_rel(A, B)
    assert d.test == "paired" and d.p == pytest.approx(ref.pvalue)
    lo, hi = ref.confidence_interval(0.95)
    assert (d.ci_low, d.ci_high) == (pytest.approx(lo), pytest.approx(hi))
    assert d.diff == pytest.approx(np.mean(A) - np.mean(B))


def test_welch_difference_matches_scipy_ttest_ind():
    b = B + [0.780, 0.812]
    d = stats.difference(A, b)
    ref = ss.ttest_ind(A, b, equal_var=False)
    assert d.test == "welch" and d.p == pytest.approx(ref.pvalue)
    lo, hi = ref.confidence_interval(0.95)
    assert (d.ci_low, d.ci_high) == (pytest.approx(lo), pytest.approx(hi))
    assert d.df == pytest.approx(ref.df)


def test_single_seed_against_several_is_crawford_howell():
    x, ys = 0.90, [0.80, 0.82, 0.81]
    d = stats.difference([x], ys)
    t = (x - np.mean(ys)) / (np.std(ys, ddof=1) * math.sqrt(1 + 1 / 3))
    assert d.test == "single" and d.df == 2
    assert d.p == pytest.approx(2 * ss.t.sf(abs(t), 2))
    assert stats.difference([1.0], [2.0]).test == "none"


def test_holm_worked_example():
    # Holm (1979) step-down on four p-values: sorted 0.01, 0.02, 0.03, 0.04 -> 0.04, 0.06, 0.06, 0.06
    p = [0.03, 0.01, 0.04, 0.02]
    assert stats.holm(p) == pytest.approx([0.06, 0.04, 0.06, 0.06])
    # nan stays nan and is not counted in the family
    out = stats.holm([0.01, np.nan, 0.04])
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1]) and out[2] == pytest.approx(0.04)
    assert stats.holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])   # capped at 1, monotone


def test_mde_formula_and_its_power():
    # (t_{0.975,4} + t_{0.8,4}) * se = (2.776 + 0.941) * se
    se, df = 0.0082, 4
    assert stats.mde(se, df) == pytest.approx((2.7764451 + 0.9409646) * se, rel=1e-6)
    # at large df it tends to the normal (1.960 + 0.842) * se = 2.80 se
    assert stats.mde(1.0, 1e7) == pytest.approx(1.959964 + 0.841621, rel=1e-5)
    # the test detects a true difference of the MDE about 80% of the time (noncentral t at that shift)
    nc = stats.mde(1.0, 10)
    crit = ss.t.ppf(0.975, 10)
    power = ss.nct.sf(crit, 10, nc) + ss.nct.cdf(-crit, 10, nc)
    assert 0.77 < power < 0.83


def test_difference_carries_its_mde():
    d = stats.difference(A, B, paired=True)
    assert d.mde == pytest.approx(stats.mde(d.se, d.df))
