"""GenRecal stages as cells of the training loop, on tiny VLMs with different tokenizers, vocabularies, widths and
families (teacher tiny-llava-m with a BPE of 330 tokens, student tiny-qwen2vl with one of 290):

* a grid (teacher + `vlm.stages: [1, 2, 3]`) run by the sweep engine finishes every cell in order, and the
  local executor trains a stage in a process of its own to the same weights;
* each stage interrupted after its first step and run again ends with the student and Recalibrator weights
  of the uninterrupted chain;
* what each stage trains and leaves behind (model/ holds the student alone, <cell>/recalibrator after stages
  1 and 2, stage 1 leaves the student as built, stage 2 starts from stage 1's Recalibrator), result.json.

Sizes: 8 items, batch 4 (2 steps a stage); the whole file runs in well under a minute on 2 CPU cores.
"""
from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from suite.config import config_from_dict
from suite.sweep import open_sweep, run_cell, submit
from suite.train import Interrupted, train

STUDENT, TEACHER = "tiny-qwen2vl", "tiny-llava-m"
BASE = {
    "vlm": {"train_items": 8, "heldout_items": 2},   # 8 items / batch 4 = 2 steps per stage
    "train": {"batch_size": 4, "eval_batch_size": 4, "log_interval": 1, "eval_interval": 100,
              "checkpoint_interval": 100},
    "optim": {"lr": 1.0e-3, "warmup": 0},
}


def _grid_yaml(tmp_path, name="gr"):
    raw = {
        "name": name,
        "defaults": BASE,
        "resources": {"timeout_min": 5, "cpus_per_task": 2, "mem_gb": 4, "max_concurrent": 1},
        "cells": {
            "teacher": {"set": {"student": TEACHER, "method": "supervised", "data": {"tokenizer_vocab_size": 330},
                                "vlm": {"train_items": 16}}},
            "gr": {"set": {"student": STUDENT, "teacher": "@teacher", "method": {"name": "genrecal"},
                           "data": {"tokenizer_vocab_size": 290}, "vlm": {"stages": [1, 2, 3]}}},
        },
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(json.dumps(raw))
    return path


def _cells(sw):
    teacher = next(c for c in sw.grid.cells if c.group == "teacher")
    stages = sorted((c for c in sw.grid.cells if c.group == "gr"), key=lambda c: c.config.method.params["stage"])
    return teacher, stages


def _weights(path):
    return load_file(str(path / "model.safetensors"))


def _assert_same(a: dict, b: dict, what: str):
    assert a.keys() == b.keys(), what
    for k in a:
        assert torch.equal(a[k], b[k]), f"{what}: {k}"


def _differs(a: dict, b: dict) -> bool:
    return a.keys() != b.keys() or any(not torch.equal(a[k], b[k]) for k in a)


def _done(sw) -> dict[str, bool]:
    """Which cells finished (result.json, no error.json); `status` would also ask squeue."""
    return {c.id: (sw.root / c.id / "result.json").exists() and not (sw.root / c.id / "error.json").exists()
            for c in sw.grid.cells}


def _layout(tmp_path, name, copy_from, cells):
    """A second sweep of the same grid: its layout, with `cells` copied finished from sweep `copy_from`."""
    sw = open_sweep(_grid_yaml(tmp_path, name), runs=tmp_path / "runs")
    assert [c.id for c in sw.grid.cells] == [c.id for c in copy_from.grid.cells]
    submit(sw, executor="inline", progress=False, job_factory=_Nothing)  # the layout, nothing trained
    for c in cells:
        shutil.rmtree(sw.root / c.id)
        shutil.copytree(copy_from.root / c.id, sw.root / c.id)
    return sw


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """The teacher and the uninterrupted chain 1 -> 2 -> 3, run by the sweep engine in this process."""
    tmp = tmp_path_factory.mktemp("genrecal")
    sw = open_sweep(_grid_yaml(tmp), runs=tmp / "runs")
    out = submit(sw, executor="inline", progress=False)
    assert len(out["submitted"]) == 4
    return sw


def test_the_sweep_runs_the_teacher_then_every_stage(toy):
    done = _done(toy)
    errors = {cid: (toy.root / cid / "error.json").read_text() for cid in done
              if (toy.root / cid / "error.json").exists()}
    assert all(done.values()), errors
    teacher, stages = _cells(toy)
    assert [c.id for c in toy.grid.cells][0] == teacher.id  # teacher first
    assert [c.teacher_id for c in stages] == [teacher.id, stages[0].id, stages[1].id]
    for c in stages:
        res = json.loads((toy.root / c.id / "result.json").read_text())
        assert res["cell_id"] == c.id and res["teacher"] == f"cell:{teacher.id}"
        assert res["config"]["method"]["params"]["stage"] == c.config.method.params["stage"]


def test_the_local_executor_runs_a_stage_in_its_own_process_to_the_same_weights(toy, tmp_path):
    """Teacher, stages 1 and 2 finished (copied); the local executor resolves stage 3's cell references in a
    process of its own and trains it to the weights the in-process run got."""
    teacher, (s1, s2, s3) = _cells(toy)
    sw = _layout(tmp_path, "gr", toy, [teacher, s1, s2])
    out = submit(sw, executor="local", progress=False)
    assert out["submitted"] == [s3.id] and out["skipped_done"] == 3
    done = _done(sw)
    assert all(done.values()), (sw.root / s3.id / "error.json").read_text() if not done[s3.id] else ""
    assert json.loads((sw.root / s3.id / "job.json").read_text())["executor"] == "local"
    _assert_same(_weights(sw.root / s3.id / "model"), _weights(toy.root / s3.id / "model"), "stage 3, local")


def test_each_stage_leaves_what_the_next_one_needs(toy):
    teacher, (s1, s2, s3) = _cells(toy)
    d = toy.dirs()
    t_res = json.loads((d[teacher.id] / "result.json").read_text())
    for k, c in enumerate((s1, s2, s3), 1):
        res = json.loads((d[c.id] / "result.json").read_text())
        v = res["vlm"]
        assert v["stage"] == k and v["method"] == "genrecal"
        assert v["student_family"] == "qwen2_vl" and v["teacher_family"] == ("llava" if k < 3 else None)
        assert v["train_items"] == 8 and v["heldout_items"] == 2
        # App. F by default: stage 1 has the teacher write answers for the 10 short ones, the next stages read them
        assert v["answers"] == "teacher" and v["short_items"] == 10 and v["generated"] == (k == 1)
        assert v["cache"].startswith(str(toy.root / ".teacher_answers"))
        assert res["steps"] == 2 and res["N_S"] > 0 and res["D_S"] > 0
        # FLOPs (checked by hand in test_flops.py): more than 2 N_S per token when only the Recalibrator trains
        # (stage 1), 6 N_S otherwise, by the attention, head and vision-tower terms; the teacher over its own tokens
        f = res["flops"]
        assert f["student_tokens"] == res["D_S"]
        assert (2 if k == 1 else 6) * res["N_S"] * res["D_S"] < f["student_train"] < 2 * (2 if k == 1 else 6) * \
            res["N_S"] * res["D_S"]
        assert (f["teacher_logits"] > 2 * res["N_T"] * f["teacher_tokens"] > 0) if k < 3 else \
            f["teacher_logits"] == f["teacher_tokens"] == 0
        assert f["total"] == pytest.approx(sum(v for n, v in f.items() if n != "total" and "tokens" not in n),
                                           rel=1e-12)
        assert res["N_S"] != t_res["N_S"]  # a different width: a genuinely different model
        assert res["loss"] > 0 and res["model_shape"]["vocab_size"] != t_res["model_shape"]["vocab_size"]
        saved = _weights(d[c.id] / "model")
        assert not [n for n in saved if "recalibrator" in n or "proj_pre" in n or "proj_post" in n], k
        rec_dir = d[c.id] / "recalibrator"
        if k < 3:
            assert v["recalibrator_params"] == sum(x.numel() for x in _weights(rec_dir).values()) > 0
            assert v["trainable_params"] >= v["recalibrator_params"]
            meta = json.loads((rec_dir / "config.json").read_text())
            assert meta["stage"] == k and meta["d_student"] == 64 and meta["d_teacher"] == 128
            assert "heldout_main_ce" in v and "heldout_main_kl" in v
            assert res["N_T"] > 0
        else:
            assert not rec_dir.exists() and "recalibrator_params" not in v
            assert res["flops"]["teacher_logits"] == 0.0
    # stage 2 trains the student and changes its Recalibrator, stage 3 the student again (that stage 1 leaves
    # the student as it was built: the next test)
    w1, w2, w3 = (_weights(d[c.id] / "model") for c in (s1, s2, s3))
    assert _differs(w1, w2) and _differs(w2, w3)
    r1, r2 = (_weights(d[c.id] / "recalibrator") for c in (s1, s2))
    assert _differs(r1, r2)
    # stage 1's FLOPs: the student forward only; stage 2 trains its language model (3× its forward, + the head),
    # not its frozen vision tower (1×): between 2× and 3× stage 1's on the same tokens
    f1, f2 = (json.loads((d[c.id] / "result.json").read_text()) for c in (s1, s2))
    assert f1["D_S"] == f2["D_S"]
    assert 2 * f1["flops"]["student_train"] < f2["flops"]["student_train"] < 3 * f1["flops"]["student_train"]


def test_stage_1_keeps_the_initial_student_and_epochs_0_trains_nothing(toy, tmp_path):
    _, (s1, _, _) = _cells(toy)
    cfg = config_from_dict({**BASE, "student": STUDENT, "method": "supervised",
                            "data": {"tokenizer_vocab_size": 290}, "vlm": {**BASE["vlm"], "epochs": 0}})
    res = train(cfg, tmp_path, progress=False)
    assert res["steps"] == 0 and res["D_S"] == 0
    on_disk = json.loads((tmp_path / "result.json").read_text())
    assert on_disk["loss"] == res["loss"] > 0 and on_disk["vlm"]["stage"] == 0
    recs = [json.loads(ln) for ln in (tmp_path / "metrics.jsonl").read_text().splitlines() if ln]
    assert not [r for r in recs if r["kind"] == "train"]
    _assert_same(_weights(tmp_path / "model"), _weights(toy.dirs()[s1.id] / "model"), "stage 1 vs initial student")


def test_stage_2_starts_from_stage_1s_recalibrator(toy):
    from suite.vlm import open_vlm_stage
    from suite.methods import make_method
    from suite.sweep.runner import resolve_teacher

    _, (s1, s2, _) = _cells(toy)
    d = toy.dirs()
    cfg = s2.config
    assert cfg.vlm.recalibrator == f"cell:{s1.id}" and cfg.vlm.init == f"cell:{s1.id}"
    stage = open_vlm_stage(cfg, make_method("genrecal", dict(cfg.method.params)), d[s2.id], torch.device("cpu"),
                           None, resolve_teacher(cfg, d[s2.id]))
    _assert_same(stage.recalibrator.state_dict(), _weights(d[s1.id] / "recalibrator"),
                 "stage 2's starting Recalibrator")
    _assert_same(stage.student.model.state_dict(), _load_state(d[s1.id] / "model"), "stage 2's starting student")


def _load_state(path):
    from suite.models.vlm import load_vlm

    return load_vlm(str(path)).model.state_dict()


def test_a_fresh_recalibrator_follows_train_seed_whatever_ran_before(toy, tmp_path):
    """A stage whose student is loaded (vlm.init) but whose Recalibrator is new: its initial weights are a
    function of the config (train.seed), not of the process's random state before the cell."""
    from suite.vlm import open_vlm_stage
    from suite.methods import make_method

    teacher, (s1, _, _) = _cells(toy)
    d = toy.dirs()
    cfg = config_from_dict({**BASE, "student": STUDENT, "teacher": str(d[teacher.id] / "model"),
                            "method": {"name": "genrecal", "stage": 2}, "data": {"tokenizer_vocab_size": 290},
                            "vlm": {**BASE["vlm"], "init": str(d[s1.id] / "model")}})
    got = []
    for noise, seed in ((1, 0), (2, 0), (1, 1)):
        torch.manual_seed(noise)
        c = config_from_dict({**cfg.to_dict(), "train": {**cfg.to_dict()["train"], "seed": seed}})
        stage = open_vlm_stage(c, make_method("genrecal", dict(c.method.params)), tmp_path, torch.device("cpu"), None)
        got.append({k: v.clone() for k, v in stage.recalibrator.state_dict().items()})
    _assert_same(got[0], got[1], "fresh Recalibrator")
    assert _differs(got[0], got[2])  # another train.seed, another draw


def test_every_stage_interrupted_and_resumed_equals_the_uninterrupted_chain(toy, tmp_path):
    teacher, stages = _cells(toy)
    ref = toy.dirs()
    sw = _layout(tmp_path, "gr", toy, [teacher])
    dirs = sw.dirs()
    for c in stages:
        with pytest.raises(Interrupted):
            run_cell(dirs[c.id], should_stop=lambda step: step == 1)
        assert (dirs[c.id] / "checkpoints" / "step_00000001").is_dir()
        assert not (dirs[c.id] / "result.json").exists() and not (dirs[c.id] / "model").exists()
        run_cell(dirs[c.id])
        recs = [json.loads(ln) for ln in (dirs[c.id] / "metrics.jsonl").read_text().splitlines() if ln]
        assert [r["step"] for r in recs if r["kind"] == "train"] == [1, 2]  # step 2 once, step 1 not retrained
        k = c.config.method.params["stage"]
        _assert_same(_weights(dirs[c.id] / "model"), _weights(ref[c.id] / "model"), f"stage {k} student")
        if k < 3:
            _assert_same(_weights(dirs[c.id] / "recalibrator"), _weights(ref[c.id] / "recalibrator"),
                         f"stage {k} Recalibrator")
        a, b = (json.loads((x[c.id] / "result.json").read_text()) for x in (dirs, ref))
        assert a["loss"] == b["loss"] and a["D_S"] == b["D_S"]
    assert all(_done(sw).values())


def test_kd_needs_a_teacher_with_the_students_tokenizer(toy, tmp_path):
    teacher, _ = _cells(toy)
    cfg = config_from_dict({**BASE, "student": STUDENT, "teacher": str(toy.dirs()[teacher.id] / "model"),
                            "method": "kd", "data": {"tokenizer_vocab_size": 290}})
    with pytest.raises(ValueError, match="share a tokenizer"):
        train(cfg, tmp_path, progress=False)


class _Nothing:
    def __call__(self, cell_dir):
        return None


@pytest.mark.parametrize("method", [{"name": "genrecal", "stage": 2}, {"name": "supervised"}])
def test_micro_batching_gives_the_step_the_same_gradient(toy, tmp_path, method):
    """Each micro-batch's terms are divided by the whole step's answer-token counts, so accumulating 2 micro-
    batches of 2 trains the same weights as one batch of 4 (a per-micro-batch mean would not: the items have
    different answer lengths). The same division makes DDP's gradient the single process's."""
    teacher, (s1, _, _) = _cells(toy)
    d = toy.dirs()
    cfg = {**BASE, "student": STUDENT, "teacher": str(d[teacher.id] / "model"), "method": method,
           "data": {"tokenizer_vocab_size": 290},
           "vlm": {**BASE["vlm"], "init": str(d[s1.id] / "model"),
                   **({"recalibrator": str(d[s1.id])} if method["name"] == "genrecal" else {})}}
    if method["name"] == "supervised":
        cfg.pop("teacher")
    whole = train(config_from_dict(cfg), tmp_path / "whole", progress=False)
    cfg["train"] = {**BASE["train"], "micro_batch_size": 2}
    split = train(config_from_dict(cfg), tmp_path / "split", progress=False)
    a, b = _weights(tmp_path / "whole" / "model"), _weights(tmp_path / "split" / "model")
    assert a.keys() == b.keys()
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-5
    assert _differs(a, _weights(d[s1.id] / "model"))  # it trained
    assert abs(whole["loss"] - split["loss"]) < 1e-5
    logged = [[r["loss"] for r in map(json.loads, (tmp_path / run / "metrics.jsonl").read_text().splitlines())
               if r["kind"] == "train"] for run in ("whole", "split")]
    assert len(logged[0]) == 2 and logged[0] == pytest.approx(logged[1], abs=1e-5)  # Adam hides a 2x scale; this not


@pytest.mark.parametrize("train_vision", [False, True])
def test_a_baseline_cell_trains_its_vision_encoder_only_when_asked(tmp_path, train_vision):
    """vlm.train_vision: a from-scratch student may train its vision encoder; by default it stays frozen."""
    from suite.vlm import open_vlm_stage
    from suite.methods import make_method

    cfg = config_from_dict({**BASE, "student": STUDENT, "method": "supervised", "data": {"tokenizer_vocab_size": 290},
                            "vlm": {**BASE["vlm"], "train_vision": train_vision}})
    stage = open_vlm_stage(cfg, make_method("supervised", {}), tmp_path, torch.device("cpu"), None)
    blocks = [p for n, p in stage.student.vision_tower.named_parameters() if not n.startswith("merger")]
    assert blocks and all(p.requires_grad == train_vision for p in blocks)
    assert all(p.requires_grad for p in stage.student.language_model.parameters())
    assert all(p.requires_grad for p in stage.student.vision_tower.merger.parameters())  # the projector, as stage 3
