"""The result record: what `result.json` holds, the contract between training and everything that reads a run
(`suite sweep collect` flattens it into results.parquet, with dots joining nested keys; `suite fit` and
`suite report` read its columns).

CORE lists the fields every cell writes, with their meaning; a stage adds its own beside them (its `finish`):
    continual.*   a continual-learning stage (suite/continual/stage.py: accuracy per task, history, F1 retention, ...)
    vlm.*         a vision-language cell (suite/vlm/stage.py: method, stage, items, Recalibrator terms, ...)
    teacher_cache.*   a KD cell reading a teacher-output cache (suite/train/teacher_cache.py: key, mode hit /
                  write / mixed, shards written and read, bytes on disk); its flops.teacher_logits then counts only
                  the teacher forwards it ran, flops.teacher_logits_per_cell what it would have run without
and `benchmarks.<name>.*` holds each `eval:` benchmark's numbers (suite/eval). The loop checks its record
against CORE before writing it, so a field is never renamed or dropped by accident.
"""
from __future__ import annotations

from typing import Any, Mapping

# name -> meaning (units). None is allowed where the meaning says so.
CORE: dict[str, str] = {
    "cell_id": "content hash of the cell's config (sweep/grid.py, config.cell_id)",
    "name": "the cell's readable name",
    "method": "method registry key (kd, supervised, genrecal, gere, ...)",
    "method_params": "the method's parameters as configured (what the cell id hashes)",
    "method_params_resolved": "every parameter of the method, defaults filled in: what the loss used",
    "student": "student model: tiny name, Hugging Face id or path",
    "teacher": "teacher model or `cell:<id>` reference; None without one",
    "N_S": "student non-embedding parameters (a VLM: its language model's)",
    "N_T": "teacher non-embedding parameters; None without a teacher",
    "N_S_total": "student parameters with embeddings; None for a VLM",
    "N_T_total": "teacher parameters with embeddings; None without a text teacher",
    "D_S": "tokens the student trained on",
    "D_T": "tokens the teacher trained on, when it is a run of this suite; else None",
    "loss": "held-out loss at the end (nats/token; a VLM: answer CE per answer token)",
    "loss_stderr": "standard error of `loss` over held-out sequences; None where not measured",
    "L_T": "the teacher's held-out loss on the student's data; None without a text teacher",
    "bayes_loss": "irreducible loss of synthetic data (train split); None for real text",
    "bayes_loss_heldout": "irreducible loss of the held-out split; None for real text",
    "benchmarks": "{benchmark: numbers} of the cell's `eval:` list; {} without one",
    "flops": "{student_train, teacher_logits, total, ...} training FLOPs (Kaplan's count)",
    "steps": "optimizer steps",
    "lr": "peak learning rate after width scaling",
    "warmup_steps": "warmup steps",
    "batch_size": "examples per optimizer step, over all processes",
    "seq_len": "tokens per example; None for a VLM",
    "heldout_tokens": "held-out tokens the loss averages; None for a VLM",
    "world_size": "processes",
    "rank_hosts": "host of each rank",
    "nodes": "the distinct hosts",
    "device": "cpu or cuda",
    "precision": "fp32, bf16 or fp16",
    "wall_clock_s": "training wall time over all attempts (seconds; work after a killed attempt's last "
                    "checkpoint is not counted)",
    "wall_clock_s_this_attempt": "wall time of the attempt that finished",
    "resumed_from_step": "the step this attempt resumed from; None for an uninterrupted run",
    "tokens_per_s": "training throughput over the log windows after the first",
    "mfu": "model FLOPs utilisation; None on CPU or where FLOPs are not per token",
    "peak_flops": "the device's peak FLOP/s at this precision; None on CPU",
    "model_shape": "{n_layers, d_model, vocab_size, ...} of the student",
    "versions": "package versions",
    "git_revision": "the suite's git revision, when known",
    "config": "the whole cell config, resolved",
    "finished_at": "local time the record was written",
}


def check_result(result: Mapping[str, Any]) -> None:
    """Raise if a core field is missing: a bug in the loop or a stage, caught before result.json is written."""
    missing = [k for k in CORE if k not in result]
    if missing:
        raise RuntimeError(f"result record lacks core field(s) {', '.join(missing)} (suite/train/result.py)")
