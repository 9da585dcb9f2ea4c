"""Continual-learning metrics: task accuracy by exact match of the generated label, AP, forgetting, F1.

    acc = task_accuracy(lm, tok, task, encoder, limit=200)      # greedy generation, exact match of the label
    summary = sequence_metrics(history, mmlu=0.41)               # ap, forgetting, retention, f1, f1_retention

`history` is one row per stage, oldest first: {"stage": k, "task": name, "accuracy": {task: acc},
"general_loss": L}; row 0 is the base model before the first task (no accuracies). After stage k:
  * AP (average performance): mean accuracy over the tasks learned so far, a_{k,j} for j <= k;
  * forgetting: mean over j < k of (best earlier accuracy on task j) - a_{k,j} (Chaudhry et al. 2018);
  * general retention: exp(L_base - L), the base model's perplexity over the current one on the general
    held-out text (1 = as good as the base, below 1 = general ability lost);
  * F1: the harmonic mean of MMLU accuracy and AP, the GeRe paper's F1; only for a stage that measured MMLU
    (None otherwise). `f1_retention` is the same mean with the general retention in MMLU's place: a loss-based
    score of our own, available for every stage, not comparable to the paper's F1.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from .tasks import Task


def harmonic_mean(a: float | None, b: float | None) -> float | None:
    """2ab / (a + b); None when either is missing (None or NaN: a stage without MMLU, a task without test
    rows), 0 when either is <= 0."""
    if a is None or b is None or math.isnan(a) or math.isnan(b):
        return None
    if not (a > 0 and b > 0):
        return 0.0
    return 2.0 * a * b / (a + b)


def sequence_metrics(history: Sequence[dict], mmlu: float | None = None) -> dict:
    """AP, forgetting, retention, F1 (with the stage's MMLU accuracy) and F1 of the retention after the last row
    of `history` (see the module docstring)."""
    last = history[-1]
    acc = last.get("accuracy") or {}
    ap = float(np.mean(list(acc.values()))) if acc else None
    drops = []
    for task, a_now in acc.items():
        earlier = [h["accuracy"][task] for h in history[:-1] if task in (h.get("accuracy") or {})]
        if earlier:
            drops.append(max(earlier) - a_now)
    base = history[0].get("general_loss")
    cur = last.get("general_loss")
    retention = math.exp(base - cur) if base is not None and cur is not None else None
    return {"ap": ap, "forgetting": float(np.mean(drops)) if drops else 0.0, "general_retention": retention,
            "f1": harmonic_mean(mmlu, ap), "f1_retention": harmonic_mean(retention, ap)}


@torch.no_grad()
def task_accuracy(lm, tokenizer, task: Task, encode_prompt, *, limit: int | None = None, batch_size: int = 32,
                  device="cpu") -> tuple[float, int]:
    """Greedy generation after each test prompt; correct when the text up to EOS equals the label (stripped).

    At most (longest label in tokens + 1) new tokens are generated: a longer continuation cannot change
    the verdict, since the label must be followed by EOS (the reference generates up to its 50 target tokens).
    """
    examples = task.test[:limit] if limit else task.test
    if not examples:
        return float("nan"), 0
    prompts = [encode_prompt(task.prompt(ex.sentence)) for ex in examples]
    max_new = max(len(tokenizer(lbl, add_special_tokens=False)["input_ids"]) for lbl in task.labels) + 1
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    eos = tokenizer.eos_token_id
    order = np.argsort([len(p) for p in prompts], kind="stable")  # similar lengths together: less padding
    was_training = lm.training
    lm.eval()
    correct = 0
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        width = max(len(prompts[i]) for i in idx)
        ids = torch.full((len(idx), width), pad, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for r, i in enumerate(idx):  # left padding: every prompt ends where generation starts
            ids[r, width - len(prompts[i]):] = torch.as_tensor(prompts[i])
            mask[r, width - len(prompts[i]):] = 1
        out = lm.generate(input_ids=ids.to(device), attention_mask=mask.to(device), max_new_tokens=max_new,
                          do_sample=False, pad_token_id=pad, eos_token_id=eos)
        for r, i in enumerate(idx):
            gen = out[r, width:].tolist()
            if eos in gen:
                gen = gen[:gen.index(eos)]
            text = tokenizer.decode(gen, skip_special_tokens=True).strip()
            correct += int(text == examples[i].label.strip())
    lm.train(was_training)
    return correct / len(examples), len(examples)
