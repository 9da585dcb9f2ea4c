"""Smoke test: a two-element submitit job array runs on a real Slurm cluster.

Needs a cluster (`bash scripts/local-slurm.sh up`); skipped without one unless
SUITE_REQUIRE_SLURM=1 (see tests/conftest.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

submitit = pytest.importorskip("submitit")
import cloudpickle  # noqa: E402  (submitit dependency)

pytestmark = pytest.mark.slurm

WAIT_S = 120

# Pickle this module's functions by value: the job's python cannot necessarily
# import `test_slurm_smoke` (pytest puts tests/ on sys.path only in-process).
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def square_in_slurm(x: int) -> dict:
    """Runs inside the Slurm job; returns evidence of where it ran."""
    return {
        "value": x * x,
        "array_job_id": os.environ["SLURM_ARRAY_JOB_ID"],
        "array_task_id": os.environ["SLURM_ARRAY_TASK_ID"],
        "job_id": os.environ["SLURM_JOB_ID"],
        "python": sys.executable,
    }


def _logs(job) -> str:
    return f"--- {job.job_id} stdout ---\n{job.stdout()}\n--- {job.job_id} stderr ---\n{job.stderr()}"


def test_submitit_job_array_runs_on_slurm(slurm_cluster: str, tmp_path) -> None:
    executor = submitit.AutoExecutor(folder=tmp_path / "submitit", cluster="slurm")
    executor.update_parameters(
        name="suite-slurm-smoke",
        timeout_min=5,
        cpus_per_task=1,
        mem_gb=0.25,
        slurm_partition=slurm_cluster,
        slurm_array_parallelism=2,
    )
    t0 = time.monotonic()
    jobs = executor.map_array(square_in_slurm, [3, 4])
    assert len(jobs) == 2

    # Bounded wait (job.result() alone would block forever if a job died
    # without writing its result file: there is no sacct on the test cluster).
    deadline = t0 + WAIT_S
    while not all(job.done() for job in jobs):
        if time.monotonic() > deadline:
            subprocess.run(["scancel", *[job.job_id for job in jobs]], check=False)
            queue = subprocess.run(["squeue", "-a"], capture_output=True, text=True, check=False).stdout
            pytest.fail(
                f"job array not finished after {WAIT_S}s\nsqueue:\n{queue}\n"
                + "\n".join(_logs(job) for job in jobs)
            )
        time.sleep(0.5)

    results = []
    for job in jobs:
        try:
            results.append(job.result())
        except Exception as exc:  # noqa: BLE001 -- show the job's logs
            pytest.fail(f"job {job.job_id} failed: {exc}\n{_logs(job)}")
    elapsed = time.monotonic() - t0

    array_ids = {job.job_id.split("_")[0] for job in jobs}
    assert len(array_ids) == 1, [job.job_id for job in jobs]
    (array_id,) = array_ids
    assert [job.job_id for job in jobs] == [f"{array_id}_0", f"{array_id}_1"]

    assert [r["value"] for r in results] == [9, 16]
    assert [r["array_task_id"] for r in results] == ["0", "1"]
    assert {r["array_job_id"] for r in results} == {array_id}
    assert len({r["job_id"] for r in results}) == 2  # each array task is its own Slurm job
    assert all(r["python"] == sys.executable for r in results)
    print(f"slurm job array {array_id} finished in {elapsed:.1f}s")
