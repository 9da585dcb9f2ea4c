"""Grids: a YAML file of named cell groups, expanded into cells with content-hash ids.

    suite sweep submit sweeps/quickstart.yaml --dry-run --json

    name: quickstart
    include: [base.yaml]               # merged underneath this file (defaults, resources, cells)
    defaults: {data: {seq_len: 128}}   # a partial cell config under every cell
    resources: {timeout_min: 30, cpus_per_task: 2}
    cells:
      teacher:                         # a group; `set` is merged over the defaults
        set: {student: tiny-2M, train: {tokens: 1.5M}}
      students:
        mode: product                  # product (default) | zip
        axes:                          # dotted config keys -> lists of values
          student: [tiny-0.1M, tiny-1M]
          method: [supervised, kd]
        set: {teacher: "@teacher"}     # "@GROUP" (a one-cell group) or "@CELL-NAME": trained first
        overrides:                     # per-axis-value patches
          student: {tiny-1M: {optim: {lr: 2.0e-3}}}
        resources: {cpus_per_task: 1}

A teacher reference becomes `teacher: cell:<id>` in the student's config, so identity follows the
teacher's content, not its path; the runner resolves it to `<sweep dir>/<id>/model`. Methods that need
no teacher drop the key, so a supervised baseline does not wait for (or hash) a teacher.
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Mapping

from ..config import (AT_LEAST_1, NON_NEGATIVE, POSITIVE, SECTIONS, CellConfig, ConfigError, build_dataclass,
                      config_from_dict, read_yaml_mapping, set_dotted)
from ..refs import CELL_REF, size_label
from ..registry import did_you_mean

TEACHER_REF = CELL_REF  # "cell:<id>" (refs.py)
_GRID_KEYS = {"name", "include", "defaults", "resources", "cells"}
_GROUP_KEYS = {"set", "axes", "mode", "overrides", "resources"}


@dataclass(frozen=True)
class Resources:
    """What one cell asks of the executor. Cells with equal resources (and teachers) share a job array."""

    timeout_min: Annotated[int, AT_LEAST_1] = 60     # always set: submitit's defaults are 2 min (local), 5 (Slurm)
    cpus_per_task: Annotated[int, AT_LEAST_1] = 2
    gpus_per_node: Annotated[int, NON_NEGATIVE] = 0
    tasks_per_node: Annotated[int, AT_LEAST_1] = 1   # > 1: DDP inside the cell, one process per task (gloo or NCCL)
    nodes: Annotated[int, AT_LEAST_1] = 1
    mem_gb: Annotated[float, POSITIVE] = 8.0
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    array_parallelism: Annotated[int, AT_LEAST_1] = 64   # at most this many cells of one array at once (Slurm)
    max_concurrent: Annotated[int, NON_NEGATIVE] = 0     # local executor: cells at once; 0 = one per GPU, or one
    signal_delay_s: Annotated[int, NON_NEGATIVE] = 60    # USR2 this long before the time limit: checkpoint, requeue
    max_requeue: Annotated[int, NON_NEGATIVE] = 3        # timeouts that may requeue a cell (preemptions always do)
    sbatch: Mapping[str, str] = field(default_factory=dict)  # extra #SBATCH --key=value lines

    def key(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True, default=str)


@dataclass(frozen=True)
class Cell:
    id: str
    name: str
    group: str
    config: CellConfig
    resources: Resources
    teacher_id: str | None = None    # a cell of this grid that must finish first

    def summary(self) -> dict:
        c = self.config
        return {"id": self.id, "name": self.name, "group": self.group, "method": c.method.name,
                "student": c.student, "teacher": c.teacher, "teacher_id": self.teacher_id,
                "tokens": c.train.tokens, "seed": c.train.seed}


@dataclass(frozen=True)
class Grid:
    name: str
    path: str
    cells: tuple[Cell, ...]
    merged: tuple[str, ...] = ()   # notes on entries identical to another (one cell runs for both)

    def by_id(self) -> dict[str, Cell]:
        return {c.id: c for c in self.cells}


# ----------------------------------------------------------------------------- loading


def _deep_merge(base: Any, top: Any) -> Any:
    if isinstance(base, Mapping) and isinstance(top, Mapping):
        out = copy.deepcopy(dict(base))  # never share nested dicts: axes write into each cell's copy
        for k, v in top.items():
            out[k] = _deep_merge(base.get(k), v) if k in base else copy.deepcopy(v)
        return out
    return copy.deepcopy(top)


def _load_raw(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    path = path.resolve()
    if path in seen:
        raise ConfigError(f"{path}: include cycle: {' -> '.join(str(p) for p in (*seen, path))}")
    data = read_yaml_mapping(path, missing="no such grid file" + (f" (included from {seen[-1]})" if seen else ""))
    unknown = set(data) - _GRID_KEYS
    if unknown:
        k = sorted(unknown)[0]
        raise ConfigError(f"{path}: unknown key {k!r}{did_you_mean(k, _GRID_KEYS)}; "
                          f"valid: {', '.join(sorted(_GRID_KEYS))}")
    includes = data.pop("include", None) or []
    if isinstance(includes, str):
        includes = [includes]
    merged: dict = {}
    for inc in includes:
        merged = _deep_merge(merged, _load_raw((path.parent / inc), (*seen, path)))
    merged.pop("name", None)
    return _deep_merge(merged, data)


def load_grid(path: str | Path) -> Grid:
    """Read, include, expand and validate a grid file."""
    path = Path(path)
    raw = _load_raw(path)
    return expand(raw, source=str(path))


# ----------------------------------------------------------------------------- expansion


def _valid_axis(key: str) -> bool:
    """Is `key` a (dotted) field of CellConfig? method.* is validated later against the method."""
    return key.split(".")[0] == "method" or key in _axis_choices()


@functools.lru_cache(maxsize=1)
def _axis_choices() -> tuple[str, ...]:
    """Every dotted key a grid axis may name, from the CellConfig schema (derived once)."""
    import typing

    out = []
    for f in dataclasses.fields(CellConfig):
        tp = typing.get_type_hints(CellConfig)[f.name]
        if f.name == "sections":
            continue
        if dataclasses.is_dataclass(tp) and f.name != "method":
            out += [f"{f.name}.{g.name}" for g in dataclasses.fields(tp)]
        else:
            out.append(f.name)
    for name, section in SECTIONS.items():  # the plugins' sections: continual.*, vlm.*
        out += [f"{name}.{g.name}" for g in dataclasses.fields(section.schema)]
    return tuple(out)


def _value_label(v: Any) -> str:
    if isinstance(v, Mapping):
        return str(v.get("name", json.dumps(v, sort_keys=True)))
    return str(v)


def _group_points(group: Mapping, where: str) -> list[dict[str, Any]]:
    axes = group.get("axes") or {}
    if not isinstance(axes, Mapping):
        raise ConfigError(f"{where}.axes: expected a mapping of axis -> list of values")
    for k, vals in axes.items():
        if not _valid_axis(k):
            raise ConfigError(f"{where}.axes: unknown axis {k!r}{did_you_mean(k, _axis_choices())}; "
                              f"valid: {', '.join(_axis_choices())}")
        if not isinstance(vals, list) or not vals:
            raise ConfigError(f"{where}.axes.{k}: expected a non-empty list of values, got {vals!r}")
    mode = group.get("mode", "product")
    if mode not in ("product", "zip"):
        raise ConfigError(f"{where}.mode: unknown mode {mode!r}{did_you_mean(mode, ['product', 'zip'])}; "
                          f"valid: product, zip")
    keys = list(axes)
    if not keys:
        return [{}]
    if mode == "zip":
        lengths = {k: len(axes[k]) for k in keys}
        if len(set(lengths.values())) > 1:
            raise ConfigError(f"{where}.axes: zip needs lists of equal length, got {lengths}")
        combos = zip(*(axes[k] for k in keys))
    else:
        combos = itertools.product(*(axes[k] for k in keys))
    return [dict(zip(keys, c)) for c in combos]


def _tokens_label(tokens: Any) -> str:
    if isinstance(tokens, str):
        return tokens.replace(" ", "")
    n = float(tokens)
    for unit, scale in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:g}{unit}"
    return f"{int(n)}"


def expand(raw: Mapping, source: str = "grid") -> Grid:
    name = raw.get("name") or Path(source).stem
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9._-]+", name):
        raise ConfigError(f"{source}: name: expected letters, digits, '.', '_' or '-', got {name!r}")
    if name.startswith("."):   # '..' would put the sweep outside --runs, '.x' would hide it
        raise ConfigError(f"{source}: name: {name!r} starts with '.': the sweep's directory runs/<name> must be a "
                          f"plain folder inside the runs directory")
    defaults = raw.get("defaults") or {}
    base_res = raw.get("resources") or {}
    groups = raw.get("cells")
    if not groups or not isinstance(groups, Mapping):
        raise ConfigError(f"{source}: cells: the grid has no cells (expected a mapping of group name -> group)")

    pending: list[tuple[str, dict, Resources, str | None, str]] = []  # group, cell dict, res, teacher ref, where
    for gname, group in groups.items():
        where = f"{source}: cells.{gname}"
        group = group or {}
        if not isinstance(group, Mapping):
            raise ConfigError(f"{where}: expected a mapping with set/axes/mode/overrides/resources")
        unknown = set(group) - _GROUP_KEYS
        if unknown:
            k = sorted(unknown)[0]
            raise ConfigError(f"{where}: unknown key {k!r}{did_you_mean(k, _GROUP_KEYS)}; "
                              f"valid: {', '.join(sorted(_GROUP_KEYS))}")
        res = build_dataclass(Resources, _deep_merge(base_res, group.get("resources") or {}),
                              where=f"{where}.resources")
        overrides = group.get("overrides") or {}
        for axis in overrides:
            if axis not in (group.get("axes") or {}):
                raise ConfigError(f"{where}.overrides: {axis!r} is not an axis of this group; "
                                  f"axes: {', '.join(group.get('axes') or {}) or 'none'}")
        for point in _group_points(group, where):
            cell = _deep_merge(defaults, group.get("set") or {})
            for k, v in point.items():
                set_dotted(cell, k, v, where)
            for axis, table in overrides.items():
                patch = (table or {}).get(_value_label(point[axis]))
                if patch:
                    cell = _deep_merge(cell, patch)
            ref = _at_ref(cell.get("teacher"))
            # a plugin's staged cell (a continual-learning sequence: a cell per task; GenRecal, LLaVA-KD: a cell
            # per stage), chained: the first stage depends on the group its section names, later ones on the
            # stage before
            section, stages = _stages(cell, where)
            for k, stage in enumerate(stages or ()):
                first = SECTIONS.get(section).first_parent
                pending.append((gname, stage, res, len(pending) - 1 if k else first and first(stage), where,
                                section))
            if not stages:
                pending.append((gname, cell, res, ref, where, _stage_section(cell)))
    if not pending:
        raise ConfigError(f"{source}: cells: the grid expands to no cells")

    # resolve teacher references in dependency order (a teacher may itself have a teacher)
    cells: dict[int, Cell] = {}
    names_by_group: dict[str, list[int]] = {}
    for i, (g, *_rest) in enumerate(pending):
        names_by_group.setdefault(g, []).append(i)
    state: dict[int, str] = {}

    def build(i: int, stack: tuple[int, ...]) -> Cell:
        if i in cells:
            return cells[i]
        if state.get(i) == "visiting":
            chain = " -> ".join(pending[j][0] for j in (*stack, i))
            raise ConfigError(f"{source}: teacher references form a cycle: {chain}")
        state[i] = "visiting"
        gname, cell, res, ref, where, section = pending[i]
        cell = copy.deepcopy(cell)
        teacher_id, teacher = None, None
        method = cell.get("method", "supervised")
        mname = method.get("name") if isinstance(method, Mapping) else method
        needs = _needs_teacher(mname, where) or _reads_teacher(cell)
        sec = SECTIONS.get(section) if section else None
        if sec is not None and ref is not None and (isinstance(ref, int) or sec.links_first):
            # a stage starts from its parent's model: the stage before, or (links_first) the group its section
            # names for the first one
            parent = build(ref if isinstance(ref, int) else
                           _resolve_ref(ref, names_by_group, pending, cells, where, f"{section}.init"), (*stack, i))
            teacher_id = parent.id
            sec.link(cell, parent)
            ref = _at_ref(cell.get("teacher"))
        if not needs:
            cell.pop("teacher", None)
        elif ref is not None:
            t_idx = _resolve_ref(ref, names_by_group, pending, cells, where)
            teacher = build(t_idx, (*stack, i))
            teacher_id = teacher_id or teacher.id  # a stage's dependency is its previous stage (after the teacher)
            cell["teacher"] = TEACHER_REF + teacher.id
        cfg = config_from_dict(cell, source=where)
        if teacher is not None:
            _check_vocabulary(cfg, teacher.config, ref, where)
        from ..models.build import check_model_ref  # torch: not for `suite sweep status`

        check_model_ref(cfg.student, f"{where}.student")
        check_model_ref(cfg.teacher, f"{where}.teacher")
        cells[i] = Cell(id=cfg.cell_id, name="", group=gname, config=cfg, resources=res, teacher_id=teacher_id)
        state[i] = "done"
        return cells[i]

    for i in range(len(pending)):
        build(i, ())

    # names, dedup (identical content -> one cell), teacher-first order
    by_id: dict[str, Cell] = {}
    merged: dict[tuple[str, str], int] = {}
    for i in sorted(cells):
        c = cells[i]
        if c.id not in by_id:
            by_id[c.id] = c
        else:
            key = (c.group, by_id[c.id].group)
            merged[key] = merged.get(key, 0) + 1
    def note(g: str, first: str, n: int) -> str:
        what = f"{n} entr{'y' if n == 1 else 'ies'}"
        same = ("repeated within the group" if g == first else f"identical to an entry of group {first!r}")
        return f"group {g!r}: {what} {same} (same settings and seed), run once as one cell"

    notes = tuple(note(g, first, n) for (g, first), n in merged.items())
    named = _assign_names(list(by_id.values()), by_id)
    return Grid(name=name, path=source, cells=tuple(_teacher_first(named)), merged=notes)


def check_model_sources(grid: Grid) -> list[str]:
    """Every cell's student and teacher must resolve when the cell runs (refs.check_model_source): a ConfigError
    naming the grid, the group and the key for a path that does not exist, else the warnings (hub ids that will
    be downloaded), one per reference. `suite sweep submit` and `resume` (--dry-run too) run it before anything
    is written; expansion does not, so status and collect of a finished sweep never depend on a teacher's files."""
    from ..models import TINY  # torch: not for `suite sweep status`
    from ..models.vlm import TINY_VLMS
    from ..refs import check_model_source

    built = {*TINY.names(), *TINY_VLMS.names()}
    warnings: list[str] = []
    for c in grid.cells:
        for key in ("student", "teacher"):
            note = check_model_source(getattr(c.config, key), f"{grid.path}: cells.{c.group}.{key}", built)
            if note and note not in warnings:
                warnings.append(note)
    return warnings


def _check_vocabulary(cfg: CellConfig, teacher: CellConfig, ref: str, where: str) -> None:
    """Token-level KD needs one vocabulary. Where both configs fix it (synthetic worlds, or an explicit
    data.tokenizer on both sides), a teacher trained on another one is an error at expansion, not at run time."""
    if any(sec.own_vocabulary(cfg) for _, sec in SECTIONS.items() if sec.own_vocabulary is not None):
        return  # e.g. GenRecal bridges vocabularies; VLM cells bring their models' own tokenizers
    s, t = cfg.data, teacher.data
    if s.kind == "synthetic" and (t.kind, t.language) != ("synthetic", s.language):
        raise ConfigError(f"{where}.teacher: '@{ref}' trained on {t.kind} data "
                          f"({t.language if t.kind == 'synthetic' else t.path}), "
                          f"this student on the synthetic world {s.language!r}: their vocabularies differ and "
                          f"token-level KD needs one; give both the same data.language")
    if s.tokenizer and t.tokenizer and s.tokenizer != t.tokenizer:
        raise ConfigError(f"{where}.teacher: '@{ref}' uses tokenizer {t.tokenizer!r}, this student {s.tokenizer!r}: "
                          f"token-level KD needs one vocabulary")


def _reads_teacher(cell: Mapping) -> bool:
    """A plugin section that uses the teacher although the method does not (VLM cells' teacher-written answers)."""
    from ..config import SECTIONS

    return any(s.reads_teacher(cell) for _, s in SECTIONS.items() if s.reads_teacher is not None)


def _needs_teacher(method: Any, where: str) -> bool:
    from ..methods import METHODS

    if not isinstance(method, str) or method not in METHODS:
        return False  # config_from_dict reports it with the valid names
    return bool(METHODS.get(method).needs_teacher)


def _resolve_ref(ref: str, names_by_group, pending, cells, where, what: str = "teacher") -> int:
    if ref in names_by_group:
        idx = names_by_group[ref]
        if len(idx) != 1:
            raise ConfigError(f"{where}: {what} '@{ref}' names a group of {len(idx)} cells; a {what} must be "
                              f"one cell (give it its own group)")
        return idx[0]
    groups = sorted(names_by_group)
    raise ConfigError(f"{where}: {what} '@{ref}' is not a cell group of this grid{did_you_mean(ref, groups)}; "
                      f"groups: {', '.join(groups)}")


def _at_ref(value: Any) -> str | None:
    """'@group' -> 'group'; anything else -> None."""
    return value[1:] if isinstance(value, str) and value.startswith("@") else None


def _stages(cell: dict, where: str) -> tuple[str | None, list[dict] | None]:
    """(section, its stage cells) when a registered section expands this raw cell into stages, else (None, None)."""
    for name, sec in SECTIONS.items():
        if sec.expand is None:
            continue
        try:
            stages = sec.expand(cell)
        except ValueError as e:
            raise ConfigError(f"{where}: {e}") from None
        if stages:
            return name, stages
    return None, None


def _stage_section(cell: dict) -> str | None:
    """The section whose stage this raw cell is (written out by hand, not expanded), or None."""
    return next((name for name, sec in SECTIONS.items() if sec.is_stage is not None and sec.is_stage(cell)), None)


def _assign_names(cells: list[Cell], by_id: dict[str, Cell]) -> list[Cell]:
    def base(c: Cell) -> str:
        cfg = c.config
        teacher = by_id[_teacher_of(c, by_id)].config.student if _teacher_of(c, by_id) else cfg.teacher
        label = size_label(teacher) if teacher else None
        for _, sec in SECTIONS.items():  # a plugin names its own cells (a stage and its task, a VLM stage)
            named = sec.name(cfg, label) if sec.name is not None else None
            if named is not None:
                return named
        parts = [cfg.method.name]
        if c.teacher_id:
            parts.append("T" + size_label(by_id[c.teacher_id].config.student))
        elif cfg.teacher:
            parts.append("T" + size_label(cfg.teacher))
        parts += ["S" + size_label(cfg.student), "D" + _tokens_label(cfg.train.tokens), f"s{cfg.train.seed}"]
        return cfg.name or "-".join(parts)

    names = [base(c) for c in cells]
    counts: dict[str, int] = {}
    for n in names:
        counts[n] = counts.get(n, 0) + 1
    out = []
    for c, n in zip(cells, names):
        unique = n if counts[n] == 1 else f"{n}-{c.id[:6]}"
        out.append(dataclasses.replace(c, name=unique, config=dataclasses.replace(c.config, name=unique)))
    # the config name is not part of the id, so ids are unchanged
    return out


def _teacher_of(c: Cell, by_id: dict[str, Cell]) -> str | None:
    """The cell id of a cell's teacher (`cell:<id>`), whether or not it is also its dependency."""
    t = c.config.teacher
    if t and t.startswith(TEACHER_REF) and t[len(TEACHER_REF):] in by_id:
        return t[len(TEACHER_REF):]
    return None


def _teacher_first(cells: list[Cell]) -> list[Cell]:
    done: set[str] = set()
    by_id = {c.id: c for c in cells}
    out: list[Cell] = []

    def visit(c: Cell) -> None:
        if c.id in done:
            return
        if c.teacher_id:
            visit(by_id[c.teacher_id])
        done.add(c.id)
        out.append(c)

    for c in cells:
        visit(c)
    return out


__all__ = ["Grid", "Cell", "Resources", "load_grid", "expand", "check_model_sources", "TEACHER_REF"]
