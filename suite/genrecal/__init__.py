"""Vision-language distillation on the one training loop: GenRecal's three stages, SFT and same-tokenizer KD.

    suite sweep submit sweeps/genrecal_toy.yaml --executor local    # teacher, then per seed: baseline, SFT, KD,
    suite report analysis/genrecal_toy.yaml                         # GenRecal 1→2→3 (with and without L_reg)

A VLM cell is an ordinary cell whose student is a vision-language model (a tiny VLM name or a checkpoint) and
whose method is `genrecal` (methods/genrecal.py; the stage in `method.stage`), `supervised` (SFT on the
answers) or `kd` (same-tokenizer KD on the answers). Its `vlm:` section (config.VLMConfig) names the training
items and, for a stage, where it starts: `vlm.init` (the student weights) and `vlm.recalibrator`. In a grid, a
genrecal cell with `vlm.stages: [1, 2, 3]` becomes one cell per stage, each starting from the one before
(`cell:<id>` references, the dependency the sweep engine orders by), so stages are resumable cells.
"""
from __future__ import annotations

import copy
from typing import Any, Mapping

STAGES = (1, 2, 3)


def open_vlm_stage(*args, **kwargs):
    from .stage import open_vlm_stage as _open

    return _open(*args, **kwargs)


def is_vlm_cell(cfg) -> bool:
    """A cell the VLM stage trains: a genrecal method, a `vlm:` section, or a vision-language student."""
    from ..config import VLMConfig
    from ..methods import METHODS
    from ..models.vlm import is_vlm

    if getattr(METHODS.get(cfg.method.name), "vlm_only", False) or cfg.vlm != VLMConfig():
        return True
    return is_vlm(cfg.vlm.init or cfg.student) if not cfg.continual.stage else False


def check_config(cfg, source: str = "config") -> None:
    """Errors (ConfigError naming the key) for a VLM cell that cannot run."""
    from ..config import ConfigError
    from ..data.visual import KINDS
    from ..registry import did_you_mean

    v, name = cfg.vlm, cfg.method.name
    if name not in ("genrecal", "supervised", "kd"):
        raise ConfigError(f"{source}: vlm: method {name!r} does not train vision-language students; "
                          f"valid: genrecal, supervised (SFT), kd (same-tokenizer KD)")
    if cfg.continual.tasks:
        raise ConfigError(f"{source}: a cell is either a continual-learning stage or a VLM cell, not both")
    for k in v.kinds:
        if k not in KINDS:
            raise ConfigError(f"{source}: vlm.kinds: {k!r} is not a synthetic item kind{did_you_mean(k, KINDS)}; "
                              f"valid: {', '.join(KINDS)}")
    bad_stage = [s for s in v.stages if s not in STAGES]
    checks = [
        (v.train_items < 1 and not v.path, "train_items", "must be >= 1"),
        (v.heldout_items < 1, "heldout_items", "must be >= 1"),
        (v.epochs < 0, "epochs", "must be >= 0 (0: no training, the starting student is evaluated)"),
        (v.style not in ("default", "internvl", "qwen2vl"), "style", "must be default, internvl or qwen2vl"),
        (bool(bad_stage) or list(v.stages) != sorted(set(v.stages)), "stages",
         "must be increasing GenRecal stages from 1, 2, 3 (e.g. [1, 2, 3], or [2, 3] to skip stage 1)"),
        (bool(v.stages) and name != "genrecal", "stages", "only a genrecal cell has stages"),
        (bool(v.recalibrator) and name != "genrecal", "recalibrator", "only a genrecal cell has a Recalibrator"),
    ]
    for bad, key, msg in checks:
        if bad:
            raise ConfigError(f"{source}: vlm.{key}: {msg} (got {getattr(v, key)!r})")
    if name == "genrecal" and v.stages and cfg.method.params.get("stage", 1) not in v.stages:
        raise ConfigError(f"{source}: method.stage {cfg.method.params.get('stage', 1)} is not in vlm.stages "
                          f"{list(v.stages)}")


# ----------------------------------------------------------------------------- grids: one cell per stage


def expand_stages(cell: Mapping[str, Any]) -> list[dict] | None:
    """One cell per stage for a raw grid cell with method genrecal, `vlm.stages` and no explicit method.stage."""
    method = cell.get("method")
    vlm = cell.get("vlm")
    if not isinstance(method, Mapping) or method.get("name") != "genrecal" or not isinstance(vlm, Mapping):
        return None
    stages = vlm.get("stages")
    if not stages or "stage" in method or "stage" in (method.get("params") or {}):
        return None
    if not isinstance(stages, (list, tuple)):
        raise ValueError(f"vlm.stages: expected a list such as [1, 2, 3], got {stages!r}")
    if any(s not in STAGES for s in stages) or list(stages) != sorted(set(stages)):  # before method.stage sees them
        raise ValueError(f"vlm.stages: must be increasing GenRecal stages from 1, 2, 3 (e.g. [1, 2, 3], or [2, 3] "
                         f"to skip stage 1) (got {list(stages)!r})")
    out = []
    for s in stages:
        c = copy.deepcopy(dict(cell))
        c["method"] = {**copy.deepcopy(dict(method)), "stage": s}
        if out:  # linked to the previous stage when the grid builds it
            c["vlm"] = {k: val for k, val in c["vlm"].items() if k not in ("init", "recalibrator")}
        out.append(c)
    return out


def link_stage(cell: dict, parent) -> None:
    """Stage cell `cell` (raw dict) starts from `parent` (a built sweep Cell): its student weights, and its
    Recalibrator when the parent trained one (stages 1 and 2)."""
    from ..sweep.grid import TEACHER_REF as CELL_REF

    cell["vlm"]["init"] = CELL_REF + parent.id
    if parent.config.method.params.get("stage", 1) in (1, 2) and cell["method"]["stage"] in (1, 2):
        cell["vlm"]["recalibrator"] = CELL_REF + parent.id


def stage_name(cfg, teacher_label: str | None) -> str:
    """'genrecal-k2-regce+kl-Ttiny-llava-m-Stiny-qwen2vl-e2-s0': method and stage, regularization, models, epochs."""
    from ..sweep.grid import _size_label

    p = cfg.method.params
    parts = [cfg.method.name]
    if cfg.method.name == "genrecal":
        parts.append(f"k{p.get('stage', 1)}")
        parts.append(f"reg{p.get('regularization', 'ce+kl')}")
    elif cfg.method.name == "kd":
        parts.append(str(p.get("divergence", "forward_kl")))
    if teacher_label:
        parts.append("T" + teacher_label)
    parts += ["S" + _size_label(cfg.student), f"e{cfg.vlm.epochs:g}", f"s{cfg.train.seed}"]
    return "-".join(parts)


__all__ = ["open_vlm_stage", "is_vlm_cell", "check_config", "expand_stages", "link_stage", "stage_name", "STAGES"]
