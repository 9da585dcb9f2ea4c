"""`suite bench kd-grid` end to end at toy sizes: the fields the issue names, a full-vocabulary cache that
trains exactly as no cache, and the teacher paid once (not timings)."""
from suite.bench import kd_grid


def test_kd_grid_bench_reports_speedup_and_loss_difference_by_k(tmp_path):
    res = kd_grid.bench(teacher_model="tiny-0.1M", teacher_tokens="8k", students=("tiny-0.007M", "tiny-0.01M"),
                        tokens="8k", ks=(8, "V"), seq_len=32, batch=8, workdir=str(tmp_path))
    assert set(res["speedup"]) == set(res["max_abs_loss_diff"]) == {"8", "V"}
    assert all(v > 0 for v in res["speedup"].values())
    assert res["max_abs_loss_diff"]["V"] < 1e-5          # k = V in float32: the full KL
    assert res["max_abs_loss_diff"]["8"] < 0.5
    for key, c in res["cache"].items():
        assert c["modes"] == ["write", "hit"], key         # the second student reads what the first wrote
        assert 0 < c["teacher_flops_paid"] < c["teacher_flops_per_cell"]
    assert res["cache"]["8"]["k"] == 8 and res["cache"]["V"]["dtype"] == "float32"
