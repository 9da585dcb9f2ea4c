"""`suite bench search` on a seeded subsample of the papers' grids: fast search is no worse than L-BFGS-B per start."""
import pytest

from suite.bench import search


@pytest.fixture(scope="module")
def res():
    # 120 of the 9,600 supervised starts and 40 of the 216,000 distillation starts (~15 s on 2 cores);
    # `suite bench search` runs all 9,600 and 4,000 of the 216,000
    return search.bench(laws=("supervised", "distillation", "distillation:c1=100"), supervised_starts=120,
                        distillation_starts=40, workers=1, progress=False)


def test_fast_search_is_no_worse_than_full_and_finds_the_same_supervised_fit(res):
    sup = res["supervised"]
    assert (sup["grid_starts"], sup["fast_starts"], sup["full_starts"]) == (9600, 9600, 120)
    assert sup["fast_objective"] <= sup["full_objective"] * (1 + 1e-6)
    # the lab's supervised fit is identified: both searches end at the same point
    assert abs(sup["objective_rel_diff"]) < 1e-9 and sup["max_param_rel_diff"] < 1e-4
    assert sup["fast_at_bound"] == sup["full_at_bound"] == []
    assert res["goal_met"]


def test_distillation_grid_is_the_papers_and_the_subsample_is_documented(res):
    d, held = res["distillation"], res["distillation:c1=100"]
    assert d["grid_starts"] == 216_000 and d["fast_starts"] == 216_000 and d["full_starts"] == 40
    # holding c1 collapses its 4 grid values: 54,000 distinct starts for fast
    assert held["held"] == {"c1": 100.0} and held["fast_starts"] == 54_000 and held["full_params"]["c1"] == 100.0
    for row in (d, held):
        assert row["fast_no_worse"] and row["fast_on_subsample_no_worse"]
        assert set(row["param_rel_diff"]) == {"A", "B", "alpha", "beta", "gamma", "c0", "c1", "f1", "d1"}


def test_unknown_law_is_a_clear_error():
    with pytest.raises(ValueError, match="valid: supervised, distillation"):
        search.bench(laws=("chinchila",), workers=1, progress=False)
