"""Batched vs one-sample-at-a-time VLM generation on the same tiny model and benchmark file, in one run.

    suite bench vlm-eval --json                      # tiny-llava, 64 AI2D-format questions, batch 16
    suite bench vlm-eval --model tiny-qwen2vl --benchmark mathvista --samples 32

VLMEvalKit generates one sample at a time (its issue #32); `suite eval` batches with left padding. Both
sides run `suite.eval.vlm.generate.predict` with the cache off, so the ratio is the batching alone. Goal:
speed_ratio >= 4 at batch 16, and the greedy predictions identical (`identical`, `mismatches`).
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path


def bench(model: str = "tiny-llava", benchmark: str = "ai2d", samples: int = 64, batch: int = 16,
          max_new_tokens: int = 16, seed: int = 0, repeats: int = 3) -> dict:
    import pandas as pd

    from ..data.tokenizers import train_bpe
    from ..eval.vlm.fixtures import write_vlm_fixture
    from ..eval.vlm.generate import predict
    from ..eval.vlm.prompts import build_prompt
    from ..eval.vlm.tsv import benchmark_key, dataset_name, load_dataset, read_predictions
    from ..models.vlm import build_vlm

    key = benchmark_key(benchmark)
    with tempfile.TemporaryDirectory(prefix="suite-bench-vlm-") as tmp:
        root = Path(tmp)
        write_vlm_fixture(root, key, n=samples, seed=seed)
        rows = load_dataset(dataset_name(key), root).to_dict("records")
        tok = train_bpe([build_prompt(key, r) for r in rows] * 4, vocab_size=512)
        vlm = build_vlm(model, tokenizer=tok, seed=seed)
        common = dict(data_root=root, model_name=model, max_new_tokens=max_new_tokens, cache=False, fmt="tsv")
        predict(vlm, key, out_dir=root / "warmup", batch_size=batch, limit=batch, **common)  # allocator, kernels
        t_batched = t_single = float("inf")
        for _ in range(repeats):  # interleaved, best of `repeats`: load from other processes hits both sides
            t0 = time.perf_counter()
            batched = predict(vlm, key, out_dir=root / "batched", batch_size=batch, **common)
            t_batched = min(t_batched, time.perf_counter() - t0)
            t0 = time.perf_counter()
            single = predict(vlm, key, out_dir=root / "single", batch_size=1, **common)
            t_single = min(t_single, time.perf_counter() - t0)
        # an empty reply is an empty cell, read back as NaN: "" again, or astype(str) makes it "nan"
        a = read_predictions(batched["predictions"])["prediction"].fillna("").astype(str)
        b = read_predictions(single["predictions"])["prediction"].fillna("").astype(str)
        mismatches = int((a.reset_index(drop=True) != b.reset_index(drop=True)).sum())
        empty = int(pd.Series(a).str.len().eq(0).sum())
    return {
        "model": model, "benchmark": dataset_name(key), "samples": samples, "batch_size": batch,
        "max_new_tokens": max_new_tokens, "repeats": repeats, "batched_seconds": round(t_batched, 4),
        "single_seconds": round(t_single, 4), "speed_ratio": round(t_single / t_batched, 2),
        "samples_per_s_batched": round(samples / t_batched, 1), "identical": mismatches == 0,
        "mismatches": mismatches, "empty_predictions": empty, "goal_speed_ratio": 4.0,
    }
