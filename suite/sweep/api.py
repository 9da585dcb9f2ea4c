"""Sweep verbs: submit, status, resume, cancel, collect. The CLI (`suite sweep ...`) is a thin layer over these.

    sw = open_sweep("sweeps/quickstart.yaml")          # or a sweep directory, e.g. runs/quickstart
    submit(sw, executor="local")                       # skips done cells; resubmitting is resuming
    status(sw)                                         # {"counts": {...}, "cells": [{"id", "name", "state", ...}]}
    collect(sw)                                        # runs/quickstart/results.parquet
"""
from __future__ import annotations

import functools
import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .._io import atomic_write_json
from ..config import ConfigError, build_dataclass, config_from_dict
from ..registry import did_you_mean
from .executors import EXECUTORS, slurm_queue
from .grid import Cell, Grid, Resources, load_grid
from .state import (SLURM_RUNNING, SLURM_WAITING, STATES, cell_damage, cell_state, damage, live_local_pid, one_line,
                    read_json, set_aside, sweep_lock)


@dataclass(frozen=True)
class Sweep:
    grid: Grid
    root: Path

    def dirs(self) -> dict[str, Path]:
        return {c.id: self.root / c.id for c in self.grid.cells}


def open_sweep(grid_or_dir: str | Path, runs: str | Path = "runs") -> Sweep:
    """A grid file (its sweep lives in runs/<name>) or an existing sweep directory (with sweep.json)."""
    p = Path(grid_or_dir)
    if p.is_dir():
        meta = _sweep_meta(p)
        cells = []
        for entry in meta["cells"]:
            spec = read_json(p / entry["id"] / "cell.json")
            if spec is None:
                why = damage(p / entry["id"] / "cell.json") or f"{p / entry['id'] / 'cell.json'}: missing"
                raise ConfigError(f"{why}; resubmit from the grid YAML, which rewrites it")
            cfg = config_from_dict(spec["config"], source=str(p / entry["id"] / "cell.json"))
            cells.append(Cell(id=entry["id"], name=entry["name"], group=entry["group"], config=cfg,
                              resources=build_dataclass(Resources, spec["resources"]),
                              teacher_id=entry.get("teacher_id")))
        return Sweep(Grid(name=meta["name"], path=meta.get("grid", str(p)), cells=tuple(cells)), p)
    if not p.exists():
        raise ConfigError(f"{p}: no such grid file or sweep directory")
    grid = load_grid(p)
    return Sweep(grid, Path(runs) / grid.name)


def _sweep_meta(root: Path) -> dict:
    """sweep.json of a sweep directory, or a ConfigError that names it (missing, or damaged)."""
    meta = read_json(root / "sweep.json")
    if meta is None:
        why = damage(root / "sweep.json")
        if why:
            raise ConfigError(f"{why}; resubmit from the grid YAML, which rewrites it")
        raise ConfigError(f"{root}: not a sweep directory (no sweep.json); pass the grid YAML instead")
    if not isinstance(meta.get("cells"), list) or not all(isinstance(e, dict) and "id" in e for e in meta["cells"]):
        raise ConfigError(f"{root / 'sweep.json'}: no list of cells with ids; resubmit from the grid YAML, "
                          f"which rewrites it")
    return meta


def _write_layout(sw: Sweep, executor: str) -> dict[str, Path]:
    sw.root.mkdir(parents=True, exist_ok=True)
    dirs = sw.dirs()
    for c in sw.grid.cells:
        d = dirs[c.id]
        d.mkdir(exist_ok=True)
        spec = {"id": c.id, "name": c.name, "group": c.group, "teacher_id": c.teacher_id,
                "config": c.config.to_dict(), "resources": _res_dict(c.resources)}
        if read_json(d / "cell.json") != spec:
            atomic_write_json(d / "cell.json", spec)
    atomic_write_json(sw.root / "sweep.json", {
        "name": sw.grid.name, "grid": str(sw.grid.path), "executor": executor,
        "cells": [{"id": c.id, "name": c.name, "group": c.group, "teacher_id": c.teacher_id} for c in sw.grid.cells],
    })
    return dirs


def _res_dict(r: Resources) -> dict:
    from dataclasses import asdict

    d = asdict(r)
    d["sbatch"] = dict(r.sbatch)
    return d


def plan(sw: Sweep) -> dict:
    """What `--dry-run --json` prints: every cell with its id, name, method and teacher."""
    return {"sweep": sw.grid.name, "root": str(sw.root), "grid": str(sw.grid.path),
            "cells": [c.summary() for c in sw.grid.cells]}


def _live_jobs(dirs: dict[str, Path]) -> dict[str, str]:
    """Cells queued or running right now: {cell id: job id}."""
    queue = None
    live = {}
    for cid, d in dirs.items():
        if (d / "result.json").exists() or (d / "error.json").exists():
            continue
        job = read_json(d / "job.json")
        if not job:
            continue
        if job.get("executor") == "slurm":
            queue = slurm_queue() if queue is None else queue
            if queue.get(str(job.get("job_id"))) in SLURM_WAITING | SLURM_RUNNING:
                live[cid] = str(job["job_id"])
        elif job.get("executor") in ("local", "inline") and live_local_pid(d):
            live[cid] = str(job.get("job_id"))
    return live


def check_executor(sw: Sweep, executor: str) -> None:
    """Resources `executor` can never give a cell, as a ConfigError naming the grid, the group and the key
    (run by submit before anything is written, and by `suite sweep submit --dry-run`)."""
    if executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {executor!r}{did_you_mean(executor, EXECUTORS.names())}; "
                          f"valid: {', '.join(EXECUTORS.names())}")
    if executor == "slurm":
        return
    import torch  # the GPU count: only when a grid is submitted

    n_gpus = torch.cuda.device_count()
    for c in sw.grid.cells:
        r, where = c.resources, f"{sw.grid.path}: cells.{c.group}.resources"
        if r.nodes > 1:
            raise ConfigError(f"{where}.nodes: {r.nodes} nodes, but the {executor} executor runs on this machine "
                              f"alone; submit with --executor slurm, or set nodes: 1")
        if r.gpus_per_node > n_gpus:
            raise ConfigError(f"{where}.gpus_per_node: {r.gpus_per_node} per cell, but the {executor} executor sees "
                              f"{n_gpus} GPU{'s' if n_gpus != 1 else ''} on this machine; submit with --executor "
                              f"slurm, or set gpus_per_node: 0 to train on CPU")


def submit(sw: Sweep, executor: str = "local", retry_failed: bool = False, progress: bool = True,
           job_factory=None) -> dict:
    """Submit every cell that is not done, not queued already, and (unless retry_failed) not failed.

    `job_factory` replaces the training body (`CellJob`) with another zero-argument class whose
    instances are called with the cell directory (`suite bench sweep` submits no-op cells this way).
    """
    check_executor(sw, executor)
    t0 = time.time()
    runner = EXECUTORS.get(executor)(sw.root, progress=progress, job_factory=job_factory)
    # The lock covers "which cells are live?" through "job.json written" for every executor: Slurm's
    # submission is quick and happens inside it; the local and inline executors, which run for hours, take
    # it again around each cell they start (see LocalExecutor.submit), so a second submitter of this sweep
    # picks up the cells the first has not started, and the concurrency cap counts the cells of both.
    with sweep_lock(sw.root):
        dirs = _write_layout(sw, executor)
        repaired = _set_aside_damage(sw, dirs)
        live = _live_jobs(dirs)
        todo, failed = [], []
        for c in sw.grid.cells:  # teacher-first order
            d = dirs[c.id]
            if (d / "result.json").exists() or c.id in live:
                continue
            if (d / "error.json").exists():
                killed = (read_json(d / "error.json") or {}).get("killed")
                if not (retry_failed or killed):  # a kill (OOM killer, kill -9) is not the cell's fault: resume
                    failed.append(c)
                    continue
                (d / "error.json").unlink()
            todo.append(c)
        n_done = sum((dirs[c.id] / "result.json").exists() for c in sw.grid.cells)
        print(f"sweep {sw.grid.name}: {len(sw.grid.cells)} cells, {n_done} done, {len(live)} queued or running, "
              f"{len(failed)} failed, {len(todo)} to submit ({executor}) -> {sw.root}", flush=True)
        if failed:
            print(f"  not resubmitted: {len(failed)} failed cell(s) ({', '.join(c.name for c in failed[:5])}"
                  f"{', ...' if len(failed) > 5 else ''}); add --retry-failed to rerun them "
                  f"(`suite sweep status {sw.root}` shows why they failed)", flush=True)
        if executor == "slurm":
            ids = runner.submit(todo, dirs, live) if todo else {}
    if executor != "slurm":
        ids = runner.submit(todo, dirs, live) if todo else {}
    return {"sweep": sw.grid.name, "submitted": [c.id for c in todo], "jobs": ids, "skipped_done": n_done,
            "already_queued": sorted(live), "failed_kept": [c.id for c in failed], "repaired": repaired,
            "seconds": time.time() - t0}


def _set_aside_damage(sw: Sweep, dirs: dict[str, Path]) -> list[str]:
    """Damaged state files (cell.json was just rewritten) moved aside, each named on stderr: the cell then
    looks unsubmitted (a damaged result.json or job.json) and is rerun, resuming from its last checkpoint."""
    import sys

    repaired = []
    for c in sw.grid.cells:
        for path, why in cell_damage(dirs[c.id]):
            dest = set_aside(path)
            print(f"  {why}: moved to {dest.name}; the cell {c.name} will be rerun (resuming from its last "
                  f"checkpoint)", file=sys.stderr, flush=True)
            repaired.append(str(path))
    return repaired


def status(sw: Sweep | str | Path) -> dict:
    """Counts by state and one row per cell, from the files under the sweep's directory.

    `sw` may be a sweep directory: then only its sweep.json and the cells' small files are read (no config is
    rebuilt or validated, so no model code is imported: `suite sweep status runs/NAME` takes well under 1 s)."""
    if isinstance(sw, Sweep):
        root, name = sw.root, sw.grid.name
        cells = [(c.id, c.name, c.group, c.config.method.name) for c in sw.grid.cells]
    else:
        root = Path(sw)
        meta = _sweep_meta(root)
        name = meta.get("name", root.name)
        cells = [(e["id"], e.get("name", e["id"]), e.get("group"), _method_name(root / e["id"] / "cell.json"))
                 for e in meta["cells"]]
    # one squeue call, and only once a cell waits on Slurm (squeue can hang for seconds where no controller runs)
    queue = functools.lru_cache(maxsize=1)(slurm_queue)
    rows = []
    for cid, cname, group, method in cells:
        state, detail = cell_state(root / cid, queue)
        res = read_json(root / cid / "result.json") if state == "done" else None
        rows.append({"id": cid, "name": cname, "group": group, "method": method,
                     "state": state, "detail": detail, "loss": (res or {}).get("loss")})
    counts = {s: sum(r["state"] == s for r in rows) for s in STATES}
    return {"sweep": name, "root": str(root), "counts": counts, "cells": rows}


def _method_name(cell_json: Path) -> str | None:
    method = ((read_json(cell_json) or {}).get("config") or {}).get("method")
    return method.get("name") if isinstance(method, dict) else method


def format_status(st: dict) -> str:
    counts = "  ".join(f"{k} {v}" for k, v in st["counts"].items())
    width = max([len(r["name"]) for r in st["cells"]] + [4])
    lines = [f"sweep {st['sweep']} ({st['root']}): {counts}", "",
             f"{'cell':<{width}}  {'id':<12}  {'state':<8}  {'loss':>8}  detail"]
    for r in st["cells"]:
        loss = f"{r['loss']:.4f}" if r["loss"] is not None else "-"
        lines.append(f"{r['name']:<{width}}  {r['id']:<12}  {r['state']:<8}  {loss:>8}  {one_line(r['detail'])}")
    return "\n".join(lines)


def cancel(sw: Sweep) -> list[str]:
    """Cancel queued and running jobs of cells that are not done."""
    import os
    import signal

    cancelled, slurm_ids = [], []
    for cid, job_id in _live_jobs(sw.dirs()).items():
        job = read_json(sw.root / cid / "job.json")
        if job["executor"] == "slurm":
            slurm_ids.append(job_id)
        elif job["executor"] == "local":
            try:
                os.kill(int(job["pid"]), signal.SIGTERM)
            except ProcessLookupError:
                continue
        cancelled.append(cid)
    if slurm_ids:
        subprocess.run(["scancel", *slurm_ids], check=False)
    return cancelled


def collect(sw: Sweep) -> Path:
    """runs/<sweep>/results.parquet: one row per done cell, result.json flattened (dots join keys)."""
    import pandas as pd

    if not sw.root.is_dir():   # collect before anything ran: say so, write nothing
        raise ConfigError(f"{sw.root}: nothing has run for sweep {sw.grid.name!r} yet (no run directory); "
                          f"`suite sweep submit` its grid first")
    import sys

    rows, left_out = [], []
    for c in sw.grid.cells:
        res = read_json(sw.root / c.id / "result.json")
        if res is None:
            why = damage(sw.root / c.id / "result.json")
            if why:
                left_out.append(f"{c.name} ({why})")
            continue
        rows.append({"sweep": sw.grid.name, "group": c.group, "teacher_id": c.teacher_id, **res})
    if left_out:  # a damaged result is never dropped without a word
        print(f"suite: warning: {len(left_out)} cell(s) left out of results.parquet, their result.json is damaged "
              f"(a resubmit reruns them): " + "; ".join(left_out), file=sys.stderr, flush=True)
    not_done = len(sw.grid.cells) - len(rows) - len(left_out)
    if not_done:
        print(f"suite: note: {not_done} of {len(sw.grid.cells)} cells have no result yet "
              f"(`suite sweep status {sw.root}`)", file=sys.stderr, flush=True)
    df = pd.json_normalize(rows, sep=".") if rows else pd.DataFrame(columns=["sweep", "cell_id", "name"])
    for col in df.columns:  # lists and mixed objects do not go into parquet columns as they are
        if df[col].dtype == object and df[col].map(lambda v: isinstance(v, (list, dict))).any():
            df[col] = df[col].map(lambda v: json.dumps(v) if isinstance(v, (list, dict)) else v)
        elif df[col].dtype == object and df[col].map(lambda v: isinstance(v, str)).any():
            # strings beside numbers (a method weight of 100 or "dy"): all as text
            df[col] = df[col].map(lambda v: v if v is None or isinstance(v, str) or v != v else json.dumps(v))
    out = sw.root / "results.parquet"
    tmp = out.with_name(f".{out.name}.tmp")
    df.to_parquet(tmp, index=False)
    tmp.replace(out)
    return out
