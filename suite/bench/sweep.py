"""`suite bench sweep`: expand and submit a large grid to Slurm with a no-op cell body, then read status.

    suite bench sweep --cells 1000 --json       # needs a Slurm cluster (scripts/local-slurm.sh up)
Prints `submit_seconds` (expansion + layout on disk + sbatch of the arrays, what `suite sweep submit`
costs), `status_seconds` (one `suite sweep status` over every cell) and `cells`. Goal for 1000 cells:
submit < 10 s, status < 1 s. The no-op jobs are cancelled afterwards so the cluster is left idle.
"""
from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

import submitit
import yaml

from .._io import atomic_write_json


class NoopCell(submitit.helpers.Checkpointable):
    """A cell body that only marks the cell done (and notes where it ran and which GPUs it saw)."""

    def __call__(self, cell_dir: str) -> dict:
        res = {"noop": True, "host": os.uname().nodename, "pid": os.getpid(), "start": time.time(),
               "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}
        atomic_write_json(Path(cell_dir) / "result.json", res)
        return res


def bench(cells: int = 1000, executor: str = "slurm", keep: bool = False) -> dict:
    from ..sweep import open_sweep, status, submit
    from ..sweep.api import read_json

    with tempfile.TemporaryDirectory(prefix="suite-bench-sweep-", dir=os.environ.get("SUITE_BENCH_DIR")) as tmp:
        grid = Path(tmp) / "bench.yaml"
        grid.write_text(yaml.safe_dump({
            "name": "bench-sweep",
            "resources": {"timeout_min": 5, "cpus_per_task": 1, "mem_gb": 0.5, "array_parallelism": 64},
            "cells": {"many": {"axes": {"train.seed": list(range(cells))},
                               "set": {"student": "tiny-0.1M", "train": {"tokens": 1000}}}}}))
        t0 = time.perf_counter()
        sw = open_sweep(grid, runs=Path(tmp) / "runs")
        t_expand = time.perf_counter() - t0
        out = submit(sw, executor=executor, progress=False, job_factory=NoopCell)
        t_submit = time.perf_counter() - t0
        t1 = time.perf_counter()
        st = status(sw)
        t_status = time.perf_counter() - t1
        if executor == "slurm" and not keep:
            arrays = {str(j).split("_")[0] for j in out["jobs"].values()}
            subprocess.run(["scancel", *sorted(arrays)], check=False)
            _wait_gone(sorted(arrays))
        job_ids = {(read_json(sw.root / c.id / "job.json") or {}).get("job_id") for c in sw.grid.cells}
    return {"cells": len(sw.grid.cells), "executor": executor, "expand_seconds": round(t_expand, 3),
            "submit_seconds": round(t_submit, 3), "status_seconds": round(t_status, 3),
            "jobs": len(job_ids - {None}), "status_counts": st["counts"],
            "goal": "submit_seconds < 10 and status_seconds < 1 (1000 cells)",
            "goal_met": t_submit < 10 and t_status < 1}


def _wait_gone(arrays: list[str], timeout: float = 60.0) -> None:
    """Wait until the cancelled arrays leave squeue: a job stays a few seconds in CG (completing)
    while slurmd reaps it, and the temporary run folder must outlive every job that may write into it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # all jobs, filtered here: `squeue -j` fails on ids the controller has already purged
        out = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True)
        if out.returncode == 0 and not any(j.split("_")[0] in arrays for j in out.stdout.split()):
            return
        time.sleep(0.5)
