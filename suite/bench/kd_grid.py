"""`suite bench kd-grid`: four KD students of one teacher, with and without the teacher-output cache.

    suite bench kd-grid --json     # a tiny-2M teacher trained here on 1M tokens, 4 students, k = 64, 128, V
    suite bench kd-grid --teacher runs/t/model --students tiny-0.03M,tiny-0.05M --tokens 500k

Each arm trains the same four cells (same students, data, seeds) through the one training loop, one after
another in this process: `uncached` recomputes the teacher's forward at every step of every cell (the default),
`k=K` runs `method.teacher_cache: topk` with `cache_k: K` in a fresh cache directory, so its first cell writes
the teacher's top-k and the other three read it. Printed: each arm's wall time, the speed-up (uncached time
over cached time) and the largest |difference| in final held-out loss between a cached cell and its uncached
twin, keyed by k ("V": the whole vocabulary, stored in float32: the same loss up to float rounding). The
teacher trains once before the timed arms (or is given), and its held-out loss is measured in each arm as a
cell would (once per cell uncached, once per grid cached).
"""
from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path


def _cell(student: str, teacher: str, tokens: str, seq_len: int, batch: int, seed: int, method: dict):
    from ..config import config_from_dict

    return config_from_dict({
        "name": f"kd-{student}", "student": student, "teacher": teacher, "method": method,
        "data": {"kind": "synthetic", "language": "facts", "seq_len": seq_len, "heldout_examples": 64},
        "optim": {"lr": 4e-3, "schedule": "cosine"},
        # the held-out loss once, at the end, and one checkpoint: the default 10 of each over a 49-step toy run
        # would be a quarter of its time, spent alike in both arms (a real run has thousands of steps)
        "train": {"tokens": tokens, "batch_size": batch, "seed": seed, "eval_batch_size": 32,
                  "eval_interval": 10**9, "checkpoint_interval": 10**9}})


def bench(teacher: str | None = None, teacher_model: str = "tiny-2M", teacher_tokens: str = "1M",
          students: tuple[str, ...] = ("tiny-0.01M", "tiny-0.02M", "tiny-0.03M", "tiny-0.05M"),
          tokens: str = "100k", ks: tuple = (64, 128, "V"), seq_len: int = 128, batch: int = 16,
          workdir: str | None = None, keep: bool = False, cache_dtype: str = "float16") -> dict:
    import os

    from ..train.loop import train

    root = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="suite-kd-grid-"))
    root.mkdir(parents=True, exist_ok=True)
    old_env = os.environ.pop("SUITE_TEACHER_CACHE", None)
    try:
        t0 = time.perf_counter()
        if teacher is None and (root / "teacher" / "result.json").exists():   # --workdir of an earlier run
            teacher = str(root / "teacher" / "model")
        if teacher is None:
            tcfg = _cell(teacher_model, None, teacher_tokens, seq_len, batch, 0, "supervised")
            train(tcfg, root / "teacher", progress=False)
            teacher = str(root / "teacher" / "model")
        out = {"teacher": teacher, "students": list(students), "tokens": tokens, "seq_len": seq_len,
               "teacher_setup_s": round(time.perf_counter() - t0, 2)}

        def arm(name: str, method: dict) -> tuple[float, dict]:
            arm_dir = root / name
            shutil.rmtree(arm_dir, ignore_errors=True)
            start = time.perf_counter()
            res = {s: train(_cell(s, teacher, tokens, seq_len, batch, 0, method), arm_dir / s, progress=False)
                   for s in students}
            return time.perf_counter() - start, res

        # warm-up: a few steps of one cell, so imports and first-call costs land in neither timed arm
        shutil.rmtree(root / "warmup", ignore_errors=True)
        train(_cell(students[0], teacher, str(max(batch * seq_len, 16384)), seq_len, batch, 0, {"name": "kd"}),
              root / "warmup", progress=False)
        base_s, base = arm("uncached", {"name": "kd"})
        out["uncached_s"] = round(base_s, 2)
        out["speedup"], out["max_abs_loss_diff"], out["cached_s"], out["cache"] = {}, {}, {}, {}
        for k in ks:
            full = k == "V"
            method = {"name": "kd", "teacher_cache": "topk", "cache_k": 1 << 30 if full else int(k),
                      "cache_dtype": "float32" if full else cache_dtype}
            secs, res = arm(f"k{k}", method)
            key = str(k)
            out["cached_s"][key] = round(secs, 2)
            out["speedup"][key] = round(base_s / secs, 3)
            out["max_abs_loss_diff"][key] = max(abs(res[s]["loss"] - base[s]["loss"]) for s in students)
            caches = [res[s].get("teacher_cache") or {} for s in students]
            out["cache"][key] = {"k": caches[0].get("k"), "dtype": caches[0].get("dtype"),
                                 "modes": [c.get("mode") for c in caches], "bytes": caches[0].get("bytes"),
                                 "teacher_flops_paid": sum(res[s]["flops"]["teacher_logits"] for s in students),
                                 "teacher_flops_per_cell": sum(res[s]["flops"].get("teacher_logits_per_cell", 0)
                                                               for s in students)}
        out["goal"] = "speedup at k=128 >= 1.8, max_abs_loss_diff <= 0.01 at k=128 and ~0 at k=V"
        out["goal_met"] = (out["speedup"].get("128", 0) >= 1.8 and out["max_abs_loss_diff"].get("128", 1) <= 0.01
                           and out["max_abs_loss_diff"].get("V", 1) <= 1e-3)
        return out
    finally:
        if old_env is not None:
            os.environ["SUITE_TEACHER_CACHE"] = old_env
        if not keep and not workdir:
            shutil.rmtree(root, ignore_errors=True)
