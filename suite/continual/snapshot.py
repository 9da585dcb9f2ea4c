"""The base model's activations on the replay set, on disk in half precision, and GeRe's thresholds.

    snap = build_snapshot(base, replay_ids, "runs/x/snapshots/KEY")   # once, before the first task
    snap = Snapshot.open("runs/x/snapshots/KEY")   # memory-mapped: a batch reads only its own rows from disk
    snap.rows([3, 17])                             # [[L_3, H], [L_17, H]] float16, token by token
    snap.thresholds(sigma=1.0)                     # (μ − σ, μ + σ) per hidden dimension, float32 [H]

What is stored (methods.md B.3, B.13): the *final normed* hidden states (the input of the LM head) of every
token of every replay sample, run without special tokens and truncated exactly as training sees them, in one
float16 array `states.npy` [Σ L_i, H] with row offsets `offsets.npy` [N + 1]; an 8B model's 1000 × 563 tokens
× 4096 dims take 4.6 GB instead of the reference's 9.2 GB of fp32. `head.safetensors` keeps the base LM head
(float16) so the KL-imitation baseline gets the base logits as `h0 @ W0ᵀ` without the base model.

μ and σ are per-dimension moments over all tokens of the float32 states, as the reference computes them,
accumulated in float64 block by block while the base model runs (`stream_moments`; `moments` is the
in-memory reference), so memory holds one batch of states. The TM loss uses h0 only through its activation
state (below μ − σ, above μ + σ, or between), and rounding to float16 would move the ~1e-4 of elements that lie
within one float16 step of a threshold to the other side (173 of 1.2M in the toy study): the base model
itself would then violate its own snapshot at the first step, by ~1e-4, which a dynamic weight (CE / TM)
turns into the largest gradient of the step. So the base model runs twice: once for the moments, once to
store each value as its nearest float16 unless that crosses a threshold (at σ multiple 1, the reference's),
then as the float16 neighbour on its own side: every stored element keeps its float32 state exactly.
A snapshot directory is written under a temporary name and renamed when complete (first writer wins).
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch

from .._io import follow_umask, mkdtemp

_BLOCK_ROWS = 65_536  # tokens per block when streaming the states (65k × 4096 fp16 = 512 MB at 8B width)


def moments(states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(μ, σ) per dimension of [tokens, H] states in float64; σ² = E[h²] − μ², as the reference computes it."""
    x = states.double()
    mu = x.mean(0)
    var = (x * x).mean(0) - mu * mu
    return mu, var.clamp_min(0).sqrt()


def stream_moments(blocks: Iterable) -> tuple[torch.Tensor, torch.Tensor]:
    """`moments` over blocks of [tokens, H] states (tensors or arrays), one block in memory at a time."""
    s = ss = None
    n = 0
    for b in blocks:
        x = torch.as_tensor(np.asarray(b, dtype=np.float64)) if not torch.is_tensor(b) else b.double()
        s = x.sum(0) if s is None else s + x.sum(0)
        ss = (x * x).sum(0) if ss is None else ss + (x * x).sum(0)
        n += x.shape[0]
    mu = s / n
    return mu, (ss / n - mu * mu).clamp_min(0).sqrt()


def disk_blocks(states: np.ndarray, block: int = _BLOCK_ROWS) -> Iterator[np.ndarray]:
    """`block` rows at a time of a (memory-mapped) [tokens, H] array."""
    for start in range(0, states.shape[0], block):
        yield states[start:start + block]


def state_of(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """-1 (negative: x <= lo), +1 (positive: x >= hi) or 0 (neutral), as the TM loss classifies h0."""
    return (x >= hi).to(torch.int8) - (x <= lo).to(torch.int8)


def to_half_keeping_states(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """float32 -> float16, nearest except where that changes the activation state; there, the neighbour on
    the value's own side of the threshold (lo, hi: float32 [H])."""
    x = x.float()
    y = x.half()
    want = state_of(x, lo, hi)
    bad = state_of(y.float(), lo, hi) != want
    if bad.any():  # one step suffices: the two float16 neighbours of x bracket it
        toward = torch.where(y[bad].float() > x[bad], float("-inf"), float("inf")).half()
        y[bad] = torch.nextafter(y[bad], toward)
        bad = state_of(y.float(), lo, hi) != want
        if bad.any():
            raise ValueError(f"{int(bad.sum())} activation states cannot be kept in float16")
    return y


@dataclass
class Snapshot:
    path: Path
    states: np.ndarray        # float16 [Σ L_i, H], memory-mapped
    offsets: np.ndarray       # int64 [N + 1]: sample i is states[offsets[i]:offsets[i + 1]]
    mu: torch.Tensor          # float64 [H]
    sigma: torch.Tensor       # float64 [H]
    meta: dict

    @classmethod
    def open(cls, path: str | os.PathLike) -> "Snapshot":
        path = Path(path)
        if not (path / "meta.json").exists():
            raise FileNotFoundError(f"{path}: not a complete replay snapshot (no meta.json)")
        from safetensors.torch import load_file

        stats = load_file(str(path / "moments.safetensors"))
        return cls(path=path, states=np.load(path / "states.npy", mmap_mode="r"),
                   offsets=np.load(path / "offsets.npy"), mu=stats["mu"], sigma=stats["sigma"],
                   meta=json.loads((path / "meta.json").read_text()))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def rows(self, indices: Sequence[int]) -> list[np.ndarray]:
        return [self.states[self.offsets[i]:self.offsets[i + 1]] for i in indices]

    def thresholds(self, sigma: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """(negative threshold μ − kσ, positive threshold μ + kσ), float32 [H]; the reference's k is 1."""
        return (self.mu - sigma * self.sigma).float(), (self.mu + sigma * self.sigma).float()

    def head(self) -> torch.Tensor:
        from safetensors.torch import load_file

        return load_file(str(self.path / "head.safetensors"))["weight"]


def _base_states(model, replay, batch_size, device, autocast) -> Iterator[tuple[int, list[torch.Tensor]]]:
    """(first sample index, [L_i, H] float32 states of each sample) per right-padded batch, no attention mask:
    the model is causal, so a token's state does not depend on the padding after it (the reference runs
    samples one at a time, unpadded)."""
    from contextlib import nullcontext

    for start in range(0, len(replay), batch_size):
        rows = replay[start:start + batch_size]
        width = max(len(r) for r in rows)
        ids = torch.zeros(len(rows), width, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, :len(r)] = torch.as_tensor(np.asarray(r), dtype=torch.long)
        with autocast or nullcontext():
            h = model(ids.to(device)).float().cpu()
        yield start, [h[i, :len(r)] for i, r in enumerate(rows)]


@torch.no_grad()
def build_snapshot(model, replay: Sequence[np.ndarray], path: str | os.PathLike, *, device="cpu", autocast=None,
                   batch_size: int = 8, meta: dict | None = None) -> Snapshot:
    """Run `model` (a HiddenStatesLM of the base) over every replay sample and store its states (see the
    module docstring: moments from the float32 states, float16 values that keep each element's state)."""
    from safetensors.torch import save_file

    path = Path(path)
    if (path / "meta.json").exists():
        return Snapshot.open(path)
    lengths = np.array([len(r) for r in replay], dtype=np.int64)
    if len(replay) == 0 or lengths.min() < 1:
        raise ValueError("the replay set is empty or holds an empty sample")
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    hidden = int(model.head_weight.shape[1])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = mkdtemp(path.parent, f".{path.name}.")
    try:
        states = np.lib.format.open_memmap(tmp / "states.npy", mode="w+", dtype=np.float16,
                                           shape=(int(offsets[-1]), hidden))
        was_training = model.training
        model.eval()
        mu, sigma = stream_moments(torch.cat(hs) for _, hs in _base_states(model, replay, batch_size, device,
                                                                           autocast))
        lo, hi = (mu - sigma).float(), (mu + sigma).float()  # Snapshot.thresholds(1.0), the reference's
        for start, hs in _base_states(model, replay, batch_size, device, autocast):
            for i, h in enumerate(hs):
                j = start + i
                states[offsets[j]:offsets[j + 1]] = to_half_keeping_states(h, lo, hi).numpy()
        model.train(was_training)
        states.flush()
        np.save(tmp / "offsets.npy", offsets)
        save_file({"mu": mu, "sigma": sigma}, str(tmp / "moments.safetensors"))
        save_file({"weight": model.head_weight.detach().to("cpu", torch.float16).contiguous()},
                  str(tmp / "head.safetensors"))
        info = {**(meta or {}), "samples": len(replay), "tokens": int(offsets[-1]), "hidden": hidden,
                "dtype": "float16", "moments": "float32 states, float64 sums", "states_kept_at_sigma": 1.0}
        (tmp / "meta.json").write_text(json.dumps(info, indent=2, sort_keys=True, default=str))
        follow_umask(tmp)
        try:
            os.rename(tmp, path)
        except OSError:  # another cell finished the same snapshot first: use its copy
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Snapshot.open(path)
