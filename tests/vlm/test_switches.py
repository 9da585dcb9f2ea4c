"""GenRecal's switches (reduction, KL temperature, output norm, stage-3 subset) on hand-checkable cases, and the
training items of a VLM cell: evaluation items kept out, LLaVA-format files read."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn as nn

from suite.config import config_from_dict
from suite.methods.chunked import IGNORE_INDEX
from suite.vlm.method import GenRecalParams, Recalibrator, RecalibratorConfig, genrecal_loss, stage_loss


@pytest.fixture(scope="module")
def pair():
    """A LLaVA teacher and a Qwen2-VL student with different tokenizers, vocabularies and widths, a
    Recalibrator between them and a batch whose answers have more tokens than the batch has items."""
    from suite.data.tokenizers import train_bpe
    from suite.vlm.items import instruction_items
    from suite.models.vlm import build_vlm

    items = instruction_items(6, seed=3)
    texts = [f"{q.question} {q.answer}" for q in items] * 5
    teacher = build_vlm("tiny-llava-m", tokenizer=train_bpe(texts, vocab_size=330), seed=0)
    student = build_vlm("tiny-qwen2vl", tokenizer=train_bpe(texts, vocab_size=290), seed=1)
    teacher.model.requires_grad_(False)
    torch.manual_seed(0)
    rec = Recalibrator(student.model.config, d_teacher=teacher.head_weight.shape[1])
    batch = [(q.images, q.question, q.answer + " because it is so") for q in items[:3]]
    with torch.no_grad():  # the stage-1 loss at the defaults (token means, T = 1), which the tests vary
        stage1 = stage_loss(GenRecalParams(stage=1), student, batch, teacher, rec)
    return teacher, student, rec, batch, stage1


@torch.no_grad()
def test_sample_reduction_rescales_the_token_mean(pair):
    teacher, student, rec, batch, (tok, p_tok) = pair
    B = len(batch)
    n_t = int(teacher.encode_qa(batch).a_len.sum())
    n_s = int(student.encode_qa(batch).a_len.sum())
    assert n_t > B and n_s > B and n_t != n_s
    smp, p_smp = stage_loss(GenRecalParams(stage=1, reduction="sample"), student, batch, teacher, rec)
    assert float(smp) == pytest.approx(float(tok) * n_t / B, rel=1e-5)
    assert set(p_tok) == set(p_smp) == {"main_ce", "main_kl", "reg_ce", "reg_kl"}
    for k in p_tok:
        assert p_smp[k] == pytest.approx(p_tok[k] * n_t / B, rel=1e-5), k
    tok3, _ = stage_loss(GenRecalParams(stage=3), student, batch)
    smp3, _ = stage_loss(GenRecalParams(stage=3, reduction="sample"), student, batch)
    assert float(smp3) == pytest.approx(float(tok3) * n_s / B, rel=1e-5)  # the student's own answer tokens


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("T", [1.0, 2.0, 0.5])
def test_kl_temperature_is_t_squared_times_the_tempered_kl(T):
    """r, z_t: 2 answer tokens (and a padding slot whose features must not count) through a 4-word head."""
    W = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, -1.0], [-1.0, 2.0, 0.0], [0.5, 0.5, 0.5]])
    r = np.array([[0.2, -0.4, 1.0], [1.5, 0.3, -0.2], [9.0, -9.0, 9.0]])
    z = np.array([[1.0, 0.5, 0.0], [-0.5, 1.0, 0.8], [-9.0, 9.0, 0.0]])
    labels = np.array([2, 0, IGNORE_INDEX])
    ps, pt = _softmax(r @ W.T / T)[:2], _softmax(z @ W.T / T)[:2]
    kl = T * T * float((pt * (np.log(pt) - np.log(ps))).sum())
    ls = r @ W.T
    ce = float(sum(-np.log(_softmax(ls[j])[labels[j]]) for j in range(2)))  # CE at T = 1, whatever T is
    t = lambda a: torch.tensor(a, dtype=torch.float32)[None]  # noqa: E731
    lab = torch.tensor(labels)[None]
    got, parts = genrecal_loss(t(r), t(z), torch.tensor(W, dtype=torch.float32), lab, ("kl",), temperature=T)
    assert float(got) == pytest.approx(kl, rel=1e-5) and float(parts["kl"]) == pytest.approx(kl, rel=1e-5)
    got, parts = genrecal_loss(t(r), t(z), torch.tensor(W, dtype=torch.float32), lab, ("ce", "kl"), temperature=T)
    assert float(parts["ce"]) == pytest.approx(ce, rel=1e-5)
    assert float(got) == pytest.approx(ce + kl, rel=1e-5)


@torch.no_grad()
def test_stage_loss_passes_the_temperature_to_both_kl_terms(pair):
    teacher, student, rec, batch, (_, p1) = pair
    _, p2 = stage_loss(GenRecalParams(stage=1, kl_temperature=2.0), student, batch, teacher, rec)
    assert p2["main_ce"] == pytest.approx(p1["main_ce"], rel=1e-6)
    assert p2["reg_ce"] == pytest.approx(p1["reg_ce"], rel=1e-6)
    assert abs(p2["main_kl"] - p1["main_kl"]) > 1e-4 * p1["main_kl"]
    assert abs(p2["reg_kl"] - p1["reg_kl"]) > 1e-4 * p1["reg_kl"]


def test_output_norm_switch_builds_the_norm_it_names():
    from suite.methods import make_method
    from suite.models import build_model

    cfg = build_model("tiny-0.03M", vocab_size=40, seed=0).config
    d_t = 48
    x, m = torch.randn(2, 3, cfg.hidden_size), torch.ones(2, 3, dtype=torch.long)
    za, am = torch.randn(2, 4, d_t), torch.ones(2, 4, dtype=torch.long)
    kinds = {"layernorm": nn.LayerNorm, "rmsnorm": nn.RMSNorm, "none": nn.Identity}
    for name, kind in kinds.items():
        torch.manual_seed(0)
        rec = Recalibrator(cfg, d_t, RecalibratorConfig(output_norm=name))
        assert type(rec.norm) is kind, name
        with torch.no_grad():
            out = rec(x, m, za, am)
        rms = out.pow(2).mean(-1).sqrt()
        if name == "rmsnorm":  # unit root-mean-square rows (weight 1 at init), means left alone
            torch.testing.assert_close(rms, torch.ones_like(rms), atol=1e-3, rtol=0)
            assert out.mean(-1).abs().max() > 1e-3
        elif name == "layernorm":  # zero mean, unit variance rows
            torch.testing.assert_close(out.mean(-1), torch.zeros_like(rms), atol=1e-5, rtol=0)
        else:
            assert (rms - 1).abs().max() > 1e-2
    assert tuple(Recalibrator(cfg, d_t, RecalibratorConfig(output_norm="rmsnorm")).norm.normalized_shape) == (d_t,)
    m = make_method("genrecal", {"stage": 2, "recalibrator": {"output_norm": "rmsnorm", "depth": 1}})
    assert m.params.recalibrator == RecalibratorConfig(output_norm="rmsnorm", depth=1)
    with pytest.raises(Exception, match="output_norm"):
        make_method("genrecal", {"recalibrator": {"output_norm": "rms"}})


@pytest.mark.parametrize("bad,match", [
    ({"reduction": "mean"}, "reduction must be token or sample"),
    ({"kl_temperature": 0}, "kl_temperature must be > 0"),
    ({"stage3_fraction": 0}, r"stage3_fraction must be in \(0, 1\]"),
    ({"stage3_fraction": 1.5}, r"stage3_fraction must be in \(0, 1\]"),
    ({"regularization": "ce+k"}, "did you mean 'ce\\+kl'"),
])
def test_bad_switches_are_named(bad, match):
    with pytest.raises(ValueError, match=match):
        GenRecalParams(**bad)


def _cfg(**vlm):
    return config_from_dict({"student": "tiny-qwen2vl", "teacher": "unused-by-stage-3",
                             "method": {"name": "genrecal", "stage": 3},
                             "data": {"tokenizer_vocab_size": 290}, "train": {"batch_size": 2},
                             "vlm": {"train_items": 8, "heldout_items": 2, "answers": "short", **vlm}})


def test_stage3_fraction_trains_a_fixed_seeded_subset(tmp_path):
    from suite.vlm import open_vlm_stage
    from suite.vlm.stage import load_items
    from suite.methods import make_method

    def stage(cfg, out):
        return open_vlm_stage(cfg, make_method("genrecal", dict(cfg.method.params)), out, torch.device("cpu"), None)

    full = _cfg()
    cfg = config_from_dict({**full.to_dict(), "method": {"name": "genrecal", "stage": 3, "stage3_fraction": 0.5}})
    all_keys = [q.key() for q in load_items(full)[0]]
    assert len(all_keys) == 8
    a, b = stage(cfg, tmp_path / "a"), stage(cfg, tmp_path / "b")
    keys = [q.key() for q in a.train_items]
    assert len(keys) == 4 and keys == [q.key() for q in b.train_items]
    assert keys == [k for k in all_keys if k in set(keys)]  # a subset, in the items' order
    assert [q.key() for q in a.heldout_items] == [q.key() for q in load_items(full)[1]]  # held-out untouched
    assert a.steps == 2 and a.recalibrator is None and a.teacher is None  # 4 items / batch 2, 1 epoch
    assert len(stage(full, tmp_path / "c").train_items) == 8


def test_stage3_kinds_keep_only_those_items(tmp_path):
    from suite.vlm import open_vlm_stage
    from suite.methods import make_method

    full = _cfg()
    cfg = config_from_dict({**full.to_dict(), "method": {"name": "genrecal", "stage": 3, "stage3_kinds": ["ai2d"],
                                                         "stage3_fraction": 0.5}})
    st = open_vlm_stage(cfg, make_method("genrecal", dict(cfg.method.params)), tmp_path, torch.device("cpu"), None)
    assert [q.kind for q in st.train_items] == ["ai2d", "ai2d"]  # 4 of the 8 are ai2d, then half of those
    assert {q.kind for q in st.heldout_items} == {"ai2d", "mathvista"}  # scoring keeps every kind


# ----------------------------------------------------------------------------- items


def test_training_items_avoid_the_evaluation_items(tmp_path):
    from suite.vlm.items import benchmark_items
    from suite.eval.vlm import write_vlm_fixture
    from suite.vlm.stage import _dataset_items, load_items

    root = tmp_path / "lmu"
    for kind in ("ai2d", "mathvista"):
        write_vlm_fixture(root, kind, n=12, seed=0)
    fixture = {q.key() for kind in ("ai2d", "mathvista") for q in benchmark_items(kind, 12, seed=0)}
    read = {q.key() for kind in ("ai2d", "mathvista") for q in _dataset_items(kind, root, "default")}
    assert len(fixture) >= 16 and read == fixture  # the TSVs' items are those items, prompt and pixels

    def items(data_root):
        cfg = config_from_dict({"student": "tiny-qwen2vl", "method": "supervised",
                                "eval": {"data_root": str(data_root)}, "vlm": {"train_items": 20, "heldout_items": 4}})
        train, held = load_items(cfg)
        assert len(train) == 20 and len(held) == 4
        return {q.key() for q in train + held}

    assert items(tmp_path / "empty") & fixture  # without the TSVs the same seed draws evaluation items...
    got = items(root)
    assert len(got) == 24 and not got & fixture  # ...with them, none


def _png(path, colour):
    from PIL import Image

    Image.new("RGB", (20, 12), colour).save(path)


def test_read_llava_reads_conversations_and_names_a_bad_file(tmp_path):
    from suite.vlm.stage import load_items, read_llava

    (tmp_path / "img").mkdir()
    _png(tmp_path / "img" / "a.png", (255, 0, 0))
    _png(tmp_path / "img" / "b.png", (0, 0, 255))
    rows = [
        {"id": "1", "image": "img/a.png", "conversations": [
            {"from": "human", "value": "<image>\nWhat colour is the picture?"}, {"from": "gpt", "value": "Red."},
            {"from": "human", "value": "Is it wider than tall?"}, {"from": "gpt", "value": "Yes."}]},
        {"id": "2", "image": "img/b.png", "conversations": [
            {"from": "human", "value": "Describe it. <image>"}, {"from": "gpt", "value": "A blue rectangle."}]},
    ]
    path = tmp_path / "llava.json"
    path.write_text(json.dumps(rows))
    items = read_llava(path)
    assert [(q.question, q.answer, q.kind) for q in items] == [
        ("What colour is the picture?", "Red.", "llava"), ("Is it wider than tall?", "Yes.", "llava"),
        ("Describe it.", "A blue rectangle.", "llava")]
    assert [q.image.getpixel((3, 3)) for q in items] == [(255, 0, 0), (255, 0, 0), (0, 0, 255)]
    assert items[0].image.size == (20, 12) and items[0].images == [items[0].image]

    jsonl = tmp_path / "sub" / "llava.jsonl"  # JSON lines, images under image_root
    jsonl.parent.mkdir()
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows * 3))
    again = read_llava(jsonl, image_root=tmp_path)
    assert [q.question for q in again] == [q.question for q in items] * 3
    cfg = config_from_dict({"student": "tiny-qwen2vl", "method": "supervised",
                            "vlm": {"path": str(jsonl), "image_root": str(tmp_path), "heldout_items": 2}})
    train, held = load_items(cfg)
    assert len(train) == 7 and len(held) == 2
    assert sorted(q.question for q in train + held) == sorted(q.question for q in again)

    for bad, msg in [({"id": "3", "conversations": rows[0]["conversations"]}, "row 1 is not LLaVA format"),
                     ({"image": "img/a.png", "conversations": "hi"}, "row 1 is not LLaVA format"),
                     ({"image": "img/a.png", "conversations": [{"from": "gpt", "value": "x"},
                                                              {"from": "human", "value": "y"}]},
                      "row 1: conversations must alternate human, gpt")]:
        broken = tmp_path / "broken.json"
        broken.write_text(json.dumps([rows[0], bad]))
        with pytest.raises(ValueError, match=msg) as err:
            read_llava(broken)
        assert str(broken) in str(err.value)
