"""`suite bench kd-loss` at toy sizes: the fields it reports (not timings), with full and top-k teachers."""
import pytest

from suite.bench import kd_loss

KEYS = ["vocab", "tokens", "hidden", "divergence", "device", "dtype", "repeats", "teacher", "naive_peak_mb",
        "naive_s", "naive_loss", "chunked_peak_mb", "chunked_s", "chunked_loss", "memory_ratio", "time_ratio",
        "loss_rel_diff", "loss_abs_diff", "goal", "goal_met", "topk", "kd_compile"]


@pytest.mark.parametrize("kwargs", [{}, {"topk": 16, "divergence": "reverse_kl"}])
def test_kd_loss_bench_reports_both_variants_and_their_loss_difference(kwargs):
    # chunk=32: at this toy size the automatic chunk (>= 8M logits) would take all 256 rows at once
    res = kd_loss.bench(vocab=2048, tokens=256, hidden=64, repeats=1, device="cpu", chunk=32, **kwargs)
    for key in KEYS:
        assert key in res, key
    assert res["time_ratio"] == pytest.approx(res["chunked_s"] / res["naive_s"], rel=1e-2)
    assert res["loss_abs_diff"] == pytest.approx(abs(res["chunked_loss"] - res["naive_loss"]))
    assert res["loss_rel_diff"] < 1e-5
    assert res["chunked_peak_mb"] < res["naive_peak_mb"]
    assert res["goal_met"] == (res["memory_ratio"] <= 0.15 and res["time_ratio"] <= 1.0)


def test_a_topk_teacher_gives_a_different_loss_than_the_full_one():
    full = kd_loss.run_variant("chunked", 512, 64, 32, "forward_kl", 1, "cpu", "fp32", 16)
    top = kd_loss.run_variant("chunked", 512, 64, 32, "forward_kl", 1, "cpu", "fp32", 16, topk=8)
    assert 0 < top["loss"] <= full["loss"] * (1 + 1e-5)  # bucketing only loses information
    every = kd_loss.run_variant("chunked", 512, 64, 32, "forward_kl", 1, "cpu", "fp32", 16, topk=512)
    assert every["loss"] == pytest.approx(full["loss"], rel=1e-5)
