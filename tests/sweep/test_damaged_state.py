"""Damaged run state: a truncated or garbled state file is its own state (`corrupt`), never 'done' or lost;
collect says what it left out; a resubmit sets the file aside and reruns or resumes the cell."""
from __future__ import annotations

import json
import os
import stat

import pandas as pd
import pytest
import yaml

from suite.cli import main
from suite.sweep import collect, open_sweep, status, submit
from suite.sweep.api import format_status


def _grid(tmp_path, name="dmg"):
    raw = {"name": name,
           "defaults": {"data": {"language": "synthetic-small", "seq_len": 16, "heldout_examples": 4},
                        "train": {"batch_size": 4, "checkpoint_interval": 2}},
           "cells": {"a": {"axes": {"train.seed": [0, 1]},
                           "set": {"student": "tiny-0.007M", "train": {"tokens": 256}}}}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture
def done_sweep(tmp_path):
    sw = open_sweep(_grid(tmp_path), runs=tmp_path / "runs")
    submit(sw, executor="inline", progress=False)
    assert status(sw)["counts"]["done"] == 2
    return sw


def _cut(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_truncated_result_is_corrupt_listed_by_collect_and_rerun_by_resubmit(done_sweep, capsys):
    sw = done_sweep
    a, b = sw.grid.cells
    loss = json.loads((sw.root / a.id / "result.json").read_text())["loss"]
    _cut(sw.root / a.id / "result.json")
    st = status(sw)
    row = next(r for r in st["cells"] if r["id"] == a.id)
    assert row["state"] == "corrupt" and "result.json" in row["detail"] and str(sw.root / a.id) in row["detail"]
    assert st["counts"]["corrupt"] == 1 and st["counts"]["done"] == 1
    # status from the directory alone says the same (no config is rebuilt)
    assert next(r for r in status(sw.root)["cells"] if r["id"] == a.id)["state"] == "corrupt"

    capsys.readouterr()
    df = pd.read_parquet(collect(sw))
    err = capsys.readouterr().err
    assert list(df["cell_id"]) == [b.id]
    assert "left out" in err and a.name in err and "result.json" in err

    out = submit(sw, executor="inline", progress=False)
    err = capsys.readouterr().err
    assert out["submitted"] == [a.id] and "moved to result.json.corrupt" in err
    assert (sw.root / a.id / "result.json.corrupt").exists()
    res = json.loads((sw.root / a.id / "result.json").read_text())
    assert res["loss"] == pytest.approx(loss, abs=1e-6)  # resumed from its final checkpoint, not retrained anew
    assert json.loads((sw.root / a.id / "attempts.json").read_text())["attempt"] == 2
    assert status(sw)["counts"]["done"] == 2


@pytest.mark.parametrize("name", ["job.json", "error.json"])
def test_damaged_job_or_error_file_is_corrupt_then_rerun(tmp_path, name, capsys):
    sw = open_sweep(_grid(tmp_path), runs=tmp_path / "runs")
    submit(sw, executor="inline", progress=False)
    a = sw.grid.cells[0]
    (sw.root / a.id / "result.json").unlink()   # as if the cell had been killed before its result
    (sw.root / a.id / name).write_text('{"executor": "loc')
    row = next(r for r in status(sw)["cells"] if r["id"] == a.id)
    assert row["state"] == "corrupt" and name in row["detail"]
    assert submit(sw, executor="inline", progress=False)["submitted"] == [a.id]
    assert status(sw)["counts"] == {"pending": 0, "running": 0, "done": 2, "failed": 0, "corrupt": 0}


def test_damaged_cell_json_and_sweep_json_are_named_and_rewritten_from_the_grid(done_sweep, capsys):
    sw = done_sweep
    a = sw.grid.cells[0]
    (sw.root / a.id / "cell.json").write_text("")
    assert main(["sweep", "status", str(sw.root)]) == 0   # status still works, the cell is corrupt
    assert "corrupt" in capsys.readouterr().out
    assert main(["sweep", "collect", str(sw.root)]) == 2  # rebuilding the sweep from its files needs cell.json
    err = capsys.readouterr().err
    assert f"{sw.root / a.id / 'cell.json'}: empty" in err and "grid YAML" in err and "Traceback" not in err
    (sw.root / "sweep.json").write_text('{"name": "dmg", "cells": [')
    assert main(["sweep", "status", str(sw.root)]) == 2
    err = capsys.readouterr().err
    assert f"{sw.root / 'sweep.json'}: truncated or not JSON" in err and err.count("\n") == 1
    # a resubmit from the grid YAML rewrites both and reruns nothing
    again = submit(open_sweep(sw.grid.path, runs=sw.root.parent), executor="inline", progress=False)
    assert again["submitted"] == [] and again["skipped_done"] == 2
    assert status(sw.root)["counts"]["done"] == 2


def test_killed_cell_resumes_on_a_plain_resubmit_and_a_failed_one_names_retry_failed(done_sweep, capsys):
    sw = done_sweep
    a, b = sw.grid.cells
    for c, killed in ((a, True), (b, False)):
        (sw.root / c.id / "result.json").unlink()
        err = {"type": "UncompletedJobError" if killed else "ValueError", "attempt": 1, "traceback": "",
               "message": "Job 123 has not produced any output\n(state: KILLED)" if killed else "bad\nvalue"}
        if killed:
            err["killed"] = True
        (sw.root / c.id / "error.json").write_text(json.dumps(err))
    table = format_status(status(sw))
    assert len(table.splitlines()) == 3 + 2  # header, blank, column names, one row per cell: no broken rows
    assert "a resubmit resumes it" in table
    capsys.readouterr()
    out = submit(sw, executor="inline", progress=False)
    said = capsys.readouterr().out
    assert out["submitted"] == [a.id] and out["failed_kept"] == [b.id]
    assert "1 failed" in said and "--retry-failed" in said and b.name in said


def test_run_files_follow_the_umask_for_a_group_shared_directory(tmp_path):
    old = os.umask(0o002)
    try:
        sw = open_sweep(_grid(tmp_path), runs=tmp_path / "runs")
        submit(sw, executor="inline", progress=False)
        collect(sw)
    finally:
        os.umask(old)
    d = sw.root / sw.grid.cells[0].id
    ckpt = next((d / "checkpoints").iterdir())
    for p in (sw.root / "sweep.json", d / "cell.json", d / "job.json", d / "result.json", d / "metrics.jsonl",
              sw.root / "results.parquet", ckpt / "model.safetensors", d / "model" / "config.json"):
        assert stat.S_IMODE(p.stat().st_mode) == 0o664, (p, oct(p.stat().st_mode))
    for p in (sw.root, d, d / "checkpoints", ckpt, d / "model"):
        assert stat.S_IMODE(p.stat().st_mode) == 0o775, (p, oct(p.stat().st_mode))
