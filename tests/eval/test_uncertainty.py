"""suite.eval.uncertainty: standard errors, intervals and answer distributions against references and hand values."""
from __future__ import annotations

import math

import numpy as np
import pytest

from suite.eval.uncertainty import (MISSING, Z95, accuracy_uncertainty, answer_distribution, binomial_stderr,
                                    chance_accuracy, entropy_bits, graded_uncertainty, is_missing, mean_stderr,
                                    wilson_interval)


@pytest.mark.parametrize("k,n", [(0, 10), (3, 10), (50, 100), (97, 100), (20, 20), (1, 1), (7, 250)])
def test_wilson_interval_equals_scipy(k, n):
    from scipy.stats import binomtest

    ref = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    low, high = wilson_interval(k, n)
    assert low == pytest.approx(ref.low, abs=1e-12) and high == pytest.approx(ref.high, abs=1e-12)
    assert 0.0 <= low <= k / n <= high <= 1.0


def test_wilson_interval_other_level_and_empty():
    from scipy.stats import binomtest

    ref = binomtest(12, 40).proportion_ci(confidence_level=0.9, method="wilson")
    low, high = wilson_interval(12, 40, z=1.6448536269514722)   # the 0.95 quantile: a 90% interval
    assert (low, high) == pytest.approx((ref.low, ref.high), abs=1e-12)
    assert Z95 == pytest.approx(1.959963984540054, abs=1e-15)
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_binomial_stderr_by_hand():
    assert binomial_stderr(0.3, 100) == pytest.approx(math.sqrt(0.3 * 0.7 / 100))   # 0.0458257569...
    assert binomial_stderr(0.3, 100) == pytest.approx(0.045825756949558, abs=1e-15)
    assert binomial_stderr(0.5, 4) == pytest.approx(0.25)
    assert binomial_stderr(0.0, 50) == 0.0 and binomial_stderr(1.0, 50) == 0.0
    assert math.isnan(binomial_stderr(0.5, 0))


def test_mean_stderr_by_hand():
    assert mean_stderr([0.0, 0.5, 1.0]) == pytest.approx(0.5 / math.sqrt(3))   # SD (ddof=1) 0.5
    assert mean_stderr([0.2, 0.2, 0.2, 0.2]) == 0.0
    assert math.isnan(mean_stderr([0.7])) and math.isnan(mean_stderr([]))


def test_accuracy_and_graded_summaries_on_percent_scale():
    hits = [1] * 7 + [0] * 13
    acc = accuracy_uncertainty(hits, scale=100.0)
    assert acc["ci_method"] == "wilson"
    assert acc["stderr"] == pytest.approx(100 * math.sqrt(0.35 * 0.65 / 20))
    low, high = wilson_interval(7, 20)
    assert (acc["ci_low"], acc["ci_high"]) == pytest.approx((100 * low, 100 * high))
    # all right: the binomial stderr is 0, the Wilson interval is not empty
    full = accuracy_uncertainty([True] * 10, scale=100.0)
    assert full["stderr"] == 0.0 and full["ci_high"] == 100.0 and full["ci_low"] < 80.0
    assert accuracy_uncertainty([], scale=100.0) == {"stderr": None, "ci_low": None, "ci_high": None,
                                                     "ci_method": "wilson"}
    grades = [0.0, 0.5, 1.0, 1.0]
    g = graded_uncertainty(grades, scale=100.0)
    se = 100 * np.std(grades, ddof=1) / 2
    assert g["ci_method"] == "normal" and g["stderr"] == pytest.approx(se)
    assert (g["ci_low"], g["ci_high"]) == pytest.approx((62.5 - 1.959963984540054 * se, 62.5 + 1.959963984540054 * se))
    assert graded_uncertainty([0.4], scale=100.0)["stderr"] is None


def test_answer_entropy_constant_and_uniform():
    const = answer_distribution(["B"] * 12)
    assert const["entropy_bits"] == 0.0 and const["top"] == "B" and const["top_share"] == 1.0 and const["n"] == 12
    uniform = answer_distribution(list("ABCD") * 5)
    assert uniform["entropy_bits"] == pytest.approx(2.0, abs=1e-12)
    assert uniform["top"] == "A" and uniform["top_share"] == 0.25        # a tie goes to the first in sorted order
    assert uniform["counts"] == {"A": 5, "B": 5, "C": 5, "D": 5}
    assert entropy_bits([1, 1]) == pytest.approx(1.0) and entropy_bits([3, 0, 0]) == 0.0


def test_answer_distribution_counts_z_and_missing_as_categories():
    d = answer_distribution(["A", "A", "Z", None, "", float("nan"), "  ", "C"])
    assert d["n"] == 8 and d["n_missing"] == 4
    assert d["counts"] == {MISSING: 4, "A": 2, "C": 1, "Z": 1}
    assert d["top"] == MISSING and d["top_share"] == 0.5
    p = np.array([4, 2, 1, 1]) / 8
    assert d["entropy_bits"] == pytest.approx(float(-(p * np.log2(p)).sum()))
    empty = answer_distribution([])
    assert empty["entropy_bits"] is None and empty["top"] is None and empty["n"] == 0


def test_is_missing():
    import pandas as pd

    assert is_missing(None) and is_missing(float("nan")) and is_missing(np.float64("nan")) and is_missing(" \n")
    assert is_missing(pd.NA)
    assert not is_missing("A") and not is_missing(0) and not is_missing(0.0) and not is_missing("0")


def test_chance_accuracy():
    assert chance_accuracy([4] * 10) == 0.25
    assert chance_accuracy([4, 2, 0, None]) == pytest.approx((0.25 + 0.5) / 4)   # free-form items count 0
    assert chance_accuracy([5, 5]) == pytest.approx(0.2)
    assert math.isnan(chance_accuracy([]))
