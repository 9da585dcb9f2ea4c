"""The filesystem is the truth: a sweep's state is what its directory holds.

    runs/<sweep>/sweep.json             the expanded grid (ids, names, teachers), rewritten at each submit
    runs/<sweep>/<cell_id>/cell.json    the cell's config, resources and teacher
                          /job.json     executor and job id of the latest submission (a hint only)
                          /result.json  done (atomic; written by the training loop)
                          /error.json   failed: traceback, attempt count (removed when a retry starts)
"""
from __future__ import annotations

import json
import os
import time
import traceback
from pathlib import Path
from typing import Callable, Mapping

from .._io import atomic_write_json

STATES = ("pending", "running", "done", "failed")
# Slurm job states (squeue %T) that mean "will run or is about to run again"
SLURM_WAITING = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESIZING", "SUSPENDED",
                 "PREEMPTED", "RESV_DEL_HOLD", "SIGNALING", "STAGE_OUT"}
SLURM_RUNNING = {"RUNNING", "COMPLETING"}


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def write_error(cell_dir: Path, exc: BaseException, attempt: int, message: str | None = None, **extra) -> None:
    """error.json: the exception, its traceback, the attempt and host; `extra` (rank, the failed peer) beside."""
    atomic_write_json(Path(cell_dir) / "error.json", {
        "type": type(exc).__name__, "message": message or str(exc),
        "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
        "attempt": attempt, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "host": os.uname().nodename, **extra,
    })


def cell_state(cell_dir: Path, live_jobs: Mapping[str, str] | Callable[[], Mapping[str, str]] | None = None
               ) -> tuple[str, str]:
    """(state, detail) of one cell from its files; `live_jobs` maps job ids to scheduler states, or is a function
    that returns that map, called only for a cell that waits on a scheduler (so no squeue without Slurm jobs)."""
    cell_dir = Path(cell_dir)
    if (cell_dir / "result.json").exists():
        return "done", ""
    job = read_json(cell_dir / "job.json")
    if (cell_dir / "error.json").exists():
        err = read_json(cell_dir / "error.json") or {}
        if err.get("lost_peer") and job and job.get("executor") == "slurm":
            # a rank that saw its peer vanish wrote this; when Slurm took a node down it requeues the job,
            # and the restart removes the file: failed only once the job has left the queue
            sched = ((live_jobs() if callable(live_jobs) else live_jobs) or {}).get(str(job.get("job_id")))
            if sched in SLURM_RUNNING or sched in SLURM_WAITING:
                return ("running" if sched in SLURM_RUNNING else "pending"), f"job {job.get('job_id')} {sched.lower()} after a lost rank"
        return "failed", f"{err.get('type', 'error')}: {err.get('message', '')}"[:200]
    if not job:
        return "pending", "not submitted"
    if job.get("executor") == "local":
        pid = job.get("pid")
        if pid and _alive(int(pid)):
            return ("running" if (cell_dir / "metrics.jsonl").exists() else "pending"), f"local pid {pid}"
        return "failed", "local job ended without result.json or error.json (killed?)"
    if job.get("executor") == "inline":
        return "pending", "inline run did not finish"
    sched = ((live_jobs() if callable(live_jobs) else live_jobs) or {}).get(str(job.get("job_id")))
    if sched is None:
        return "failed", f"job {job.get('job_id')} left the queue without result.json (cancelled, or its teacher failed)"
    if sched in SLURM_RUNNING:
        return "running", f"job {job.get('job_id')}"
    if sched in SLURM_WAITING:
        return "pending", f"job {job.get('job_id')} {sched.lower()}"
    return "failed", f"job {job.get('job_id')} ended {sched.lower()} without result.json"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
