"""LLaVA-KD (suite/vlm/llavakd.py) on tiny same-tokenizer LLaVAs (student tiny-llava, teacher tiny-llava-m,
16 image tokens each): the distillation terms vanish with their gradients when the student is the teacher, RDist
and the visual KL against hand and explicit-logit computations, the image-token-count error, what each stage
trains after a real optimizer step, the grid's three chained cells, and a 3-stage toy sweep end to end.

Sizes: 6 items and batches of 3-4; the toy sweep is 8 items, batch 4 (2 steps a cell), about 10 s on 2 cores.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math

import pytest
import torch
import torch.nn.functional as F

from suite.config import ConfigError, config_from_dict
from suite.vlm.llavakd import LLaVAKDParams, check_pair, correlation, llavakd_loss, rdist
from suite.methods import make_method

STUDENT, TEACHER = "tiny-llava", "tiny-llava-m"
DISTIL = ("response_weight", "visual_weight", "rdist_weight")


@pytest.fixture(scope="module")
def pair():
    from suite.data.tokenizers import train_bpe
    from suite.vlm.items import instruction_items
    from suite.models.vlm import build_vlm

    items = instruction_items(6, seed=3)
    tok = train_bpe([f"{q.question} {q.answer}" for q in items] * 5, vocab_size=300)
    student = build_vlm(STUDENT, tokenizer=tok, seed=1)
    teacher = build_vlm(TEACHER, tokenizer=tok, seed=0)
    teacher.model.requires_grad_(False)
    batch = [(q.images, q.question, q.answer) for q in items[:3]]
    return student, teacher, batch, tok


def _only(term: str, **kw) -> LLaVAKDParams:
    """Stage-3 params with one distillation term at weight 1 and every other term (CE too) off."""
    return LLaVAKDParams(stage=3, ce_weight=0.0, **{w: float(w == term) for w in DISTIL}, **kw)


def _max_grad(vlm) -> float:
    return max(float(p.grad.abs().max()) for p in vlm.model.parameters() if p.grad is not None)


@pytest.mark.parametrize("term, rdist_on", [("response_weight", "logits"), ("visual_weight", "logits"),
                                            ("rdist_weight", "logits"), ("rdist_weight", "features")])
def test_each_distillation_term_and_its_gradient_vanish_when_the_student_is_the_teacher(pair, term, rdist_on):
    student, _, batch, _ = pair
    same = copy.deepcopy(student)  # one model passed as both
    same.model.requires_grad_(True)
    loss, parts = llavakd_loss(_only(term, rdist_on=rdist_on), same, same, batch)
    (name,) = parts  # only the term asked for is computed
    assert abs(parts[name]) < 1e-6 and abs(float(loss.detach())) < 1e-6
    loss.backward()
    assert _max_grad(same) < 1e-6
    # the same term between two different models is not zero and moves the student: the test above can fail
    student.model.zero_grad(set_to_none=True)
    loss, parts = llavakd_loss(_only(term, rdist_on=rdist_on), student, pair[1], batch)
    loss.backward()
    assert parts[name] > 1e-5 and _max_grad(student) > 1e-6
    student.model.zero_grad(set_to_none=True)


def test_rdist_by_hand():
    """Two visual tokens. Features: student rows (1, 0), (1, 1) have cosine 1/√2, the teacher's (1, 0), (0, 1)
    cosine 0, so R_s = [[1, c], [c, 1]], R_t = I and 1 − cos(R_s, R_t) = 1 − 2 / (√(2 + 2c²)·√2)."""
    h_s, h_t = torch.tensor([[1.0, 0.0], [1.0, 1.0]]), torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    c = 1 / math.sqrt(2)
    assert torch.allclose(correlation(h_s), torch.tensor([[1.0, c], [c, 1.0]]))
    want = 1 - 2 / (math.sqrt(2 + 2 * c * c) * math.sqrt(2))
    assert float(rdist(correlation(h_s), correlation(h_t))) == pytest.approx(want, rel=1e-6)
    # on logits through a head W (3 tokens × 2): student logits (2, 0, 0), (2, 1, 1): cosine 4 / (2·√6)
    W = torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    c = 4 / (2 * math.sqrt(6))
    assert torch.allclose(correlation(h_s, W.T @ W), torch.tensor([[1.0, c], [c, 1.0]]))
    want = 1 - 2 / (math.sqrt(2 + 2 * c * c) * math.sqrt(2))
    assert float(rdist(correlation(h_s, W.T @ W), correlation(h_t))) == pytest.approx(want, rel=1e-6)


@torch.no_grad()
def test_the_visual_terms_match_explicit_logits_at_the_image_tokens(pair):
    """kd_visual and rdist of the loss against a direct computation: the full logits at the positions whose id is
    the image token, KL per visual token (mean), R from normalized logit rows per sample (mean over samples)."""
    student, teacher, batch, _ = pair
    _, parts = llavakd_loss(LLaVAKDParams(stage=1, temperature=2.0), student, teacher, batch)
    kl, rd, n_vis = 0.0, 0.0, 0
    s, t = student.encode_qa(batch), teacher.encode_qa(batch)
    hs, ht = student.hidden(s.inputs), teacher.hidden(t.inputs)
    for b in range(len(batch)):
        ps = s.inputs["input_ids"][b] == student.model.config.image_token_id
        pt = t.inputs["input_ids"][b] == teacher.model.config.image_token_id
        assert int(ps.sum()) == int(pt.sum()) == 16
        zs, zt = hs[b, ps] @ student.head_weight.T, ht[b, pt] @ teacher.head_weight.T
        lt, ls = F.log_softmax(zt / 2, -1), F.log_softmax(zs / 2, -1)
        kl += float((lt.exp() * (lt - ls)).sum()) * 4  # × T²
        n_vis += 16
        rs, rt = (F.normalize(z, dim=-1) @ F.normalize(z, dim=-1).T for z in (zs, zt))
        rd += 1 - float((rs * rt).sum() / (rs.norm() * rt.norm()))
    assert parts["kd_visual"] == pytest.approx(kl / n_vis, rel=1e-4)
    assert parts["rdist"] == pytest.approx(rd / len(batch), rel=1e-3, abs=1e-7)


def test_step_counts_in_norm_divide_the_sums(pair):
    student, teacher, batch, _ = pair
    p = LLaVAKDParams(stage=3)
    with torch.no_grad():
        own, parts = llavakd_loss(p, student, teacher, batch)
        s = student.encode_qa(batch)
        n = {"student": int(s.a_len.sum()), "visual": 16 * len(batch), "items": len(batch)}
        doubled, parts2 = llavakd_loss(p, student, teacher, batch, norm={k: 2 * v for k, v in n.items()})
    assert float(doubled) == pytest.approx(float(own) / 2, rel=1e-5)
    assert parts2 == pytest.approx({k: v / 2 for k, v in parts.items()}, rel=1e-5)


def test_a_teacher_with_another_image_token_count_is_named(pair):
    from suite.models.vlm import _TINY_BUILDERS, VLM, TINY_VLMS

    student, _, batch, tok = pair
    small = dataclasses.replace(TINY_VLMS.get(TEACHER), image_size=16)  # (16/8)² = 4 image tokens, same tokenizer
    torch.manual_seed(0)
    other = VLM(*_TINY_BUILDERS["llava"](small, copy.deepcopy(tok)), name="llava-4")
    msg = r"same number of image tokens per image: the teacher 'llava-4' has 4, the student 'tiny-llava' has 16"
    with pytest.raises(ValueError, match=msg):
        llavakd_loss(LLaVAKDParams(stage=1), student, other, batch)
    with pytest.raises(ValueError, match=msg):
        check_pair(student, other, batch[0])
    # and another tokenizer is named before any of it
    from suite.data.tokenizers import train_bpe
    from suite.models.vlm import build_vlm

    foreign = build_vlm(TEACHER, tokenizer=train_bpe(["a b c d"] * 20, vocab_size=280), seed=0)
    with pytest.raises(ValueError, match="llavakd compares token distributions, so teacher and student must share"):
        llavakd_loss(LLaVAKDParams(stage=3), student, foreign, batch)


def test_params_are_validated_with_the_key():
    for bad, match in [({"stage": 4}, r"llavakd\.stage must be one of 1 \(DPT"),
                       ({"rdist_weight": -1.0}, r"llavakd\.rdist_weight must be a finite number >= 0"),
                       ({"temperature": 0.0}, r"llavakd\.temperature must be > 0"),
                       ({"rdist_on": "hidden"}, r"llavakd\.rdist_on must be one of logits, features"),
                       ({"stage": 2, "ce_weight": 0.0}, r"llavakd\.ce_weight: stage 2"),
                       ({"ce_weight": 0.0, "response_weight": 0.0, "visual_weight": 0.0, "rdist_weight": 0.0},
                        "every weight")]:
        with pytest.raises(ValueError, match=match):
            make_method("llavakd", bad)
    m = make_method("llavakd", {"stage": 3})
    assert [type(m).requires_teacher({"stage": k}) for k in (1, 2, 3)] == [True, False, True]
    with pytest.raises(ConfigError, match=r"teacher: method 'llavakd' needs a teacher"):
        config_from_dict({"student": STUDENT, "method": {"name": "llavakd", "stage": 3}})
    config_from_dict({"student": STUDENT, "method": {"name": "llavakd", "stage": 2}})  # SFT: none needed


# ----------------------------------------------------------------------------- what each stage trains

@pytest.fixture(scope="module")
def shared(tmp_path_factory, pair):
    """A saved teacher and the tokenizer directory the stages' students are built with: one vocabulary."""
    _, teacher, _, tok = pair
    d = tmp_path_factory.mktemp("llavakd_pair")
    tok.save_pretrained(str(d / "tokenizer"))
    teacher.save(d / "teacher")
    return d


def _stage(tmp_path, shared, k, **vlm):
    from suite.vlm import open_vlm_stage

    raw = {"student": STUDENT, "method": {"name": "llavakd", "stage": k},
           "data": {"tokenizer": str(shared / "tokenizer")}, "vlm": {"train_items": 4, "heldout_items": 2, **vlm},
           "train": {"batch_size": 4}}
    if k != 2:
        raw["teacher"] = str(shared / "teacher")
    cfg = config_from_dict(raw)
    return open_vlm_stage(cfg, make_method("llavakd", dict(cfg.method.params)), tmp_path, torch.device("cpu"), None)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_one_optimizer_step_changes_what_the_stage_trains(tmp_path, shared, k):
    """A real step (the stage's loss, backward, plain SGD without decay on what requires grad) and the parameters
    that changed, name by name: the projector alone in stage 1; + the LLM (and head) in 2 and 3; never the tower."""
    stage = _stage(tmp_path, shared, k)
    model = stage.student.model
    assert (stage.teacher is None) == (k == 2) and stage.stage_no == k
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    loss, parts = stage.module(stage.micro_batch(0, 0, 4))
    assert set(parts) == ({"ce"} if k == 2 else {"ce", "kd_response", "kd_visual", "rdist"})
    loss.backward()
    torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1).step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
    projector = {n for n in before if ".multi_modal_projector." in f".{n}"}
    tower = {n for n in before if ".vision_tower." in f".{n}"}
    llm = {n for n in before if ".language_model." in f".{n}"}
    assert projector and tower and llm
    assert projector <= changed and not changed & tower
    if k == 1:
        assert changed == projector
    else:
        assert llm <= changed and "lm_head.weight" in changed
    assert stage.trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_train_vision_trains_the_tower_in_stages_2_and_3_only(tmp_path, shared):
    for k, trains in ((1, False), (3, True)):
        stage = _stage(tmp_path / str(k), shared, k, train_vision=True)
        assert all(p.requires_grad == trains for p in stage.student.vision_tower.parameters()), k


# ----------------------------------------------------------------------------- grids

def _raw(stages=(1, 2, 3), **vlm):
    return {
        "name": "lk",
        "defaults": {"vlm": {"train_items": 8, "heldout_items": 2}, "train": {"batch_size": 4, "eval_batch_size": 4,
                                                                            "log_interval": 1, "eval_interval": 100,
                                                                            "checkpoint_interval": 100},
                     "optim": {"lr": 1.0e-3, "warmup": 0}, "data": {"tokenizer_vocab_size": 300}},
        "resources": {"timeout_min": 5, "cpus_per_task": 2, "mem_gb": 4, "max_concurrent": 1},
        "cells": {
            "teacher": {"set": {"student": TEACHER, "method": "supervised"}},
            "kd": {"set": {"student": STUDENT, "teacher": "@teacher", "method": {"name": "llavakd"},
                           "vlm": {"stages": list(stages), **vlm}}},
        },
    }


def _chain(grid):
    teacher = next(c for c in grid.cells if c.group == "teacher")
    return teacher, sorted((c for c in grid.cells if c.group == "kd"), key=lambda c: c.config.method.params["stage"])


def test_stages_expand_into_three_chained_cells_with_a_teacher_where_needed():
    from suite.sweep.grid import expand

    g = expand(_raw(), "g.yaml")
    teacher, (s1, s2, s3) = _chain(g)
    assert len(g.cells) == 4 and g.cells[0].id == teacher.id
    assert [c.config.method.params["stage"] for c in (s1, s2, s3)] == [1, 2, 3]
    assert [c.teacher_id for c in (s1, s2, s3)] == [teacher.id, s1.id, s2.id]
    assert [c.config.teacher for c in (s1, s2, s3)] == [f"cell:{teacher.id}", None, f"cell:{teacher.id}"]
    assert [c.config.vlm.init for c in (s1, s2, s3)] == [None, f"cell:{s1.id}", f"cell:{s2.id}"]
    assert {c.config.vlm.recalibrator for c in (s1, s2, s3)} == {None}
    assert [c.name for c in (s1, s2, s3)] == ["llavakd-k1-Ttiny-llava-m-Stiny-llava-e1-s0",
                                               "llavakd-k2-Stiny-llava-e1-s0",
                                               "llavakd-k3-Ttiny-llava-m-Stiny-llava-e1-s0"]
    # starting at SFT: no teacher and no dependency for it, the teacher again for DFT
    teacher, (s2, s3) = _chain(expand(_raw(stages=(2, 3)), "g.yaml"))
    assert s2.config.teacher is None and s2.teacher_id is None and s2.config.vlm.init is None
    assert s3.config.teacher == f"cell:{teacher.id}" and s3.teacher_id == s2.id
    # a stage that reads the teacher's answers keeps it
    _, (_, s2, _) = _chain(expand(_raw(answers="teacher"), "g.yaml"))
    assert s2.config.teacher is not None


def test_stage_keys_are_checked_for_llavakd():
    with pytest.raises(ConfigError, match=r"method\.stage 3 is not in vlm\.stages \[1, 2\]"):
        config_from_dict({"student": STUDENT, "teacher": "t", "method": {"name": "llavakd", "stage": 3},
                          "vlm": {"stages": [1, 2]}})
    with pytest.raises(ConfigError, match=r"vlm\.recalibrator: only a genrecal cell"):
        config_from_dict({"student": STUDENT, "teacher": "t", "method": "llavakd", "vlm": {"recalibrator": "y"}})
    from suite.sweep.grid import expand

    with pytest.raises(ConfigError, match=r"cells\.kd: vlm\.stages: must be increasing"):
        expand(_raw(stages=(3, 1)), "g.yaml")


# ----------------------------------------------------------------------------- a toy sweep, end to end

@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    from suite.sweep import open_sweep, submit

    tmp = tmp_path_factory.mktemp("llavakd")
    path = tmp / "lk.yaml"
    path.write_text(json.dumps(_raw()))
    sw = open_sweep(path, runs=tmp / "runs")
    out = submit(sw, executor="inline", progress=False)
    assert len(out["submitted"]) == 4
    return sw


def _weights(d):
    from safetensors.torch import load_file

    return load_file(str(d / "model" / "model.safetensors"))


def _records(d):
    return [json.loads(ln) for ln in (d / "metrics.jsonl").read_text().splitlines() if ln]


def test_a_three_stage_sweep_runs_end_to_end(toy, tmp_path):
    from suite.train import train

    d = toy.dirs()
    teacher, stages = _chain(toy.grid)
    for c in (teacher, *stages):
        assert (d[c.id] / "result.json").exists(), (d[c.id] / "error.json").read_text()
    res = {k: json.loads((d[c.id] / "result.json").read_text()) for k, c in enumerate(stages, 1)}
    for k, r in res.items():
        v = r["vlm"]
        assert v["method"] == "llavakd" and v["stage"] == k and r["steps"] == 2
        assert v["teacher_family"] == (None if k == 2 else "llava") and v["answers"] == "short"
        train_recs = [x for x in _records(d[stages[k - 1].id]) if x["kind"] == "train"]
        assert len(train_recs) == 2
        want = {"kd_response", "kd_visual", "rdist"}
        assert all((want <= set(x)) == (k != 2) and x["ce"] > 0 for x in train_recs), k
    # what changed, stage by stage, from the student as built (a 0-epoch cell of the same config)
    cfg = config_from_dict({**_raw()["defaults"], "student": STUDENT,
                            "method": "supervised", "vlm": {**_raw()["defaults"]["vlm"], "epochs": 0}})
    train(cfg, tmp_path, progress=False)
    w0 = _weights(tmp_path)
    w1, w2, w3 = (_weights(d[c.id]) for c in stages)

    def changed(a, b):
        return {n for n in a if not torch.equal(a[n], b[n])}

    projector = {n for n in w0 if "multi_modal_projector" in n}
    tower = {n for n in w0 if "vision_tower" in n}
    assert changed(w0, w1) == projector
    assert not (changed(w1, w2) | changed(w2, w3)) & tower
    assert any("language_model" in n for n in changed(w1, w2)) and any("language_model" in n for n in changed(w2, w3))
    # FLOPs on the same items: the teacher's forward in stages 1 and 3 only; stage 1 backpropagates through the
    # frozen LLM without its weight gradients: less than stage 3's 3×, more than 2/3 of it
    f = {k: r["flops"] for k, r in res.items()}
    assert res[1]["D_S"] == res[3]["D_S"]
    assert f[2]["teacher_logits"] == 0 and f[1]["teacher_logits"] == f[3]["teacher_logits"] > 2 * res[1]["N_T"] * \
        f[1]["teacher_tokens"] > 0
    assert 2 / 3 * f[3]["student_train"] < f[1]["student_train"] < f[3]["student_train"]
