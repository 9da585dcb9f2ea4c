"""Batched VLM predictions: cache-backed resume after a kill, stale-cache safety, scoring the output, the bench."""
from __future__ import annotations

import json

import pytest
import torch

from suite.data.tokenizers import train_bpe
from suite.eval.run import evaluate
from suite.eval.vlm import load_dataset, read_predictions, write_vlm_fixture
from suite.eval.vlm.generate import predict, read_cache
from suite.eval.vlm.prompts import build_prompt
from suite.models.vlm import build_vlm

N = 12


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("lmu")
    for b in ("ai2d", "mathvista", "mmvet"):
        write_vlm_fixture(root, b, n=N, seed=3)
    rows = load_dataset("AI2D_TEST", root).to_dict("records")
    tok = train_bpe([build_prompt("ai2d", r) for r in rows] * 5, vocab_size=300)
    return root, build_vlm("tiny-qwen2vl", tokenizer=tok, seed=0)


class Killed(RuntimeError):
    pass


def test_killed_run_resumes_without_regenerating(world, tmp_path, monkeypatch):
    root, vlm = world
    full = predict(vlm, "ai2d", out_dir=tmp_path / "ref", data_root=root, model_name="m", batch_size=4,
                   max_new_tokens=5)
    calls = []
    real = type(vlm).generate

    def dying(self, batch, **kw):
        calls.append(len(batch))
        if len(calls) == 3:
            raise Killed("preempted")
        return real(self, batch, **kw)

    monkeypatch.setattr(type(vlm), "generate", dying)
    out = tmp_path / "run"
    with pytest.raises(Killed):
        predict(vlm, "ai2d", out_dir=out, data_root=root, model_name="m", batch_size=4, max_new_tokens=5)
    assert len(read_cache(out / "m_AI2D_TEST.cache.jsonl")) == 8  # two batches made it to disk
    with (out / "m_AI2D_TEST.cache.jsonl").open("a") as f:
        f.write('{"key": "torn')  # a kill in the middle of a line
    calls.clear()
    monkeypatch.setattr(type(vlm), "generate", real)
    spy = []
    monkeypatch.setattr(type(vlm), "generate",
                        lambda self, batch, **kw: spy.append(len(batch)) or real(self, batch, **kw))
    again = predict(vlm, "ai2d", out_dir=out, data_root=root, model_name="m", batch_size=4, max_new_tokens=5)
    assert sum(spy) == N - 8 and again["generated"] == N - 8 and again["cached"] == 8
    a = read_predictions(full["predictions"])
    b = read_predictions(again["predictions"])
    assert list(a["index"]) == list(b["index"]) == list(load_dataset("AI2D_TEST", root)["index"])
    assert list(a["prediction"].astype(str)) == list(b["prediction"].astype(str))
    assert "image" not in b.columns and set(b["prompt_style"]) == {"default"}

    # settings that change the answer never reuse it
    spy.clear()
    other = predict(vlm, "ai2d", out_dir=out, data_root=root, model_name="m", batch_size=4, max_new_tokens=5,
                    prompt_style="qwen2vl")
    assert other["generated"] == N and sum(spy) == N
    spy.clear()
    predict(vlm, "ai2d", out_dir=out, data_root=root, model_name="m", batch_size=4, max_new_tokens=5)
    assert sum(spy) == 0
    with torch.no_grad():  # "retrained" weights under the same name and directory
        next(vlm.model.parameters()).add_(1e-3)
    try:
        predict(vlm, "ai2d", out_dir=out, data_root=root, model_name="m", batch_size=4, max_new_tokens=5)
        assert sum(spy) == N
    finally:
        with torch.no_grad():
            next(vlm.model.parameters()).sub_(1e-3)


def test_evaluate_vlm_benchmarks_records_judge_and_style(world, tmp_path):
    root, vlm = world
    res = evaluate(vlm, ["ai2d", "mathvista", "mmvet"], out_dir=tmp_path / "ev", data_root=root, judge="none",
                   batch_size=6, prompt_style="qwen2vl", model_name="tiny", max_new_tokens=8, progress=False)
    assert res["ai2d"]["judge"] == "exact_matching" and res["ai2d"]["n"] == N
    assert res["ai2d"]["prompt_style"] == "qwen2vl"
    assert res["mmvet"]["overall"] is None and res["mmvet"]["status"] == "not_scored"
    assert res["mathvista"]["status"] == "prefetch_only" and res["mathvista"]["prefetch_rate"] is not None
    saved = json.loads((tmp_path / "ev" / "eval.json").read_text())["benchmarks"]
    assert saved["ai2d"]["overall"] == res["ai2d"]["overall"]
    assert (tmp_path / "ev" / "ai2d" / "tiny_AI2D_TEST.xlsx").exists()
    assert list((tmp_path / "ev" / "ai2d").glob("tiny_AI2D_TEST*acc.csv"))


def test_bench_vlm_eval_runs_both_sides_and_compares():
    from suite.bench.vlm_eval import bench

    res = bench(samples=8, batch=4, max_new_tokens=4, repeats=1)
    assert res["identical"] and res["mismatches"] == 0 and res["samples"] == 8
    assert res["batched_seconds"] > 0 and res["single_seconds"] > 0
    assert res["speed_ratio"] == pytest.approx(res["single_seconds"] / res["batched_seconds"], rel=0.05)


def test_predict_names_the_file_when_a_column_is_missing(tmp_path):
    write_vlm_fixture(tmp_path, "mmvet", n=2)
    tsv = tmp_path / "MMVet.tsv"
    import pandas as pd

    pd.read_csv(tsv, sep="\t", dtype=str).drop(columns=["question"]).to_csv(tsv, sep="\t", index=False)
    with pytest.raises(ValueError, match=r"MMVet.tsv: missing column\(s\) 'question'; expected index, image"):
        predict(None, "mmvet", out_dir=tmp_path / "o", data_root=tmp_path, model_name="m")


def test_bench_counts_empty_predictions(monkeypatch):
    # regression: an empty reply is read back from the TSV as NaN, and astype(str) made it "nan": never counted
    from suite.bench.vlm_eval import bench
    from suite.models.vlm import VLM

    monkeypatch.setattr(VLM, "generate", lambda self, batch, **kw: [""] * len(batch))
    res = bench(samples=4, batch=2, max_new_tokens=2, repeats=1)
    assert res["empty_predictions"] == 4 and res["identical"]
