"""Continual learning with general-sample replay (GeRe) and its baselines, on the one training loop.

    suite sweep submit sweeps/gere_toy.yaml --executor local      # base model, then 5 tasks per method × seed
    suite report analysis/gere_toy.yaml

A stage is an ordinary cell with a `continual` section (config.py here: ContinualConfig) and a continual method
(methods.py: seq-ft, replay, replay-kl, replay-l1, replay-l2, gere); the loop asks `open_stage` for its data,
model and end-of-stage scores (stage.py). Tasks: tasks.py; GeRe's base snapshot and activation states:
snapshot.py; metrics: metrics.py; grids: sequence.py. Everything GeRe is in this package; it is a
`suite.plugins` package: importing it registers the six methods and the section `continual`.
"""
from __future__ import annotations

from typing import Mapping

from ..config import SECTIONS, Section
from . import methods  # noqa: F401  (registers gere, seq-ft, replay, replay-kl, replay-l1, replay-l2)
from .config import ContinualConfig, check_config, claims
from .metrics import harmonic_mean, sequence_metrics, task_accuracy
from .sequence import expand_sequence, init_ref, link_stage, stage_name
from .snapshot import Snapshot, build_snapshot, disk_blocks, moments, state_of, stream_moments
from .tasks import OLORA_TASKS, SEQUENCES, Example, Task, load_task, sequence_tasks


def open_stage(*args, **kwargs):
    from .stage import open_stage as _open  # torch, peft: when a stage runs

    return _open(*args, **kwargs)


def owns(cfg, method) -> bool:
    """The cells the continual stage trains: a stage of a sequence, or any cell of a continual method."""
    return bool(cfg.continual.stage or getattr(method, "continual", False))


def _stage_hook(cfg, method, out, device, env, *, teacher_path=None, autocast=None):
    return open_stage(cfg, method, out, device, env, autocast, teacher_path=teacher_path)


def _expand(cell) -> list[dict] | None:
    try:
        return expand_sequence(cell)
    except ValueError as e:
        raise ValueError(f"continual: {e}") from None


def _is_stage(cell) -> bool:
    """A raw grid cell that is one stage of a sequence (it starts from the cell its `continual.init` names)."""
    cont = cell.get("continual")
    return isinstance(cont, Mapping) and bool(cont.get("stage"))


def _name(cfg, teacher_label) -> str | None:
    return (cfg.name or stage_name(cfg)) if cfg.continual.stage else None


SECTIONS.register("continual", Section(ContinualConfig, check_config, claims, owns=owns, stage=_stage_hook,
                                       expand=_expand, first_parent=init_ref, is_stage=_is_stage,
                                       link=link_stage, links_first=True, name=_name))


__all__ = ["ContinualConfig", "open_stage", "check_config", "expand_sequence", "stage_name", "Snapshot",
           "build_snapshot", "moments", "stream_moments", "disk_blocks", "state_of", "harmonic_mean",
           "sequence_metrics", "task_accuracy", "OLORA_TASKS", "SEQUENCES", "Example", "Task", "load_task",
           "sequence_tasks"]
