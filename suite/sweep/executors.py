"""Executors: where cells run. `slurm` (job arrays through submitit), `local` (this machine, our own
concurrency cap and GPU pinning), `inline` (this process, for debugging and tests).

Every executor takes the cells to run (teacher-first), their directories and a `live` map of cells
already queued elsewhere, and returns a {cell_id: job id} map; job.json in each cell dir records it.
"""
from __future__ import annotations

import contextlib
import os
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable
from unittest import mock

import submitit

from .._io import atomic_write_json
from ..registry import Registry
from .grid import Cell, Resources
from .runner import CellJob, run_cell
from .state import cell_state, live_local_pid, read_json, sweep_lock, write_error

EXECUTORS = Registry[type]("executor")


def _job_record(cell_dir: Path, executor: str, job_id: str, **extra) -> None:
    atomic_write_json(cell_dir / "job.json", {"executor": executor, "job_id": str(job_id),
                                              "submitted_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **extra})


def _teacher_failed(cell: Cell, dirs: dict[str, Path]) -> bool:
    return bool(cell.teacher_id) and (dirs[cell.teacher_id] / "error.json").exists()


def _fail_for_teacher(cell: Cell, dirs: dict[str, Path]) -> None:
    write_error(dirs[cell.id], RuntimeError(f"teacher cell {cell.teacher_id} failed; see its error.json"), 0)


@EXECUTORS.register("inline")
class InlineExecutor:
    """Runs cells one after another in this process. Exceptions are recorded, never sent to pdb."""

    name = "inline"

    def __init__(self, root: Path, progress: bool = True, job_factory=None):
        self.root, self.progress, self.job_factory = root, progress, job_factory

    def submit(self, cells: list[Cell], dirs: dict[str, Path], live: dict[str, str]) -> dict[str, str]:
        for i, cell in enumerate(cells, 1):
            print(f"[{i}/{len(cells)}] {cell.name}", flush=True)
            with sweep_lock(self.root):  # another submitter may have started or finished it meanwhile
                state, detail = cell_state(dirs[cell.id])
                if state in ("done", "running") or (state == "failed" and (dirs[cell.id] / "error.json").exists()):
                    print(f"  skipped: {cell.name} is {state} elsewhere" + (f" ({detail})" if detail else ""),
                          flush=True)
                    continue
                if _teacher_failed(cell, dirs):
                    _fail_for_teacher(cell, dirs)
                    continue
                _job_record(dirs[cell.id], "inline", f"inline-{os.getpid()}", pid=os.getpid())
            try:
                if self.job_factory is not None:
                    self.job_factory()(str(dirs[cell.id]))
                else:
                    run_cell(dirs[cell.id], progress=self.progress)
            except Exception as e:  # noqa: BLE001 - recorded in error.json; the other cells go on
                print(f"  failed: {type(e).__name__}: {e}", flush=True)
        return {}


@contextlib.contextmanager
def _cpu_threads(n: int | None):
    """A CPU cell's process gets `cpus_per_task` threads (OMP_NUM_THREADS, read by torch at start), unless
    the user set them: two cells at once on two cores then share the cores instead of each taking both."""
    keys = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
    set_here = [k for k in keys if n and k not in os.environ]
    for k in set_here:
        os.environ[k] = str(n)
    try:
        yield
    finally:
        for k in set_here:
            os.environ.pop(k, None)


@EXECUTORS.register("local")
class LocalExecutor:
    """One machine. submitit's LocalExecutor runs each cell (timeouts, USR2 checkpoint + requeue), but
    it starts every job at once and pins no GPU, so this class schedules: at most `max_concurrent`
    cells at a time (default: one per GPU, or one on a CPU-only machine), each with its own GPUs,
    students only after their teacher's result.json exists. It blocks until every cell has ended.
    """

    name = "local"

    def __init__(self, root: Path, progress: bool = True, poll_s: float = 0.5, job_factory=None):
        self.root, self.poll_s, self.job_factory, self.progress = root, poll_s, job_factory, progress

    def submit(self, cells: list[Cell], dirs: dict[str, Path], live: dict[str, str]) -> dict[str, str]:
        import torch

        n_gpus = torch.cuda.device_count()
        cap = max((c.resources.max_concurrent for c in cells), default=0) or max(1, n_gpus)
        waiting = list(cells)
        running: dict[str, tuple] = {}  # cell id -> (job, gpus), started by this process
        elsewhere: set[str] = set(live)  # cells another submitter of this sweep runs
        ids: dict[str, str] = {}
        n_done = 0
        from tqdm.auto import tqdm

        # the cells' own progress bars go to their log files; this one follows metrics.jsonl of the running cells
        bar = tqdm(total=len(cells), unit="cell", disable=not self.progress, dynamic_ncols=True, mininterval=1.0)
        while waiting or running:
            for cid, (job, gpus) in list(running.items()):
                if job.done():
                    del running[cid]
                    n_done += 1
                    state, detail = cell_state(dirs[cid])
                    if state != "done" and not (dirs[cid] / "error.json").exists():
                        try:
                            job.result()
                        except Exception as e:  # noqa: BLE001 - killed by timeout, OOM killer, ...
                            # not the cell's own exception (that one is in error.json): a plain resubmit resumes
                            write_error(dirs[cid], e, 0, killed=True)
                    bar.write(f"  {'done' if state == 'done' else 'failed'}: {_name(cells, cid)}"
                              f" ({n_done}/{len(cells)})")
                    bar.update(1)
            for cell in list(waiting):
                if len(running) >= cap:
                    break
                if cell.teacher_id and not (dirs[cell.teacher_id] / "result.json").exists():
                    if _teacher_failed(cell, dirs):
                        _fail_for_teacher(cell, dirs)
                        waiting.remove(cell)
                        n_done += 1
                        bar.update(1)
                    continue
                # from "is it still to do, is there room?" to job.json, under the sweep's lock: a second
                # submitter of this sweep sees this cell as live and counts it against the cap
                with sweep_lock(self.root):
                    other = _taken(cell, dirs)
                    if other:
                        waiting.remove(cell)
                        if other == "running":
                            elsewhere.add(cell.id)
                        n_done += 1
                        bar.write(f"  skipped: {cell.name} ({other} in another submitter)")
                        bar.update(1)
                        continue
                    live = {cid: live_local_pid(d) for cid, d in dirs.items()}
                    live = {cid: pid for cid, pid in live.items() if pid}
                    if len(live) >= cap:  # the cap holds across every process submitting this sweep
                        break
                    busy = {g for cid in live for g in (read_json(dirs[cid] / "job.json") or {}).get("gpus", [])}
                    free_gpus = [g for g in range(n_gpus) if g not in busy]
                    need = cell.resources.gpus_per_node if n_gpus else 0
                    if need > len(free_gpus):
                        continue
                    gpus = free_gpus[:need]
                    ex = submitit.LocalExecutor(folder=str(self.root / ".submitit" / "%j"),
                                                max_num_timeout=cell.resources.max_requeue)
                    params = dict(timeout_min=cell.resources.timeout_min,
                                  signal_delay_s=cell.resources.signal_delay_s,
                                  tasks_per_node=cell.resources.tasks_per_node)
                    if gpus:
                        params.update(gpus_per_node=len(gpus), visible_gpus=tuple(gpus))
                    ex.update_parameters(**params)
                    with _cpu_threads(None if gpus else cell.resources.cpus_per_task):
                        job = ex.submit((self.job_factory or CellJob)(), str(dirs[cell.id]))
                    _job_record(dirs[cell.id], "local", job.job_id, pid=int(job.job_id), gpus=gpus,
                                log=str(job.paths.stdout))
                ids[cell.id] = str(job.job_id)
                running[cell.id] = (job, gpus)
                waiting.remove(cell)
                bar.write(f"  start: {cell.name}" + (f" on GPU {gpus}" if gpus else ""))
            if waiting and not running and not any(_startable(c, dirs, waiting, elsewhere) for c in waiting):
                for c in waiting:  # their teachers are neither done nor in this submission
                    bar.write(f"  skipped: {c.name} (teacher {c.teacher_id} is not done)")
                break
            if running and self.progress:
                bar.set_postfix_str(", ".join(_progress_note(_name(cells, cid), dirs[cid]) for cid in running),
                                    refresh=False)
            time.sleep(self.poll_s)
        bar.close()
        return ids


def _taken(cell: Cell, dirs: dict[str, Path]) -> str | None:
    """'done', 'running' or 'failed' when another submitter of the sweep has finished, is running, or has
    failed this cell since this one looked; None when it is still to do."""
    d = dirs[cell.id]
    if (d / "result.json").exists():
        return "done"
    if live_local_pid(d):
        return "running"
    if (d / "error.json").exists():
        return "failed"
    return None


def _progress_note(name: str, cell_dir: Path) -> str:
    """'name 120k tok, loss 2.41' from the last line of the cell's metrics.jsonl (read from the end)."""
    import json

    try:
        with open(cell_dir / "metrics.jsonl", "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 4096))
            lines = [ln for ln in f.read().splitlines() if ln.strip()]
        rec = json.loads(lines[-1]) if lines else None
    except (OSError, ValueError):
        rec = None
    if not rec:
        return f"{name} starting"
    loss = rec.get("loss", rec.get("heldout_loss"))
    return f"{name} {rec['tokens'] / 1e3:.0f}k tok" + (f", loss {loss:.3f}" if loss is not None else "")


def _startable(cell: Cell, dirs: dict[str, Path], waiting: list[Cell], elsewhere: set[str] = frozenset()) -> bool:
    """Can `cell` start now or later in this run (its teacher is done, failed, still waiting here, or running
    in another submitter of the sweep)?"""
    if not cell.teacher_id or (dirs[cell.teacher_id] / "result.json").exists() or _teacher_failed(cell, dirs):
        return True
    if cell.teacher_id in elsewhere and live_local_pid(dirs[cell.teacher_id]):
        return True
    return any(w.id == cell.teacher_id for w in waiting)


def _name(cells: list[Cell], cid: str) -> str:
    return next((c.name for c in cells if c.id == cid), cid)


@EXECUTORS.register("slurm")
class SlurmExecutor:
    """Slurm through submitit: one job array per (resource shape, teachers); students depend on their
    teachers' array tasks with `afterok` (and `kill-on-invalid-dep`, so a failed teacher cancels them)."""

    name = "slurm"

    def __init__(self, root: Path, progress: bool = True, job_factory=None):
        self.root, self.job_factory = root, job_factory

    def _executor(self, res: Resources, name: str, dependency: str | None):
        ex = submitit.AutoExecutor(folder=str(self.root / ".submitit" / "%j"), cluster="slurm",
                                   slurm_max_num_timeout=res.max_requeue)
        # --requeue: a job whose node fails goes back to the queue whatever the site's JobRequeue default
        extra = {"kill-on-invalid-dep": "yes", "requeue": True, **dict(res.sbatch)}
        params = dict(name=name, timeout_min=res.timeout_min, cpus_per_task=res.cpus_per_task,
                      tasks_per_node=res.tasks_per_node, nodes=res.nodes, mem_gb=res.mem_gb,
                      slurm_array_parallelism=res.array_parallelism, slurm_signal_delay_s=res.signal_delay_s,
                      slurm_additional_parameters=extra)
        if res.gpus_per_node:
            params["gpus_per_node"] = res.gpus_per_node
        for key in ("partition", "account", "qos", "constraint"):
            if getattr(res, key):
                params[f"slurm_{key}"] = getattr(res, key)
        if dependency:
            params["slurm_dependency"] = dependency
        ex.update_parameters(**params)
        return ex

    def submit(self, cells: list[Cell], dirs: dict[str, Path], live: dict[str, str]) -> dict[str, str]:
        job_of: dict[str, str] = dict(live)  # cell id -> job id, for teachers queued earlier
        ids: dict[str, str] = {}
        for group, dep in job_arrays(cells, job_of, lambda cid: (dirs[cid] / "result.json").exists()):
            ex = self._executor(group[0].resources, f"{self.root.name}:{group[0].group}",
                                f"afterok:{dep}" if dep else None)
            with ex.batch():
                factory = self.job_factory or CellJob
                jobs = [ex.submit(factory(), str(dirs[c.id])) for c in group]
            for c, job in zip(group, jobs):
                _job_record(dirs[c.id], "slurm", job.job_id, dependency=dep, log=str(job.paths.stdout))
                job_of[c.id] = ids[c.id] = str(job.job_id)
            print(f"  submitted {len(group)} cell(s) as array {jobs[0].job_id.split('_')[0]}"
                  + (f" after {dep}" if dep else ""), flush=True)
        for c in cells:
            if c.id not in ids:
                print(f"  skipped: {c.name} (teacher {c.teacher_id} is neither done nor queued)", flush=True)
        return ids


def job_arrays(cells: list[Cell], job_of: dict[str, str], done: Callable[[str], bool]):
    """The job arrays a Slurm submission makes, in order: (cells, the job id their array waits on, or None).

    Waves: a cell is ready when it has no teacher, its teacher is `done`, or its teacher has a job in `job_of`
    (queued earlier, or submitted in an earlier wave: the caller adds each array's ids to `job_of` before it asks
    for the next). A wave's cells go out grouped by resources and by the teacher job they wait on. Cells whose
    teacher never becomes ready are not yielded."""
    remaining = list(cells)
    while remaining:
        wave = [c for c in remaining if not c.teacher_id or c.teacher_id in job_of or done(c.teacher_id)]
        if not wave:
            return
        groups: dict[tuple, list[Cell]] = defaultdict(list)
        for c in wave:
            dep = job_of.get(c.teacher_id) if c.teacher_id and not done(c.teacher_id) else None
            groups[(c.resources.key(), dep)].append(c)
        for (_, dep), group in groups.items():
            yield group, dep
        remaining = [c for c in remaining if c not in wave]


@contextlib.contextmanager
def _without_slurm_client():
    """submitit's Slurm executor refuses to start where `srun` is not on PATH; a plan submits nothing, so
    `--executor slurm --dry-run` checks a grid on a laptop too: the check is bypassed while the plan's
    executors are built (their parameters are validated by submitit as for a real submission)."""
    from submitit.slurm import slurm as submitit_slurm

    with mock.patch.object(submitit_slurm.SlurmExecutor, "affinity", classmethod(lambda cls: 1)):
        yield


def slurm_plan(cells: list[Cell], root: Path) -> list[dict]:
    """What `SlurmExecutor.submit` would ask Slurm for, without submitting: one entry per job array, in
    submission order, with submitit's parameters and the #SBATCH header it would write.

    Students wait on their teachers' array (`afterok`); here that is the index of the array in this list.
    """
    plans: list[dict] = []
    array_of: dict[str, str] = {}  # cell id -> index of its array in `plans`
    ids = {c.id for c in cells}
    for group, dep in job_arrays(cells, array_of, lambda cid: cid not in ids):
        folder = root / ".submitit" / "%j"
        with _without_slurm_client():
            ex = SlurmExecutor(root)._executor(group[0].resources, f"{root.name}:{group[0].group}",
                                               f"afterok:<array {dep}>" if dep is not None else None)
        params, sbatch = _sbatch_preview(ex, len(group), folder)
        for c in group:
            array_of[c.id] = str(len(plans))
        plans.append({"array": len(plans), "cells": [c.name for c in group],
                      "after_array": int(dep) if dep is not None else None, "parameters": params,
                      "sbatch": sbatch})
    return plans


def _sbatch_preview(ex, count: int, folder: Path) -> tuple[dict, list[str]]:
    """(submitit's parameters, the #SBATCH lines it would write) for a job array of `count` tasks.

    submitit has no public API for either, so this is the one place that reads two private names
    (AutoExecutor._executor.parameters, submitit.slurm.slurm._make_sbatch_string; pyproject pins submitit < 2).
    A release that renames them costs the preview, not the plan: the lines then say why they are missing."""
    try:
        from submitit.slurm.slurm import _make_sbatch_string

        params = dict(ex._executor.parameters)  # submitit's own names, as its update_parameters took them
        header = dict(params, map_count=count) if count > 1 else params
        text = _make_sbatch_string(command=f"python -u -m submitit.core._submit {folder}", folder=folder, **header)
    except (ImportError, AttributeError, TypeError) as e:
        import submitit
        return {}, [f"# #SBATCH preview unavailable with submitit {submitit.__version__}: {type(e).__name__}: {e}"]
    return params, [ln for ln in text.splitlines() if ln.startswith("#SBATCH")]


def slurm_queue() -> dict[str, str]:
    """{job id (array tasks as N_k): state} for this user's jobs, from one squeue call (no accounting needed).

    `--states=all` keeps jobs that just ended or are between a requeue and their restart (REQUEUED,
    REQUEUE_HOLD, ...) in view for MinJobAge seconds, so a requeue is never mistaken for a vanished job.
    """
    import getpass
    import shutil
    import subprocess

    if shutil.which("squeue") is None:
        return {}
    try:
        out = subprocess.run(["squeue", "-h", "-r", "--states=all", "-u", getpass.getuser(), "-o", "%i|%T"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return {}
    jobs = {}
    for line in out.stdout.splitlines():
        jid, _, state = line.strip().partition("|")
        if jid:
            jobs[jid] = state
    return jobs
