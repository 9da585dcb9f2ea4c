"""The on-policy baselines (MiniLLM, DistiLLM) on tiny same-tokenizer VLMs: the long-term reward by hand, the
sampled ids scored verbatim, teacher-mixed sampling, zero loss when student and teacher agree, DistiLLM's φ
schedule, and both methods as cells of the training loop."""
from __future__ import annotations

import copy

import pytest
import torch

from suite.vlm.onpolicy import (DistiLLM, DistiLLMParams, MiniLLMParams, distillm_loss, future_reward,
                                     minillm_loss, sample_answers)
from suite.methods import make_method


@pytest.fixture(scope="module")
def pair():
    from suite.data.tokenizers import train_bpe
    from suite.vlm.items import instruction_items
    from suite.models.vlm import build_vlm

    items = instruction_items(6, seed=3)
    tok = train_bpe([f"{q.question} {q.answer}" for q in items] * 5, vocab_size=300)
    student = build_vlm("tiny-qwen2vl", tokenizer=tok, seed=1)
    teacher = build_vlm("tiny-qwen2vl", tokenizer=tok, seed=0)
    teacher.model.requires_grad_(False)
    batch = [(q.images, q.question, q.answer) for q in items[:3]]
    return student, teacher, batch


def test_future_reward_is_the_mean_of_the_later_tokens_rewards():
    r = torch.tensor([[1.0, 2.0, 3.0, 9.0], [4.0, -2.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]], dtype=torch.bool)
    want = torch.tensor([[(2 + 3) / 2, 3.0, 0.0, 0.0], [-2.0, 0.0, 0.0, 0.0]])
    assert torch.allclose(future_reward(r, mask), want)


def test_sampled_ids_go_back_verbatim_and_stop_at_the_end_token(pair):
    student, _, batch = pair
    ids = sample_answers(student, batch, max_new_tokens=6, generator=torch.Generator().manual_seed(0))
    eos = student.tokenizer.eos_token_id
    assert len(ids) == 3 and all(1 <= len(x) <= 6 for x in ids)
    assert all(len(x) == 6 or x[-1] == eos for x in ids) and all(eos not in x[:-1] for x in ids)
    s = student.encode_qa(batch, answer_ids=ids)
    for b, x in enumerate(ids):
        assert s.labels[b, :len(x)].tolist() == x and int(s.a_len[b]) == len(x)
        q = int(s.q_len[b])
        assert s.inputs["input_ids"][b, q:q + len(x)].tolist() == x


def test_teacher_mixed_sampling_draws_from_the_mixture(pair, monkeypatch):
    from suite.vlm import onpolicy

    student, teacher, batch = pair
    real = onpolicy._next_logits

    def next_logits(vlm, sub, pre):  # a teacher that always says token 7
        z = real(vlm, sub, pre)
        if vlm is teacher:
            z = torch.full_like(z, -30.0)
            z[:, 7] = 30.0
        return z

    monkeypatch.setattr(onpolicy, "_next_logits", next_logits)
    g = torch.Generator().manual_seed(0)
    frac = {}
    for a in (0.0, 0.8):
        ids = sample_answers(student, batch * 4, max_new_tokens=5, teacher=teacher, teacher_mix=a, generator=g)
        toks = [t for x in ids for t in x]
        frac[a] = sum(t == 7 for t in toks) / len(toks)
    assert frac[0.0] < 0.1 and 0.65 < frac[0.8] < 0.95, frac


def test_minillm_and_distillm_are_zero_when_the_student_is_the_teacher(pair):
    _, teacher, batch = pair
    same = copy.deepcopy(teacher)
    same.model.requires_grad_(True)
    torch.manual_seed(0)
    loss, parts = minillm_loss(MiniLLMParams(max_new_tokens=4), same, teacher, batch)
    assert abs(float(loss.detach())) < 1e-5 and abs(parts["kd"]) < 1e-5 and abs(parts["reward"]) < 1e-5
    loss.backward()
    g = max(p.grad.abs().max() for p in same.model.parameters() if p.grad is not None)
    assert g < 1e-5
    loss, parts = distillm_loss(DistiLLMParams(max_new_tokens=4), same, teacher, batch, phi=1.0)
    assert abs(float(loss.detach())) < 1e-5 and parts["sgo_frac"] == 1.0


def test_minillm_loss_has_the_policy_gradient_and_single_step_parts(pair):
    student, teacher, batch = pair
    torch.manual_seed(1)
    loss, parts = minillm_loss(MiniLLMParams(max_new_tokens=4, teacher_mix=0.2, ce_weight=0.5), student, teacher,
                               batch, share=0.5)
    assert parts["kd"] > 0 and parts["reward"] < 0 and "ce" in parts  # reverse KL >= 0; E_q[log p - log q] < 0
    loss.backward()
    assert all(p.grad is not None for p in student.model.model.language_model.parameters() if p.requires_grad)
    student.model.zero_grad(set_to_none=True)


def test_distillm_phi_grows_when_the_heldout_loss_stops_improving():
    m = make_method("distillm", {"sgo_step": 0.25, "sgo_max": 0.6, "loss_eps": 0.01})
    assert isinstance(m, DistiLLM)
    phi = m.next_phi(0.0, None, 3.0)                     # first evaluation: nothing to compare
    assert phi == 0.0
    assert m.next_phi(0.0, 3.0, 2.5) == 0.0               # improved by more than 1%
    assert m.next_phi(0.0, 3.0, 2.99) == 0.25             # improved by less
    assert m.next_phi(0.5, 3.0, 3.2) == 0.6               # worse: up, capped at sgo_max
    with pytest.raises(ValueError, match="skew_kl or skew_reverse_kl"):
        make_method("distillm", {"divergence": "forward_kl"})
    with pytest.raises(ValueError, match="teacher_mix"):
        make_method("minillm", {"teacher_mix": 1.0})


# ----------------------------------------------------------------------------- as cells of the training loop

def _grid(tmp_path, name="op"):
    import json

    base = {"vlm": {"train_items": 8, "heldout_items": 2},
            "train": {"batch_size": 4, "eval_batch_size": 4, "log_interval": 1, "eval_interval": 1,
                      "checkpoint_interval": 100},
            "optim": {"lr": 1.0e-3, "warmup": 0}}
    tok = {"tokenizer_vocab_size": 300}
    raw = {"name": name, "defaults": base,
           "resources": {"timeout_min": 5, "cpus_per_task": 2, "mem_gb": 4, "max_concurrent": 1},
           "cells": {
               "teacher": {"set": {"student": "tiny-llava", "method": "supervised", "data": tok}},
               "minillm": {"set": {"student": "tiny-llava", "teacher": "@teacher", "data": tok, "vlm": {"epochs": 2},
                                   "method": {"name": "minillm", "max_new_tokens": 4, "ce_weight": 0.5}}},
               # sgo_step 0.5 and any non-improvement: φ moves within the 4 steps
               "distillm": {"set": {"student": "tiny-llava", "teacher": "@teacher", "data": tok, "vlm": {"epochs": 2},
                                    "method": {"name": "distillm", "max_new_tokens": 4, "sgo_step": 0.5,
                                               "loss_eps": 0.5}}}}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(json.dumps(raw))
    return path


@pytest.fixture(scope="module")
def cells(tmp_path_factory):
    from suite.sweep import open_sweep, submit

    tmp = tmp_path_factory.mktemp("onpolicy")
    sw = open_sweep(_grid(tmp), runs=tmp / "runs")
    submit(sw, executor="inline", progress=False)
    return sw


def _records(d):
    import json

    return [json.loads(ln) for ln in (d / "metrics.jsonl").read_text().splitlines() if ln]


def test_minillm_and_distillm_cells_train_on_the_students_samples(cells):
    import json

    dirs = {c.group: cells.dirs()[c.id] for c in cells.grid.cells}
    for g in ("teacher", "minillm", "distillm"):
        assert (dirs[g] / "result.json").exists(), (dirs[g] / "error.json").read_text()
    mini = [r for r in _records(dirs["minillm"]) if r["kind"] == "train"]
    assert len(mini) == 4 and all(r["kd"] > 0 and "reward" in r and r["sample_len"] >= 1 for r in mini)
    evals = [r for r in _records(dirs["distillm"]) if r["kind"] == "eval"]
    assert evals[0]["sgo_prob"] == 0.0                    # φ starts at 0 and grows by sgo_step, to 1 at most
    assert all(b["sgo_prob"] - a["sgo_prob"] in (0.0, 0.5) or b["sgo_prob"] == 1.0 for a, b in zip(evals, evals[1:]))
    res = json.loads((dirs["minillm"] / "result.json").read_text())
    assert res["method"] == "minillm" and res["teacher"].startswith("cell:")


def test_an_interrupted_distillm_cell_resumes_its_samples_and_schedule(cells, tmp_path):
    import shutil

    from safetensors.torch import load_file

    from suite.sweep import open_sweep, run_cell, submit
    from suite.train import Interrupted

    class Nothing:
        def __call__(self, cell_dir):
            return None

    sw = open_sweep(_grid(tmp_path), runs=tmp_path / "runs")
    submit(sw, executor="inline", progress=False, job_factory=Nothing)
    teacher = next(c for c in sw.grid.cells if c.group == "teacher")
    shutil.rmtree(sw.root / teacher.id)
    shutil.copytree(cells.root / teacher.id, sw.root / teacher.id)
    cid = next(c.id for c in sw.grid.cells if c.group == "distillm")
    d = sw.dirs()[cid]
    with pytest.raises(Interrupted):
        run_cell(d, should_stop=lambda step: step == 2)
    run_cell(d)
    ref = cells.dirs()[cid]
    a, b = load_file(str(d / "model" / "model.safetensors")), load_file(str(ref / "model" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    phi = [r["sgo_prob"] for r in _records(d) if r["kind"] == "eval"]
    assert phi == [r["sgo_prob"] for r in _records(ref) if r["kind"] == "eval"]
