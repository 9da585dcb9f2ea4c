"""A VLM distillation loss is one class (suite/vlm/base.py: VLMMethod): a label-smoothed SFT, registered at test
time, is listed and validated as a VLM method, named in a grid, and trains a tiny VLM cell end to end, with no change
to suite/vlm/. With smoothing 0 its loss is the SFT baseline's, so its cell ends with the SFT cell's weights
bit for bit: the stage hands the method what the baselines get (student, the step's divisors) and nothing else
differs. Three cells of 2 steps on tiny-qwen2vl: about 7 s on 2 CPU cores.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from suite.config import ConfigError, config_from_dict
from suite.vlm import VLMMethod, stage_name
from suite.vlm.base import vlm_methods
from suite.vlm.method import answer_predictors
from suite.methods import METHODS, Method, head_loss
from suite.train import train

NAME = "toy-smooth-sft"
BASE = {"student": "tiny-qwen2vl", "data": {"tokenizer_vocab_size": 290},
        "vlm": {"train_items": 8, "heldout_items": 2},   # 8 items / batch 4 = 2 steps
        "train": {"batch_size": 4, "eval_batch_size": 4, "log_interval": 1, "eval_interval": 100,
                  "checkpoint_interval": 100},
        "optim": {"lr": 1.0e-3, "warmup": 0}}


@dataclass(frozen=True)
class SmoothParams:
    smoothing: float = 0.1   # ε: the target puts 1 − ε on the answer token and ε/V on every token


class LabelSmoothedSFT(Method, VLMMethod):
    """The student's label-smoothed CE on the answers, a mean per answer token of the step; the plain CE as a part."""

    Params = SmoothParams
    vlm_only = True
    label = "label-smoothed SFT"

    def vlm_loss(self, stage, batch):
        eps = self.params.smoothing

        def smoothed(zs, zt, labels):  # sums over the chunk's answer tokens
            with torch.no_grad():
                ce = F.cross_entropy(zs, labels, reduction="sum")
            return F.cross_entropy(zs, labels, reduction="sum", label_smoothing=eps), {"ce": ce}

        student = stage.student
        s = student.encode_qa(batch, self.answer_limit)
        z = answer_predictors(student.hidden(s.inputs), s.q_len, s.a_len, s.labels.shape[1])
        loss, parts = head_loss(z, student.head_weight, s.labels, smoothed)
        n = stage.norm["student"]  # the step's answer tokens: micro-batching leaves the step's loss alone
        return loss / n, {k: float(v) / n for k, v in parts.items()}


@pytest.fixture
def toy():
    METHODS.register(NAME, LabelSmoothedSFT)
    try:
        yield LabelSmoothedSFT
    finally:
        METHODS._items.pop(NAME)


def _cell(method, **over):
    return config_from_dict({**BASE, "method": method, **over})


def _weights(d):
    return load_file(str(d / "model" / "model.safetensors"))


def test_a_registered_vlm_method_is_listed_checked_and_named(toy):
    assert vlm_methods()[NAME] == "label-smoothed SFT"
    cfg = _cell({"name": NAME, "smoothing": 0.2})
    assert cfg.method.params["smoothing"] == 0.2
    assert stage_name(cfg, "tiny-llava-m") == f"{NAME}-Ttiny-llava-m-Stiny-qwen2vl-e1-s0"
    with pytest.raises(ConfigError, match=r"vlm\.stages: only a genrecal cell has stages"):  # not a staged method
        _cell(NAME, vlm={**BASE["vlm"], "stages": [1, 2]})
    with pytest.raises(ConfigError, match=rf"'gere' does not train vision-language students; valid: .*{NAME} \("):
        config_from_dict({"method": "gere", "continual": {"tasks": "syn-1"}, "vlm": {"epochs": 2}})


def test_a_registered_vlm_method_trains_a_cell_end_to_end(toy, tmp_path):
    sft = train(_cell("supervised"), tmp_path / "sft", progress=False)
    same = train(_cell({"name": NAME, "smoothing": 0.0}), tmp_path / "eps0", progress=False)
    smooth = train(_cell(NAME), tmp_path / "eps01", progress=False)
    # ε = 0 is the SFT baseline's loss: the same weights, bit for bit, and the same held-out loss
    a, b = _weights(tmp_path / "sft"), _weights(tmp_path / "eps0")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert same["loss"] == sft["loss"] and same["D_S"] == sft["D_S"] and same["flops"] == sft["flops"]
    # ε = 0.1 trains the student otherwise; its train records carry the method's parts
    res = json.loads((tmp_path / "eps01" / "result.json").read_text())
    assert res["vlm"]["method"] == NAME and res["vlm"]["stage"] == 0 and res["steps"] == 2
    assert res["method_params_resolved"] == {"smoothing": 0.1}
    c = _weights(tmp_path / "eps01")
    assert any(not torch.equal(a[k], c[k]) for k in a)
    recs = [json.loads(ln) for ln in (tmp_path / "eps01" / "metrics.jsonl").read_text().splitlines() if ln]
    steps = [r for r in recs if r["kind"] == "train"]
    assert len(steps) == 2 and all(r["ce"] > 0 and r["loss"] != r["ce"] for r in steps)
    assert smooth["loss"] > 0 and smooth["loss"] != sft["loss"]
