"""The filesystem is the truth: a sweep's state is what its directory holds.

    runs/<sweep>/sweep.json             the expanded grid (ids, names, teachers), rewritten at each submit
    runs/<sweep>/<cell_id>/cell.json    the cell's config, resources and teacher
                          /job.json     executor and job id of the latest submission (a hint only)
                          /result.json  done (atomic; written by the training loop)
                          /error.json   failed: traceback, attempt count (removed when a retry starts)
    runs/<sweep>/.lock                  flock'ed by a submitter while it looks for live jobs and records new ones

Every read is checked: a state file that exists but does not parse (a truncated result.json, a disk that filled
up, a hand edit) makes the cell `corrupt`, never `done` or `pending` by accident; a resubmit moves the damaged
file aside (`<name>.corrupt`) and reruns or resumes the cell.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
import traceback
from pathlib import Path
from typing import Callable, Iterator, Mapping

from .._io import atomic_write_json

STATES = ("pending", "running", "done", "failed", "corrupt")
STATE_FILES = ("result.json", "error.json", "job.json", "cell.json")
# Slurm job states (squeue %T) that mean "will run or is about to run again"
SLURM_WAITING = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESIZING", "SUSPENDED",
                 "PREEMPTED", "RESV_DEL_HOLD", "SIGNALING", "STAGE_OUT"}
SLURM_RUNNING = {"RUNNING", "COMPLETING"}


def read_json(path: Path) -> dict | None:
    """The object in a JSON state file; None when it is missing or damaged (`damage` tells which)."""
    try:
        obj = json.loads(Path(path).read_text())
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return obj if isinstance(obj, dict) else None


def damage(path: Path) -> str | None:
    """Why the state file at `path` cannot be read ("<path>: truncated or not JSON (...)"), or None when it is
    missing or whole."""
    path = Path(path)
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        return f"{path}: {e.strerror}"
    try:
        obj = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        what = "empty" if not text.strip() else f"truncated or not JSON ({e})"
        return f"{path}: {what}"
    return None if isinstance(obj, dict) else f"{path}: a JSON {type(obj).__name__}, not an object"


def cell_damage(cell_dir: Path) -> list[tuple[Path, str]]:
    """The damaged state files of one cell: (path, what `damage` says about it)."""
    paths = [Path(cell_dir) / name for name in STATE_FILES]
    return [(p, why) for p in paths if (why := damage(p))]


def set_aside(path: Path) -> Path:
    """Move a damaged state file out of the way (kept for a post-mortem, never read again)."""
    dest = path.with_name(f"{path.name}.corrupt")
    os.replace(path, dest)
    return dest


@contextlib.contextmanager
def sweep_lock(root: Path) -> Iterator[None]:
    """Exclusive flock on `<root>/.lock`: held by a submitter between "which cells are live?" and "job.json
    written", so two submitters of one sweep (two shells, two login nodes on a shared filesystem) never start
    the same cell, and a concurrency cap counts the jobs of both. Held for milliseconds, never while training."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / ".lock", os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


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
    broken = cell_damage(cell_dir)
    if broken:
        return "corrupt", "; ".join(why for _, why in broken) + " (a resubmit reruns or resumes the cell)"
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
                return (("running" if sched in SLURM_RUNNING else "pending"),
                        f"job {job.get('job_id')} {sched.lower()} after a lost rank")
        if err.get("killed"):
            return "failed", f"killed: {one_line(err.get('message', ''))} (a resubmit resumes it)"[:200]
        return "failed", f"{err.get('type', 'error')}: {one_line(err.get('message', ''))}"[:200]
    if not job:
        return "pending", "not submitted"
    if job.get("executor") == "local":
        pid = job.get("pid")
        if pid and _alive(int(pid)):
            return ("running" if (cell_dir / "metrics.jsonl").exists() else "pending"), f"local pid {pid}"
        return "failed", "local job ended without result.json or error.json (killed?; a resubmit resumes it)"
    if job.get("executor") == "inline":
        pid = job.get("pid")
        if pid and int(pid) != os.getpid() and _alive(int(pid)):
            return "running", f"inline in pid {pid}"
        return "pending", "inline run did not finish"
    sched = ((live_jobs() if callable(live_jobs) else live_jobs) or {}).get(str(job.get("job_id")))
    if sched is None:
        return "failed", (f"job {job.get('job_id')} left the queue without result.json "
                          f"(cancelled, or its teacher failed)")
    if sched in SLURM_RUNNING:
        return "running", f"job {job.get('job_id')}"
    if sched in SLURM_WAITING:
        return "pending", f"job {job.get('job_id')} {sched.lower()}"
    return "failed", f"job {job.get('job_id')} ended {sched.lower()} without result.json"


def one_line(text: str) -> str:
    """A message as one table cell: newlines and tabs (a traceback, a multi-line exception) become ' | '."""
    return " | ".join(part.strip() for part in str(text).replace("\t", " ").splitlines() if part.strip())


def live_local_pid(cell_dir: Path) -> int | None:
    """The pid of a local or inline job that runs this cell on this machine right now, else None."""
    cell_dir = Path(cell_dir)
    if (cell_dir / "result.json").exists() or (cell_dir / "error.json").exists():
        return None
    job = read_json(cell_dir / "job.json") or {}
    pid = job.get("pid")
    # this process's own pid is a record left by an earlier inline run here (one cell at a time: not live now)
    if job.get("executor") in ("local", "inline") and pid and int(pid) != os.getpid() and _alive(int(pid)):
        return int(pid)
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
