"""Run one cell in several local processes (data parallel over gloo/NCCL) without torchrun.

    result = launch_local(cfg, "runs/ddp", nprocs=2)
Each process gets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR=127.0.0.1 and a free MASTER_PORT, then runs
`train`. On a Slurm node, submitit's TorchDistributedEnvironment sets the same variables instead.
"""
from __future__ import annotations

import os
import socket
from pathlib import Path

from ..config import config_from_dict


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, cfg_dict: dict, out: str, progress: bool) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    import torch.distributed as dist

    from .loop import train

    try:
        train(config_from_dict(cfg_dict, "launch"), out, progress=progress and rank == 0)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def launch_local(cfg, out_dir: str | Path, nprocs: int = 2, progress: bool = False) -> dict:
    """Train `cfg` with `nprocs` processes on this machine; returns result.json's content."""
    import json

    import torch.multiprocessing as mp

    mp.start_processes(_worker, args=(nprocs, _free_port(), cfg.to_dict(), str(out_dir), progress),
                       nprocs=nprocs, start_method="spawn", join=True)
    return json.loads((Path(out_dir) / "result.json").read_text())
