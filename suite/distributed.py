"""torch.distributed set-up from the environment (torchrun, or submitit's TorchDistributedEnvironment).

gloo on CPU, NCCL on CUDA. A single process with no RANK/WORLD_SIZE in the environment runs without
a process group, so every collective helper here is a no-op there.

Every collective has a bounded timeout, `SUITE_COLLECTIVE_TIMEOUT_S` (default 900 s: longer than a large
checkpoint write that the other ranks wait for at a barrier), so a rank whose peer died or whose node was lost
fails instead of hanging; `peer_failure` then names the rank and node that went away.
"""
from __future__ import annotations

import datetime
import os
import re
import socket
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    hosts: tuple[tuple[str, str], ...] = ()  # (hostname, address) of every rank, index = rank

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device_type: str) -> DistEnv:
    """Join the process group described by RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT, if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistEnv()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    backend = "nccl" if device_type == "cuda" else "gloo"
    if not dist.is_initialized():
        if device_type == "cuda":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend, rank=rank, world_size=world,
                                timeout=datetime.timedelta(seconds=collective_timeout_s()))
    hosts: list = [None] * world
    dist.all_gather_object(hosts, _whoami())
    global _CURRENT
    _CURRENT = DistEnv(rank=rank, world_size=world, local_rank=local_rank, backend=backend, hosts=tuple(hosts))
    return _CURRENT


_CURRENT: DistEnv | None = None


def collective_timeout_s() -> float:
    return float(os.environ.get("SUITE_COLLECTIVE_TIMEOUT_S", "900"))


def _whoami() -> tuple[str, str]:
    host = socket.gethostname()
    try:
        addr = socket.gethostbyname(host)
    except OSError:
        addr = ""
    return host, addr


def current_env() -> DistEnv | None:
    """The process group this process joined, as `init_distributed` saw it (None outside one)."""
    return _CURRENT


def peer_failure(exc: BaseException, env: DistEnv | None) -> dict | None:
    """When `exc` is a collective that failed because another rank went away: who it was, or None.

    gloo names the peer's address ("Connection closed by peer [10.0.0.12]:port"); that maps to ranks through
    the (hostname, address) table gathered at start. A timeout, NCCL, or a peer on this same node names no
    one apart: then every other rank is a suspect, and the summary says so.
    """
    if env is None or not env.enabled:
        return None
    text = f"{type(exc).__name__}: {exc}"
    if not re.search(r"(?i)connection (closed|reset|refused)|timed? ?out|broken pipe|gloo|nccl|socket|peer", text):
        return None
    addrs = set(re.findall(r"\b(\d{1,3}(?:\.\d{1,3}){3})\b", text))
    me_host, me_addr = env.hosts[env.rank] if env.hosts else (socket.gethostname(), "")
    gone = [r for r, (_, a) in enumerate(env.hosts) if a in addrs and a != me_addr]
    certain = bool(gone)
    if not gone:
        gone = [r for r in range(env.world_size) if r != env.rank]
    name = (lambda r: env.hosts[r][0]) if env.hosts else (lambda r: "?")
    who = ", ".join(f"rank {r} on {name(r)}" for r in gone)
    summary = (f"{who} stopped answering" if certain else f"a peer stopped answering (one of: {who})")
    return {"failed_ranks": gone, "failed_nodes": sorted({name(r) for r in gone}), "certain": certain,
            "reporting_rank": env.rank, "reporting_node": me_host,
            "ranks": {r: h for r, (h, _) in enumerate(env.hosts)},
            "summary": f"{summary}; rank {env.rank} on {me_host} saw it in a collective"}


def all_reduce_sum(t: torch.Tensor, env: DistEnv) -> torch.Tensor:
    if env.enabled:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def barrier(env: DistEnv) -> None:
    if env.enabled:
        dist.barrier()


def broadcast_object(obj, env: DistEnv):
    if not env.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
