"""The sweep engine on the real one-node Slurm cluster (CI starts it; see scripts/local-slurm.sh)."""
import json
import subprocess
import time

import pytest
import torch
import yaml
from safetensors.torch import load_file

from suite.sweep import open_sweep, status, submit

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


def wait(sw, until, timeout=240, poll=1.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        st = status(sw)
        if until(st):
            return st
        time.sleep(poll)
    subprocess.run(["squeue"], check=False)
    raise AssertionError(f"timed out waiting; status: {json.dumps(st['cells'], indent=1)}")


def all_ended(st):
    return st["counts"]["pending"] == 0 and st["counts"]["running"] == 0


def weights(d):
    return load_file(str(d / "model" / "model.safetensors"))


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


def _long_cell(tokens=24_000):
    # 24,000 tokens / (4 × 16) = 375 steps of tiny-0.1M (~20 s): long enough to interrupt; checkpoints every 2 steps
    return {"long": {"set": {"student": "tiny-0.1M", "train": {"tokens": tokens}}}}


def test_scontrol_requeue_resumes_from_checkpoint_and_matches_uninterrupted(tmp_path):
    path = write_grid(tmp_path, "requeue", _long_cell())
    ref = open_sweep(path, runs=tmp_path / "ref")
    submit(ref, executor="inline", progress=False)
    sw = open_sweep(path, runs=tmp_path / "runs")
    job_id = submit(sw, executor="slurm", progress=False)["jobs"][sw.grid.cells[0].id]
    cell_dir = sw.root / sw.grid.cells[0].id
    deadline = time.time() + 120
    while not list((cell_dir / "checkpoints").glob("step_*/state.json")) and time.time() < deadline:
        time.sleep(0.2)
    assert not (cell_dir / "result.json").exists(), "finished before the requeue; make the cell longer"
    subprocess.run(["scontrol", "requeue", job_id], check=True)
    st = wait(sw, all_ended, timeout=300)
    assert st["counts"]["done"] == 1, st
    attempts = json.loads((cell_dir / "attempts.json").read_text())
    assert attempts["attempt"] >= 2
    a, b = weights(ref.root / sw.grid.cells[0].id), weights(cell_dir)
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_timeout_checkpoints_requeues_and_finishes(tmp_path):
    # 1-minute limit, USR2 30 s before it (Slurm may signal up to a minute early): every attempt gets
    # cut short, checkpoints at the next step, and is requeued until the 20,000 tokens are done
    path = write_grid(tmp_path, "timeout", _long_cell(tokens=20_000), timeout_min=1, signal_delay_s=30,
                      max_requeue=20)
    sw = open_sweep(path, runs=tmp_path / "runs")
    submit(sw, executor="slurm", progress=False)
    st = wait(sw, all_ended, timeout=540, poll=2.0)
    cell_dir = sw.root / sw.grid.cells[0].id
    assert st["counts"]["done"] == 1, st
    assert json.loads((cell_dir / "attempts.json").read_text())["attempt"] >= 2
    assert json.loads((cell_dir / "result.json").read_text())["D_S"] == 20_000


def test_failing_cell_records_error_and_retry_reruns_only_it(tmp_path):
    path = write_grid(tmp_path, "fail", {
        "ok": {"set": {"student": "tiny-0.1M", "train": {"tokens": 256}}},
        "broken": {"set": {"student": str(tmp_path / "no-such-model"), "train": {"tokens": 256}}}})
    sw = open_sweep(path, runs=tmp_path / "runs")
    submit(sw, executor="slurm", progress=False)
    st = wait(sw, all_ended)
    assert st["counts"] == {"pending": 0, "running": 0, "done": 1, "failed": 1}, st
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
