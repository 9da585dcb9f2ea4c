"""A continual-learning sequence in a grid: one cell per task, each starting from the previous one's model.

    cells:
      base: {set: {student: tiny-0.5M, method: supervised, train: {tokens: 1M}}}
      gere:
        axes: {method: [seq-ft, replay, gere], train.seed: [0, 1]}
        set: {continual: {tasks: synthetic-5, init: "@base"}}      # -> 3 × 2 chains of 5 stage cells

A grid cell whose `continual.tasks` is set and `continual.stage` is not becomes K stage cells (stage 1..K).
Stage 1 starts from `continual.init` ("@group": that one-cell group, trained first; or a path / HF id);
stage k from stage k − 1, written `init: cell:<id>` so a stage's identity follows the whole chain before it
(like a student's follows its teacher's). `continual.base` (the model of the replay snapshot) defaults to
stage 1's init for every stage. The sweep engine treats the previous stage as the cell's dependency (the
field it uses for teachers), so stages run in order on every executor and a failed stage fails the rest.
"""
from __future__ import annotations

import copy
from typing import Any, Mapping

from ..refs import CELL_REF, size_label
from .tasks import sequence_tasks


def expand_sequence(cell: Mapping[str, Any]) -> list[dict] | None:
    """K stage cells for a raw grid cell with `continual.tasks` and no `continual.stage`; else None."""
    cont = cell.get("continual")
    if not isinstance(cont, Mapping) or not cont.get("tasks") or cont.get("stage"):
        return None
    names = sequence_tasks(cont["tasks"])
    init = cont.get("init")
    base = cont.get("base")
    if isinstance(base, str) and base.startswith("@"):
        raise ValueError("continual.base takes a path or HF id; in a grid it defaults to the chain's first init")
    out = []
    for k in range(1, len(names) + 1):
        c = copy.deepcopy(dict(cell))
        c["continual"] = {**copy.deepcopy(dict(cont)), "stage": k}
        if k > 1:
            c["continual"].pop("init", None)  # set to the previous stage when the chain is linked
        elif base is None and isinstance(init, str) and not init.startswith("@"):
            c["continual"]["base"] = init
        out.append(c)
    return out


def init_ref(cell: Mapping[str, Any]) -> str | None:
    """The group a stage-1 cell starts from ("@group" -> "group"), if it names one."""
    init = (cell.get("continual") or {}).get("init")
    return init[1:] if isinstance(init, str) and init.startswith("@") else None


def link_stage(cell: dict, parent) -> None:
    """Point stage cell `cell` (a raw dict) at `parent` (a built sweep Cell): its init, and the chain's base."""
    cont = cell["continual"]
    cont["init"] = CELL_REF + parent.id
    if not cont.get("base"):
        pc = parent.config.continual
        cont["base"] = (pc.base or pc.init) if pc.stage else CELL_REF + parent.id


def stage_name(cfg) -> str:
    """'gere-wdy-lora8-k3-syn-3-S0.5M-s1': method (its weight, LoRA rank), stage and task, model size, seed."""
    c = cfg.continual
    task = sequence_tasks(c.tasks)[c.stage - 1]
    w = cfg.method.params.get("weight")
    method = cfg.method.name + (f"-w{w:g}" if isinstance(w, (int, float)) else f"-w{w}" if w else "")
    method += f"-lora{c.lora}" if c.lora else ""
    return f"{method}-k{c.stage}-{task}-S{size_label(cfg.student)}-s{cfg.train.seed}"
