"""Continual-learning sequences as sweeps: expansion into chained stage cells, ids, and resume mid-task."""
import json
import shutil

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from suite.config import ConfigError, config_from_dict
from suite.sweep import expand, load_grid, open_sweep, run_cell, status, submit
from suite.train import Interrupted

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


def test_adding_the_continual_section_renames_no_existing_cell():
    assert config_from_dict({}).cell_id == "bd5dd7abaeab"  # the default cell's id before the section existed
    committed = pd.read_parquet(ROOT / "reports" / "quickstart" / "results.parquet")
    assert sorted(c.id for c in load_grid(ROOT / "sweeps" / "quickstart.yaml").cells) == sorted(committed["cell_id"])


def _grid(**cont):
    return {
        "name": "cl",
        "defaults": {"student": "tiny-0.01M",
                     "data": {"kind": "synthetic", "language": "synthetic-small", "seq_len": 16, "heldout_examples": 8},
                     "train": {"batch_size": 4, "eval_batch_size": 8, "log_interval": 1, "checkpoint_interval": 2}},
        "resources": {"timeout_min": 5},
        "cells": {
            "base": {"set": {"method": "supervised", "optim": {"lr": 1.0e-2}, "train": {"tokens": 3000}}},
            "cl": {"axes": {"method": ["seq-ft", {"name": "gere", "weight": "dy"}]},
                   "set": {"optim": {"lr": 3.0e-3, "warmup": 0},
                           "continual": {"tasks": "syn-1,syn-2,syn-3", "init": "@base", "train_limit": 12,
                                         "test_limit": 8, "replay": 6, "replay_len": 12, **cont}}},
        },
    }


def test_a_sequence_expands_into_chained_stage_cells():
    g = expand(_grid(), "g.yaml")
    base = next(c for c in g.cells if c.group == "base")
    for method in ("seq-ft", "gere"):
        chain = [c for c in g.cells if c.config.method.name == method]
        assert [c.config.continual.stage for c in chain] == [1, 2, 3]
        assert [c.teacher_id for c in chain] == [base.id, chain[0].id, chain[1].id]
        assert [c.config.continual.init for c in chain] == [f"cell:{base.id}", f"cell:{chain[0].id}",
                                                            f"cell:{chain[1].id}"]
        assert {c.config.continual.base for c in chain} == {f"cell:{base.id}"}
        assert chain[1].name == {"seq-ft": "seq-ft", "gere": "gere-wdy"}[method] + "-k2-syn-2-S0.01M-s0"
        assert all(c.config.teacher is None for c in chain)
    ids = [c.id for c in g.cells]
    assert ids.index(base.id) == 0 and len(set(ids)) == 7
    # a stage's identity follows everything before it in the chain
    other = _grid()
    other["cells"]["base"]["set"]["train"]["tokens"] = 4000
    assert not {c.id for c in expand(other, "g.yaml").cells} & set(ids)


@pytest.mark.parametrize("patch,msg", [
    ({"tasks": "syn-1,nope"}, "continual.data_dir"),
    ({"tasks": "olora-lon"}, "did you mean 'olora-long'"),
    ({"init": "@bsae"}, "continual.init '@bsae' is not a cell group"),
    ({"replay_per_batch": 4}, "replay_per_batch"),
    ({"max_target_len": 0}, r"continual.max_target_len: must be >= 1 \(got 0\)"),
])
def test_bad_sequences_name_the_key(patch, msg):
    with pytest.raises(ConfigError, match=msg):
        expand(_grid(**patch), "g.yaml")


def test_continual_keys_need_a_continual_method():
    with pytest.raises(ConfigError, match="valid: .*gere"):
        config_from_dict({"method": "supervised", "continual": {"tasks": "syn-1", "stage": 1, "init": "x"}})
    with pytest.raises(ConfigError, match="set continual.tasks"):
        config_from_dict({"method": "gere"})


def _weights(d):
    return load_file(str(d / "model" / "model.safetensors"))


def test_a_sequence_interrupted_mid_task_resumes_at_the_same_task_and_step(tmp_path):
    """Base + stage 1 finish; stage 2 (LoRA + GeRe) stops after step 2; resubmitting finishes it from there,
    equal to a run of stage 2 that was never interrupted, and then runs stage 3."""
    raw = _grid(lora=4, replay_per_batch=1)
    raw["cells"]["cl"]["axes"]["method"] = [{"name": "gere", "weight": "dy"}]
    grid = tmp_path / "g.yaml"
    grid.write_text(json.dumps(raw))
    sw = open_sweep(grid, runs=tmp_path / "runs")
    base, s1, s2, s3 = sw.grid.cells
    dirs = sw.dirs()
    submit(sw, executor="inline", progress=False)  # writes every cell's layout; all finish
    reference = {k: v.clone() for k, v in _weights(dirs[s2.id]).items()}
    steps_total = json.loads((dirs[s2.id] / "result.json").read_text())["steps"]
    assert steps_total > 3
    for cell in (s2, s3):  # start stages 2 and 3 again from nothing
        shutil.rmtree(dirs[cell.id])
    submit(sw, executor="inline", progress=False, job_factory=_Nothing)  # layout back, nothing trained
    with pytest.raises(Interrupted):
        run_cell(dirs[s2.id], should_stop=lambda step: step == 2)
    st = {r["id"]: r["state"] for r in status(sw)["cells"]}
    assert st[base.id] == st[s1.id] == "done" and st[s2.id] != "done" and st[s3.id] != "done"
    assert (dirs[s2.id] / "checkpoints" / "step_00000002" / "state.json").exists()
    submit(sw, executor="inline", progress=False)  # resubmit: stage 2 resumes at step 2, then stage 3 runs
    recs = [json.loads(ln) for ln in (dirs[s2.id] / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in recs if r["kind"] == "train"]
    assert steps == list(range(1, steps_total + 1))  # each step logged once: nothing retrained, nothing skipped
    attempts = json.loads((dirs[s2.id] / "attempts.json").read_text())
    assert attempts["attempt"] == 2
    got = _weights(dirs[s2.id])
    assert not any("lora" in k for k in got)  # LoRA merged into the saved model
    for k in reference:
        assert torch.equal(reference[k], got[k]), k
    res = json.loads((dirs[s3.id] / "result.json").read_text())["continual"]
    assert res["stage"] == 3 and set(res["accuracy"]) == {"syn-1", "syn-2", "syn-3"}
    assert [h["stage"] for h in res["history"]] == [0, 1, 2, 3] and res["trainable_params"] > 0


class _Nothing:
    def __call__(self, cell_dir):
        return None
