"""Vision-language distillation on the one training loop: GenRecal's three stages, LLaVA-KD's, SFT and KD.

    suite sweep submit sweeps/genrecal_toy.yaml --executor local    # teacher, then per seed: baseline, SFT, KD,
    suite report analysis/genrecal_toy.yaml                         # GenRecal 1→2→3 (with and without L_reg)

A VLM cell is an ordinary cell whose student is a vision-language model (a tiny VLM name or a checkpoint) and
whose method is `genrecal` (the stage in `method.stage`), `llavakd` (LLaVA-KD: DPT, SFT, DFT, the stage in
`method.stage`; llavakd.py), `supervised` (SFT on the answers), `kd` (same-tokenizer KD on the answers) or an
on-policy baseline (onpolicy.py). Its `vlm:` section (config.py here: VLMConfig) names the training items and,
for a stage, where it starts: `vlm.init` (the student weights) and `vlm.recalibrator` (GenRecal). In a grid, a
genrecal or llavakd cell with `vlm.stages: [1, 2, 3]` becomes one cell per stage, each starting from the one
before (`cell:<id>` references, the dependency the sweep engine orders by), so stages are resumable cells; a
llavakd stage that distils from no teacher (2, SFT) drops the cell's teacher, so it neither waits for nor hashes it.

Everything GenRecal is in this package: what a VLM method is to the stage (base.py: VLMMethod, its loss and what
the stage would otherwise ask by name), the Recalibrator and the losses (method.py), the `vlm:` section and its
checks (config.py), the synthetic visual-instruction items (items.py), the VLM stage the loop runs, shared with
the SFT and KD baselines (stage.py), and the grid expansion into stages (below). It is a `suite.plugins`
package: importing it registers the methods `genrecal`, `llavakd`, `minillm`, `distillm`, the VLM forms of
`supervised` and `kd`, and the section `vlm`. A new VLM loss is one module with a VLMMethod class, imported here.
"""
from __future__ import annotations

import copy
from typing import Any, Mapping

from ..config import SECTIONS, Section
from ..refs import CELL_REF, size_label
from .base import VLMMethod, vlm_class
from .method import GenRecal, Recalibrator  # registering the method genrecal (and the VLM forms of supervised, kd)
from .onpolicy import DistiLLM, MiniLLM  # registering minillm and distillm
from .llavakd import LLaVAKD  # registering llavakd
from .config import STAGES, VLMConfig, answer_source, check_config, claims, hash_view, reads_teacher



def open_vlm_stage(*args, **kwargs):
    from .stage import open_vlm_stage as _open  # transformers' VLM classes: when a stage runs

    return _open(*args, **kwargs)


def is_vlm_cell(cfg) -> bool:
    """A cell the VLM stage trains: a genrecal method, a `vlm:` section, or a vision-language student."""
    from ..models.vlm import is_vlm  # transformers' VLM classes: only when a cell asks

    if claims(cfg) or "vlm" in cfg.sections:
        return True
    return is_vlm(cfg.vlm.init or cfg.student) if not cfg.continual.stage else False


def _owns(cfg, method) -> bool:
    return is_vlm_cell(cfg)


def _stage_hook(cfg, method, out, device, env, *, teacher_path=None, autocast=None):
    return open_vlm_stage(cfg, method, out, device, env, teacher_path)


def is_vlm_config(cfg) -> bool:
    """The grid's rule, from the config alone (no model is read): a `vlm:` section, or method genrecal. Such a
    cell is named as a VLM stage and brings its models' own tokenizers."""
    return "vlm" in cfg.sections or cfg.method.name == "genrecal"


def _first_parent(stage: Mapping[str, Any]) -> str | None:
    """The first stage starts from its teacher's group (a LLaVA-KD SFT stage has none)."""
    t = stage.get("teacher")
    return t[1:] if isinstance(t, str) and t.startswith("@") else None


def _name(cfg, teacher_label: str | None) -> str | None:
    if not is_vlm_config(cfg):
        return None
    form = vlm_class(cfg.method.name)
    return cfg.name or stage_name(cfg, teacher_label if form is None or form.names_teacher else None)


SECTIONS.register("vlm", Section(VLMConfig, check_config, claims, owns=_owns, stage=_stage_hook,
                                 reads_teacher=reads_teacher, hash_view=hash_view,
                                 expand=lambda cell: expand_stages(cell), first_parent=_first_parent,
                                 link=lambda cell, parent: link_stage(cell, parent), name=_name,
                                 own_vocabulary=is_vlm_config))


# ----------------------------------------------------------------------------- grids: one cell per stage


def expand_stages(cell: Mapping[str, Any]) -> list[dict] | None:
    """One cell per stage for a raw grid cell with a staged method (genrecal, llavakd), `vlm.stages` and no
    explicit method.stage. A llavakd stage without a teacher (SFT) leaves the cell's teacher out, unless the
    cell reads it for its answers (vlm.answers: teacher)."""
    method = cell.get("method")
    vlm = cell.get("vlm")
    form = vlm_class(method.get("name") if isinstance(method, Mapping) else None)
    if form is None or not form.staged or not isinstance(vlm, Mapping):
        return None
    name = method["name"]
    stages = vlm.get("stages")
    if not stages or "stage" in method or "stage" in (method.get("params") or {}):
        return None
    if not isinstance(stages, (list, tuple)):
        raise ValueError(f"vlm.stages: expected a list such as [1, 2, 3], got {stages!r}")
    if any(s not in STAGES for s in stages) or list(stages) != sorted(set(stages)):  # before method.stage sees them
        raise ValueError(f"vlm.stages: must be increasing stages from 1, 2, 3 (e.g. [1, 2, 3], or [2, 3] "
                         f"to skip stage 1) (got {list(stages)!r})")
    out = []
    for s in stages:
        c = copy.deepcopy(dict(cell))
        c["method"] = {**copy.deepcopy(dict(method)), "stage": s}
        if out:  # linked to the previous stage when the grid builds it
            c["vlm"] = {k: val for k, val in c["vlm"].items() if k not in ("init", "recalibrator")}
        # GenRecal keeps its teacher in stage 3 (it writes the answers there by default: answer_source); a
        # llavakd SFT stage has no use for one
        if name == "llavakd" and not LLaVAKD.requires_teacher(c["method"]) and not reads_teacher(c):
            c.pop("teacher", None)
        out.append(c)
    return out


def link_stage(cell: dict, parent) -> None:
    """Stage cell `cell` (raw dict) starts from `parent` (a built sweep Cell): its student weights, and for
    GenRecal its Recalibrator when the parent trained one (stages 1 and 2)."""
    cell["vlm"]["init"] = CELL_REF + parent.id
    if cell["method"]["name"] != "genrecal":
        return
    if parent.config.method.params.get("stage", 1) in (1, 2) and cell["method"]["stage"] in (1, 2):
        cell["vlm"]["recalibrator"] = CELL_REF + parent.id


def stage_name(cfg, teacher_label: str | None) -> str:
    """'genrecal-k2-regce+kl-Ttiny-llava-m-Stiny-qwen2vl-e2-s0', 'llavakd-k1-Ttiny-llava-m-Stiny-llava-e2-s0':
    method and stage (GenRecal: its regularization), models, epochs, seed."""
    form = vlm_class(cfg.method.name)
    parts = [cfg.method.name, *(form.name_parts(cfg.method.params) if form is not None else [])]
    if teacher_label:
        parts.append("T" + teacher_label)
    source = answer_source(cfg)
    if source != "short":  # App. F: trained on detailed (the world's) or teacher-written answers
        parts.append(f"a{source}")
    parts += ["S" + size_label(cfg.student), f"e{cfg.vlm.epochs:g}", f"s{cfg.train.seed}"]
    return "-".join(parts)


__all__ = ["GenRecal", "Recalibrator", "MiniLLM", "DistiLLM", "LLaVAKD", "VLMConfig", "VLMMethod", "vlm_class",
           "open_vlm_stage", "is_vlm_cell", "check_config", "expand_stages", "link_stage", "stage_name", "STAGES"]
