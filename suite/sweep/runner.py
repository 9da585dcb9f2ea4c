"""What runs inside a job: one cell, checkpointable, resumable, with failures written to error.json.

`CellJob` subclasses submitit's `Checkpointable` (submitit requeues a timed-out job only then: a duck-typed
`checkpoint` is not enough). Training runs in a worker thread so that the USR2 handler, which submitit
runs in the main thread, can ask it to stop at the next step boundary, wait for the checkpoint to be on
disk, then let submitit requeue. On restart the loop finds that checkpoint itself: no state travels in
the job's arguments, so a requeue of the original pickle resumes just as well.
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

import submitit

from .._io import atomic_write_json
from ..config import config_from_dict
from ..refs import resolve_cell_ref
from .state import read_json, write_error

_STOP_WAIT_S = 50  # how long the signal handler waits for the step boundary; below signal_delay_s (60)


def resolve_teacher(cfg, cell_dir: Path) -> str | None:
    """`cell:<id>` -> `<sweep dir>/<id>/model` (the teacher cell's final model)."""
    return resolve_cell_ref(cfg.teacher, cell_dir, "teacher")


def run_cell(cell_dir: str | Path, should_stop=None, progress: bool = False) -> dict:
    """Train the cell described by `cell_dir/cell.json`; idempotent once result.json exists."""
    from ..train import Interrupted, train

    cell_dir = Path(cell_dir)
    done = read_json(cell_dir / "result.json")
    if done is not None:
        return done
    spec = json.loads((cell_dir / "cell.json").read_text())
    cfg = config_from_dict(spec["config"], source=str(cell_dir / "cell.json"))
    rank = int(os.environ.get("RANK", "0"))
    attempts_path = cell_dir / "attempts.json"
    previous = read_json(attempts_path) or {}
    attempt = previous.get("attempt", 0) + 1
    if rank == 0:
        atomic_write_json(attempts_path, {"attempt": attempt, "starts": [*previous.get("starts", []), time.time()],
                                          "job_id": os.environ.get("SLURM_JOB_ID")})
        (cell_dir / "error.json").unlink(missing_ok=True)
    try:
        return train(cfg, cell_dir, progress=progress, should_stop=should_stop,
                     teacher_path=resolve_teacher(cfg, cell_dir))
    except Interrupted as e:  # every rank says where it stopped (they agree: the loop all-reduces the stop flag)
        print(f"rank {rank} on {os.uname().nodename}: {e}", file=sys.stderr, flush=True)
        raise
    except BaseException as e:  # noqa: BLE001 - recorded, then re-raised so the scheduler sees a failure
        _record_failure(cell_dir, e, attempt, rank)
        raise


def _record_failure(cell_dir: Path, exc: BaseException, attempt: int, rank: int) -> None:
    """error.json for this attempt. One process: always. Several: every rank may write (rank 0 may be the one
    that died), but a rank that only saw a peer go away never overwrites another rank's own exception, the
    root cause."""
    import socket

    from ..distributed import current_env, peer_failure

    env = current_env()
    world = env.world_size if env is not None else int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        if rank == 0:
            write_error(cell_dir, exc, attempt)
        return
    lost = peer_failure(exc, env)
    if lost is not None:
        prev = read_json(cell_dir / "error.json")
        if prev and prev.get("attempt") == attempt and "lost_peer" not in prev:
            return
        write_error(cell_dir, exc, attempt, message=f"{lost['summary']}: {exc}"[:2000], rank=rank,
                    node=socket.gethostname(), world_size=world, lost_peer=lost)
    else:
        write_error(cell_dir, exc, attempt, message=f"rank {rank} on {socket.gethostname()}: {exc}", rank=rank,
                    node=socket.gethostname(), world_size=world)


class CellJob(submitit.helpers.Checkpointable):
    """The callable submitted per cell: `CellJob()(cell_dir)`."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __getstate__(self):  # events and threads do not pickle; a requeued job starts fresh
        return {}

    def __setstate__(self, state):
        self.__init__()

    def __call__(self, cell_dir: str) -> dict:
        env = submitit.JobEnvironment() if _in_submitit() else None
        if env is not None and env.num_tasks > 1:
            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)
        box: dict = {}

        def work():
            try:
                box["result"] = run_cell(cell_dir, should_stop=lambda step: self._stop.is_set())
            except BaseException as e:  # noqa: BLE001 - handed to the main thread
                box["error"] = e

        self._thread = threading.Thread(target=work, name="suite-cell", daemon=True)
        self._thread.start()
        try:
            while self._thread.is_alive():
                self._thread.join(0.2)  # short joins keep the main thread free to run signal handlers
        except submitit.core.utils.UncompletedJobError as e:
            # submitit refused to requeue (timed out max_requeue times); the checkpoint is on disk
            write_error(Path(cell_dir), e, (read_json(Path(cell_dir) / "attempts.json") or {}).get("attempt", 0))
            raise
        error = box.get("error")
        if error is not None:
            from ..train import Interrupted

            if isinstance(error, Interrupted) and int(os.environ.get("RANK", "0")) != 0:
                time.sleep(120)  # rank 0 is requeueing the whole job, which kills this task
            raise error
        return box["result"]

    def checkpoint(self, cell_dir: str):
        """USR2 (timeout or preemption): stop at the next step boundary, checkpoint, then requeue."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(_STOP_WAIT_S)
        return submitit.helpers.DelayedSubmission(CellJob(), cell_dir)


def _in_submitit() -> bool:
    return "SUBMITIT_EXECUTOR" in os.environ or "SUBMITIT_FOLDER" in os.environ
