"""Continual learning with general-sample replay (GeRe) and its baselines, on the one training loop.

    suite sweep submit sweeps/gere_toy.yaml --executor local      # base model, then 5 tasks per method × seed
    suite report analysis/gere_toy.yaml

A stage is an ordinary cell with a `continual` section (config.py: ContinualConfig) and a continual method
(methods/gere.py: seq-ft, replay, replay-kl, replay-l1, replay-l2, gere); the loop asks `open_stage` for its
data, model and end-of-stage scores (stage.py). Tasks: tasks.py; the base snapshot: snapshot.py; metrics:
metrics.py; grids: sequence.py.
"""
from __future__ import annotations

from .metrics import harmonic_mean, sequence_metrics, task_accuracy
from .sequence import expand_sequence, stage_name
from .snapshot import Snapshot, build_snapshot, disk_blocks, moments, state_of, stream_moments
from .tasks import OLORA_TASKS, SEQUENCES, Example, Task, load_task, sequence_tasks


def open_stage(*args, **kwargs):
    from .stage import open_stage as _open

    return _open(*args, **kwargs)


def check_config(cfg, source: str = "config") -> None:
    """Errors (ConfigError, naming the key) for a continual section or method that cannot run."""
    from ..config import ConfigError
    from ..methods import METHODS

    c, name = cfg.continual, cfg.method.name
    continual = [n for n, m in METHODS.items() if getattr(m, "continual", False)]
    if not getattr(METHODS.get(name), "continual", False):
        raise ConfigError(f"{source}: continual: method {name!r} does not train continual-learning stages; "
                          f"valid: {', '.join(continual)}")
    if not c.tasks:
        raise ConfigError(f"{source}: method {name!r} trains continual-learning stages: set continual.tasks "
                          f"(a preset such as {', '.join(SEQUENCES.names())}, or task names joined by commas)")
    try:
        names = sequence_tasks(c.tasks)
    except ValueError as e:
        raise ConfigError(f"{source}: continual.tasks: {e}") from None
    checks = [
        (not 0 <= c.stage <= len(names), "stage", f"must be in 1..{len(names)} (the sequence's tasks)"),
        (c.epochs <= 0, "epochs", "must be > 0"),
        (c.replay < 0, "replay", "must be >= 0"),
        (c.replay_len < 2, "replay_len", "must be >= 2"),
        (not 0 <= c.replay_per_batch < cfg.train.batch_size, "replay_per_batch",
         f"must be in [0, train.batch_size = {cfg.train.batch_size})"),
        (c.lora < 0, "lora", "must be >= 0 (0: full fine-tuning)"),
        (c.max_source_len < 2, "max_source_len", "must be >= 2 (BOS and a prompt token)"),
        (c.max_target_len < 1, "max_target_len", "must be >= 1"),
        (any(not n.startswith("syn-") for n in names) and not c.data_dir, "data_dir",
         "the O-LoRA tasks are read from files: set it to the CL_Benchmark directory"),
    ]
    for bad, key, msg in checks:
        if bad:
            raise ConfigError(f"{source}: continual.{key}: {msg} (got {getattr(c, key)!r})")


__all__ = ["open_stage", "check_config", "expand_sequence", "stage_name", "Snapshot", "build_snapshot", "moments",
           "stream_moments", "disk_blocks", "state_of", "harmonic_mean", "sequence_metrics", "task_accuracy",
           "OLORA_TASKS", "SEQUENCES",
           "Example", "Task", "load_task", "sequence_tasks"]
