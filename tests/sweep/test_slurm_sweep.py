"""The sweep engine on the real one-node Slurm cluster (CI starts it; see scripts/local-slurm.sh)."""
import json
import subprocess
import time

import pytest
import torch
import yaml

from slurm_helpers import all_ended, wait, weights
from suite.sweep import open_sweep, submit

pytestmark = pytest.mark.slurm


def write_grid(tmp_path, name, cells, **res):
    raw = {"name": name,
           "defaults": {"data": {"language": "synthetic-small", "seq_len": 16, "heldout_examples": 4},
                        "train": {"batch_size": 4, "checkpoint_interval": 2, "eval_interval": 1000}},
           "resources": {"timeout_min": 5, "cpus_per_task": 1, "mem_gb": 2, **res},
           "cells": cells}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_teacher_and_two_students_through_arrays_in_order(tmp_path):
    path = write_grid(tmp_path, "order", {
        "teacher": {"set": {"student": "tiny-0.1M", "train": {"tokens": 1280}}},
        "students": {"axes": {"train.tokens": [320, 640]},
                     "set": {"student": "tiny-0.1M", "method": "kd", "teacher": "@teacher"}}})
    sw = open_sweep(path, runs=tmp_path / "runs")
    out = submit(sw, executor="slurm", progress=False)
    teacher = sw.grid.cells[0]
    students = [c for c in sw.grid.cells if c.teacher_id]
    jobs = out["jobs"]
    assert len({jobs[s.id].split("_")[0] for s in students}) == 1  # the two students: one array
    st = wait(sw, all_ended)
    assert st["counts"]["done"] == 3, st
    t_end = (sw.root / teacher.id / "result.json").stat().st_mtime
    for s in students:
        start = json.loads((sw.root / s.id / "attempts.json").read_text())["starts"][0]
        assert start >= t_end, "a student started before its teacher finished"
        assert json.loads((sw.root / s.id / "job.json").read_text())["dependency"] == jobs[teacher.id]
    # resubmitting a finished grid submits nothing
    assert submit(open_sweep(path, runs=tmp_path / "runs"), executor="slurm", progress=False)["submitted"] == []


def _long_cell(tokens=150_000):
    # 150,000 tokens / (4 × 16) = 2,344 steps of tiny-0.1M, ~25 s on 2 cores: longer than Slurm's kill of a
    # requeued job (SIGTERM, which submitit ignores, then SIGKILL after KillWait = 5 s); checkpoint every 20 steps
    return {"long": {"set": {"student": "tiny-0.1M", "train": {"tokens": tokens, "checkpoint_interval": 20}}}}


@pytest.fixture(scope="module")
def long_ref(tmp_path_factory):
    """The long cell trained without interruption (inline), to compare interrupted runs against."""
    tmp = tmp_path_factory.mktemp("long")
    path = write_grid(tmp, "long", _long_cell())
    ref = open_sweep(path, runs=tmp / "ref")
    submit(ref, executor="inline", progress=False)
    return path, ref.root / ref.grid.cells[0].id


def _interrupt_and_compare(long_ref, tmp_path, how):
    path, ref_dir = long_ref
    sw = open_sweep(path, runs=tmp_path / "runs")
    job_id = submit(sw, executor="slurm", progress=False)["jobs"][sw.grid.cells[0].id]
    cell_dir = sw.root / sw.grid.cells[0].id
    deadline = time.time() + 120
    while not list((cell_dir / "checkpoints").glob("step_*/state.json")) and time.time() < deadline:
        time.sleep(0.2)
    assert not (cell_dir / "result.json").exists(), "finished before the interruption; make the cell longer"
    subprocess.run(how(job_id), check=True)
    st = wait(sw, all_ended, timeout=300)
    assert st["counts"]["done"] == 1, st
    assert json.loads((cell_dir / "attempts.json").read_text())["attempt"] >= 2
    a, b = weights(ref_dir), weights(cell_dir)
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_scontrol_requeue_resumes_from_checkpoint_and_matches_uninterrupted(long_ref, tmp_path):
    _interrupt_and_compare(long_ref, tmp_path, lambda job_id: ["scontrol", "requeue", job_id])


def test_timeout_checkpoints_requeues_and_finishes(tmp_path):
    # training longer than the 1-minute limit even on an idle machine (800k tokens = 12,500 steps, ~75 s idle;
    # 400k once finished inside one attempt on an idle CI machine), so no attempt can finish before the limit;
    # USR2 comes 20 s before it (Slurm's timer may send it up to a minute early): each attempt checkpoints at
    # the next step and is requeued, until the tokens are done (~6 attempts when the cores are shared)
    path = write_grid(tmp_path, "timeout", _long_cell(800_000), timeout_min=1, signal_delay_s=20, max_requeue=30)
    sw = open_sweep(path, runs=tmp_path / "runs")
    submit(sw, executor="slurm", progress=False)
    st = wait(sw, all_ended, timeout=840, poll=2.0)  # inside pytest-timeout's 900 s
    cell_dir = sw.root / sw.grid.cells[0].id
    assert st["counts"]["done"] == 1, st
    assert json.loads((cell_dir / "attempts.json").read_text())["attempt"] >= 2
    assert json.loads((cell_dir / "result.json").read_text())["D_S"] == 800_000


def test_failing_cell_records_error_and_retry_reruns_only_it(tmp_path):
    path = write_grid(tmp_path, "fail", {
        "ok": {"set": {"student": "tiny-0.1M", "train": {"tokens": 256}}},
        "broken": {"set": {"student": str(tmp_path / "no-such-model"), "train": {"tokens": 256}}}})
    sw = open_sweep(path, runs=tmp_path / "runs")
    submit(sw, executor="slurm", progress=False)
    st = wait(sw, all_ended)
    assert st["counts"] == {"pending": 0, "running": 0, "done": 1, "failed": 1, "corrupt": 0}, st
    broken = next(c for c in sw.grid.cells if c.group == "broken")
    assert json.loads((sw.root / broken.id / "error.json").read_text())["type"] == "FileNotFoundError"
    again = submit(sw, executor="slurm", retry_failed=True, progress=False)
    assert again["submitted"] == [broken.id]
    wait(sw, all_ended)
    assert json.loads((sw.root / broken.id / "error.json").read_text())["attempt"] == 2


def test_two_task_cell_runs_ddp_over_gloo(tmp_path):
    path = write_grid(tmp_path, "ddp", {"c": {"set": {"student": "tiny-0.1M", "train": {"tokens": 512}}}},
                      tasks_per_node=2)
    ref = open_sweep(path, runs=tmp_path / "ref")
    submit(ref, executor="inline", progress=False)
    sw = open_sweep(path, runs=tmp_path / "runs")
    submit(sw, executor="slurm", progress=False)
    st = wait(sw, all_ended)
    assert st["counts"]["done"] == 1, st
    cid = sw.grid.cells[0].id
    res = json.loads((sw.root / cid / "result.json").read_text())
    assert res["world_size"] == 2
    a, b = weights(ref.root / cid), weights(sw.root / cid)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)


def test_preemption_signal_checkpoints_requeues_and_matches_uninterrupted(long_ref, tmp_path):
    """USR2 (what Slurm sends on preemption): the cell stops at the next step, checkpoints, requeues."""
    _interrupt_and_compare(long_ref, tmp_path, lambda job_id: ["scancel", "--signal=USR2", job_id])


def test_cancel_stops_queued_and_running_cells(tmp_path):
    from suite.sweep import cancel

    path = write_grid(tmp_path, "cancel", {"a": {"axes": {"train.seed": [0, 1, 2]},
                                                 "set": {"student": "tiny-0.1M", "train": {"tokens": 400_000}}}},
                      cpus_per_task=2)  # one at a time on the 2-CPU node: one runs, two wait
    sw = open_sweep(path, runs=tmp_path / "runs")
    submit(sw, executor="slurm", progress=False)
    wait(sw, lambda st: st["counts"]["running"] >= 1, timeout=60, poll=0.5)
    assert len(cancel(sw)) == 3
    st = wait(sw, all_ended, timeout=60)
    assert st["counts"]["failed"] == 3 and all("cancel" in c["detail"] for c in st["cells"]), st
