"""Compute-optimal allocation against the spec's derived values and Busbridge et al.'s qualitative findings."""
import numpy as np
import pytest

from suite.laws import (SCENARIOS, chinchilla_optimal, compute_optimal_distillation, distillation_flops,
                        flops_per_token, optimal_teacher_loss, published, supervised_optimal)

SUP = published("busbridge2025-supervised").params
DIST = published("busbridge2025-distillation").params


def test_flops_per_token_matches_busbridge_table_13():
    # B FLOPs/token, n_ctx 4096, n_vocab 32768; Table 13 prints 0.4471, 4.28, 16.99, 27.23
    got = flops_per_token(np.array([0.1434e9, 1.82e9, 7.75e9, 12.6e9])) / 1e9
    np.testing.assert_allclose(got, [0.4471, 4.28, 16.99, 27.23], rtol=2e-3)
    assert flops_per_token(1e12, n_ctx=0, n_vocab=0) == 2e12


@pytest.mark.parametrize("name,ratio", [("chinchilla", 92.8), ("chinchilla-tex", 59.0), ("epoch2024", 18.4)])
def test_chinchilla_closed_form_tokens_per_parameter(name, ratio):
    C = 6 * 70e9 * 1.4e12
    N, D = chinchilla_optimal(published(name).params, C)
    assert 6 * N * D == pytest.approx(C, rel=1e-12)
    assert D / N == pytest.approx(ratio, abs=0.05)


def test_supervised_optimum_closed_form_and_numerical_agree():
    assert supervised_optimal(SUP, 1e20)["tokens_per_param"] == pytest.approx(19.0, abs=0.05)
    assert supervised_optimal(SUP, 1e24)["tokens_per_param"] == pytest.approx(14.8, abs=0.05)
    closed = supervised_optimal(SUP, 1e21)
    numeric = supervised_optimal(SUP, 1e21, flops=lambda n: 2 * n)  # 3 F(N) D = 6ND
    assert numeric["N"] == pytest.approx(closed["N"], rel=1e-5)
    assert numeric["loss"] == pytest.approx(closed["loss"], rel=1e-12)
    # with the full F(N) the optimum is a real minimum of L along the budget
    opt = supervised_optimal(SUP, 1e21, flops=flops_per_token)
    for f in (0.8, 1.25):
        n = opt["N"] * f
        from suite.laws import get_law
        assert get_law("supervised").predict(SUP, N=n, D=1e21 / (3 * flops_per_token(n))) > opt["loss"]


def test_optimal_teacher_is_the_bottom_of_the_capacity_gap():
    r = optimal_teacher_loss(SUP, DIST, N_S=1.98e8, D_S=20 * 1.98e8)
    assert 1.8 < r["L_T"] < 1.95 and r["L_S"] < 2.5386  # below every tabulated point of the U
    for n, lt, ls in [(1.43e8, 2.267, 2.4429), (1.82e9, 1.876, 1.9990), (7.75e9, 1.702, 1.8157)]:
        r = optimal_teacher_loss(SUP, DIST, N_S=n, D_S=np.inf)
        assert r["L_T"] == pytest.approx(lt, abs=2e-3) and r["L_S"] == pytest.approx(ls, abs=1e-4)
        # App. E.6: with infinite data, distillation's best matches the supervised floor to ~0.5%
        assert abs(r["gain"]) / r["L_supervised"] < 0.006


def test_distillation_allocation_in_the_four_scenarios():
    C, N_S = 1e21, 1e9
    out = {s: compute_optimal_distillation(SUP, DIST, N_S=N_S, C=C, scenario=s) for s in SCENARIOS}
    for s, r in out.items():
        assert r["flops"]["total"] == pytest.approx(C, rel=1e-5), s
        fl = distillation_flops(N_S, r["D_S"], r["N_T"], r["D_T"], s)
        assert fl["total"] == pytest.approx(r["flops"]["total"])
    assert out["amortized"]["fractions"]["student_train"] == pytest.approx(1.0)
    # a free teacher helps at this modest budget ...
    assert out["amortized"]["distillation_gain"] > 0 and out["inference"]["distillation_gain"] > 0
    # ... an existing teacher should be overtrained: D_T runs to the optimizer's bound (App. D.4.4)
    assert "D_T" in out["inference"]["at_bound"]
    # ... and a teacher trained for this one student never beats supervised training (§5.1, App. D.4.2)
    assert out["pretraining"]["distillation_gain"] < 0 and out["pretraining+inference"]["distillation_gain"] < 0
    assert out["pretraining+inference"]["L_S"] >= out["pretraining"]["L_S"] >= out["amortized"]["L_S"]


def test_allocation_errors_are_clear():
    with pytest.raises(ValueError, match="did you mean 'inference'"):
        compute_optimal_distillation(SUP, DIST, N_S=1e9, C=1e21, scenario="inferance")
    with pytest.raises(ValueError, match="cannot train"):
        compute_optimal_distillation(SUP, DIST, N_S=1e9, C=1e10)


def test_optimal_teacher_on_its_search_bound_is_returned_on_it_and_flagged():
    # at N_S = 7.75B, D_S = 1T the bottom of the U is at L_T = 1.728 (interior of [1.3, 3])
    free = optimal_teacher_loss(SUP, DIST, N_S=7.75e9, D_S=1e12, L_T_range=(1.3, 3.0))
    assert free["L_T"] == pytest.approx(1.728, abs=2e-3) and not free["at_search_bound"]
    assert free["search_bound"] is None and free["search_range"] == [1.3, 3.0]
    # a floor above it (an irreducible loss of 1.8): the answer is the floor itself, flagged, not a point near it
    low = optimal_teacher_loss(SUP, DIST, N_S=7.75e9, D_S=1e12, L_T_range=(1.8, None))
    assert low["L_T"] == 1.8 and low["at_search_bound"] and low["search_bound"] == "low"
    assert low["search_range"][1] == pytest.approx(2 * low["L_supervised"])       # None: the default end
    assert low["L_S"] > free["L_S"] and low["gain"] == pytest.approx(low["L_supervised"] - low["L_S"])
    high = optimal_teacher_loss(SUP, DIST, N_S=7.75e9, D_S=1e12, L_T_range=(1.3, 1.6))
    assert high["L_T"] == 1.6 and high["search_bound"] == "high"
    with pytest.raises(ValueError, match="empty"):
        optimal_teacher_loss(SUP, DIST, N_S=7.75e9, D_S=1e12, L_T_range=(2.0, 1.9))


def test_allocation_names_the_bounds_it_searched():
    r = compute_optimal_distillation(SUP, DIST, N_S=1e9, C=1e21, scenario="inference")
    assert r["bounds"] == [1e6, 1e17] and "D_T" in r["at_bound"] and r["D_T"] == pytest.approx(1e17, rel=1e-5)
