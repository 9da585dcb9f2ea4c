"""The benchmarks run end to end at toy sizes and report the fields the issue names (not timings)."""
import pytest

from suite.bench import kd_loss, train_speed


def test_kd_loss_bench_reports_ratios_and_matching_losses():
    # chunk=32: at this toy size the automatic chunk (>= 8M logits) would take all 256 rows at once
    res = kd_loss.bench(vocab=2048, tokens=256, hidden=64, repeats=1, device="cpu", chunk=32)
    for key in ["naive_peak_mb", "chunked_peak_mb", "memory_ratio", "time_ratio", "naive_s", "chunked_s"]:
        assert key in res and res[key] > 0, key
    assert res["memory_ratio"] == pytest.approx(res["chunked_peak_mb"] / res["naive_peak_mb"], rel=1e-3)
    assert res["loss_rel_diff"] < 1e-5  # same inputs, same loss
    assert res["chunked_peak_mb"] < res["naive_peak_mb"]


def test_kd_loss_bench_surfaces_a_failing_variant():
    with pytest.raises(RuntimeError, match="naive run failed"):
        kd_loss.bench(vocab=64, tokens=16, hidden=8, repeats=1, device="cpu", divergence="no_such_divergence")


def test_train_bench_compares_the_two_loops():
    res = train_speed.bench(model="tiny-0.1M", steps=6, batch=4, seq_len=32, warmup=2)
    assert res["ours_tokens_per_s"] > 0 and res["hf_tokens_per_s"] > 0
    assert res["speed_ratio"] == pytest.approx(res["ours_tokens_per_s"] / res["hf_tokens_per_s"], rel=1e-3)
    # both loops really trained the same model on the same data: similar held-out losses
    assert abs(res["ours_heldout_loss"] - res["hf_heldout_loss"]) < 0.5


def test_fit_bench_reports_speed_ratio_and_the_same_answer_as_the_naive_loop():
    from suite.bench import fit as fit_bench

    grid = {"log_A": (0, 10, 20), "log_B": (0, 10, 20), "log_E": (0, 1), "alpha": (0.5, 1), "beta": (0.5, 1)}
    res = fit_bench.bench(points=60, grid=grid, progress=False)
    assert res["starts"] == 72
    for key in ["ours_seconds", "naive_seconds", "speed_ratio", "max_param_rel_diff"]:
        assert key in res, key
    assert res["speed_ratio"] == pytest.approx(res["naive_seconds"] / res["ours_seconds"], rel=0.02)
    assert res["ours_objective"] <= res["naive_objective"] * (1 + 1e-6)
    assert res["max_param_rel_diff"] < 1e-3
