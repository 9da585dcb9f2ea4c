"""`suite bench sweep` at a small size on the real cluster: fields present, jobs cleaned up."""
import subprocess

import pytest

from suite.bench.sweep import bench


@pytest.mark.slurm
def test_sweep_bench_submits_and_reads_status(tmp_path, monkeypatch):
    monkeypatch.setenv("SUITE_BENCH_DIR", str(tmp_path))
    res = bench(cells=20, executor="slurm")
    assert res["cells"] == 20 and res["jobs"] == 20
    assert res["submit_seconds"] > 0 and res["status_seconds"] > 0
    assert sum(res["status_counts"].values()) == 20
    out = subprocess.run(["squeue", "-h", "-n", "bench-sweep:many"], capture_output=True, text=True).stdout
    assert out.strip() == ""  # cancelled afterwards


def test_sweep_bench_inline_no_op_cells_are_done(tmp_path, monkeypatch):
    monkeypatch.setenv("SUITE_BENCH_DIR", str(tmp_path))
    res = bench(cells=5, executor="inline")
    assert res["status_counts"]["done"] == 5
