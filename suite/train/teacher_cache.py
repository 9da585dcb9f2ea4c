"""The teacher's outputs paid for once per grid: top-k log-probabilities per token, shared by every student
that trains on the same token stream.

    method: {name: kd, teacher_cache: topk, cache_k: 128, cache_dtype: float16}

A KD student of a frozen teacher recomputes the teacher's forward pass over its stream at every step; in a
grid, students of one teacher on one data source see the same stream (an example is a pure function of its
index, the data seed and the sequence length: suite/data/sources.py), so they recompute the same numbers. Here
the first student to reach a stretch of the stream computes the teacher's log-softmax at temperature T, keeps
the k most likely tokens per position (log-probabilities and ids: the KD loss adds a tail bucket with the rest
of the mass, exact when k = V) and writes them; every other student reads them.

Layout: `<cache dir>/<key>/shard_NNNNNN/` holds examples j·S .. j·S + count − 1 of the train split (count <= S:
the furthest any cell has needed) as `logp.npy` ([count, seq_len, k], float16 / float32 or the bits of bfloat16),
`idx.npy` ([count, seq_len, k], uint16 when V fits, else int32) and `manifest.json` (count, each file's bytes and
sha256; written last). A shard is computed, or extended for a cell with a larger budget, under a lock
(`.shard_NNNNNN.lock`, flock: concurrent cells and ranks wait, then read), in a temporary directory renamed into
place, so a reader never sees half of one; a cell computes the teacher on no example past its own budget. A shard
whose files do not match its manifest is moved aside (`.corrupt`) and computed again. The key hashes the teacher's
weights (refs.model_identity), the data section, the tokenizer's vocabulary, T, k and the storage dtype; S follows
from them (about 8 MB a shard).

The cache directory is the sweep's `.teacher_cache/` (the cell's parent), or SUITE_TEACHER_CACHE.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

from .._io import atomic_replace_dir, atomic_write_json, file_sha256, locked, mkdtemp
from ..refs import model_identity

CACHE_DIR = ".teacher_cache"
MODES = ("none", "topk")
DTYPES = {"float32": (np.float32, torch.float32, 4), "bfloat16": (np.uint16, torch.bfloat16, 2),
          "float16": (np.float16, torch.float16, 2)}
SHARD_BYTES = 8 << 20    # a shard: ~8 MB on disk (k=128, 16-bit values + uint16 ids, seq_len 128: 128 examples),
                         # so a cell computes at most that much past its budget
VERSION = 1              # bump when the layout or the numbers stored change


def cache_dir(out: Path) -> Path:
    env = os.environ.get("SUITE_TEACHER_CACHE")
    return Path(env) if env else Path(out).parent / CACHE_DIR


def _vocab_hash(tokenizer) -> str:
    vocab = tokenizer.get_vocab() if hasattr(tokenizer, "get_vocab") else {}
    blob = json.dumps(sorted(vocab.items()) if vocab else len(tokenizer))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def cache_key(teacher_spec: str, data_cfg, tokenizer, seq_len: int, temperature: float, k: int, dtype: str) -> str:
    """20 hex chars naming (teacher weights, token stream, T, k, dtype): any change is a new cache."""
    blob = json.dumps({"v": VERSION, "teacher": model_identity(teacher_spec),
                       "data": dataclasses.asdict(data_cfg), "vocab": _vocab_hash(tokenizer), "seq_len": seq_len,
                       "T": float(temperature), "k": int(k), "dtype": dtype}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


class TeacherCache:
    """Top-k teacher log-probabilities for the train examples of one stream, computed shard by shard on demand.

    `rows(first, n, compute)` returns (logp [n, seq_len, k] float32, idx [n, seq_len, k] int64) for examples
    first..first+n; `compute(indices) -> (logp, idx)` runs the teacher on missing shards. Counters say what
    this cell did: shards written (teacher forwards paid) and read."""

    def __init__(self, root: Path, key: str, seq_len: int, k: int, vocab: int, dtype: str, meta: dict,
                 limit: int = 0):
        if dtype not in DTYPES:
            raise ValueError(f"teacher_cache dtype {dtype!r}: valid: {', '.join(DTYPES)}")
        self.dir, self.key, self.T, self.k, self.dtype = Path(root) / key, key, seq_len, k, dtype
        self.idx_dtype = np.uint16 if vocab <= 1 << 16 else np.int32
        per_example = seq_len * k * (DTYPES[dtype][2] + np.dtype(self.idx_dtype).itemsize)
        self.shard_examples = max(1, SHARD_BYTES // per_example)
        self.meta = {**meta, "key": key, "seq_len": seq_len, "k": k, "dtype": dtype, "vocab": vocab,
                     "shard_examples": self.shard_examples, "version": VERSION}
        self.limit = int(limit)   # train examples this cell reads: shards are filled that far, not further
        self.written: set[int] = set()
        self.read: set[int] = set()
        self.examples_computed = 0
        self._open: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    # ---- shards
    def _shard_dir(self, j: int) -> Path:
        return self.dir / f"shard_{j:06d}"

    def _count(self, d: Path) -> int | None:
        """Examples shard `d` holds (its files match the manifest), or None: missing or damaged."""
        try:
            m = json.loads((d / "manifest.json").read_text())
            ok = all((d / n).stat().st_size == f["bytes"] and file_sha256(d / n) == f["sha256"]
                     for n, f in m["files"].items())
            return int(m["count"]) if ok else None
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _load(self, j: int) -> tuple[np.ndarray, np.ndarray]:
        d = self._shard_dir(j)
        return np.load(d / "logp.npy", mmap_mode="r"), np.load(d / "idx.npy", mmap_mode="r")

    def _write(self, j: int, have: int, upto: int, compute) -> None:
        """Shard j with examples [0, upto) of it: the `have` it holds, then the teacher on the rest."""
        first = j * self.shard_examples
        logp, idx = compute(list(range(first + have, first + upto)))
        np_dt, t_dt, _ = DTYPES[self.dtype]
        logp = logp.to(t_dt)
        arr = (logp.view(torch.int16).cpu().numpy().view(np.uint16) if self.dtype == "bfloat16"
               else logp.cpu().numpy().astype(np_dt))
        ids = idx.cpu().numpy().astype(self.idx_dtype)
        if have:
            old_logp, old_idx = self._load(j)
            arr, ids = np.concatenate([old_logp[:have], arr]), np.concatenate([old_idx[:have], ids])
        tmp = mkdtemp(self.dir, f".shard_{j:06d}.tmp-")
        try:
            np.save(tmp / "logp.npy", arr)
            np.save(tmp / "idx.npy", ids)
            files = {n: {"bytes": (tmp / n).stat().st_size, "sha256": file_sha256(tmp / n)}
                     for n in ("logp.npy", "idx.npy")}
            atomic_write_json(tmp / "manifest.json", {**self.meta, "shard": j, "first": first, "count": upto,
                                                      "files": files})
            atomic_replace_dir(tmp, self._shard_dir(j))   # readers holding the old files keep reading them
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.written.add(j)
        self.examples_computed += upto - have

    def _shard(self, j: int, need: int, compute) -> tuple[np.ndarray, np.ndarray]:
        """Shard j holding at least its first `need` examples (computed up to this cell's `limit` if missing)."""
        if j in self._open and self._open[j][0].shape[0] >= need:
            return self._open[j]
        d = self._shard_dir(j)
        count = self._count(d) if d.exists() else None
        if count is None or count < need:
            with locked(self.dir / f".shard_{j:06d}.lock"):
                count = self._count(d) if d.exists() else None   # another cell may have written it meanwhile
                if count is None and d.exists():
                    bad = d.with_name(d.name + ".corrupt")
                    shutil.rmtree(bad, ignore_errors=True)
                    os.replace(d, bad)
                    print(f"suite: warning: teacher cache shard {d} does not match its manifest; moved it to "
                          f"{bad.name} and computing it again", file=sys.stderr)
                if count is None or count < need:
                    # a shard holds what the cells that reached it needed: this one's budget, at most S
                    upto = max(need, min(self.shard_examples, self.limit - j * self.shard_examples))
                    self._write(j, count or 0, upto, compute)
        if j not in self.written:
            self.read.add(j)
        self._open = {j: self._load(j)}   # one shard open at a time: steps walk the stream in order
        return self._open[j]

    def rows(self, first: int, n: int, compute) -> tuple[torch.Tensor, torch.Tensor]:
        logps, idxs = [], []
        i, end = first, first + n
        while i < end:
            j, r = divmod(i, self.shard_examples)
            take = min(end - i, self.shard_examples - r)
            logp, idx = self._shard(j, r + take, compute)
            logps.append(np.array(logp[r:r + take]))   # a copy: the shard is a read-only memory map
            idxs.append(np.array(idx[r:r + take]))
            i += take
        logp = np.concatenate(logps)
        logp = (torch.from_numpy(logp.view(np.int16)).view(torch.bfloat16) if self.dtype == "bfloat16"
                else torch.from_numpy(logp))
        return logp.float(), torch.from_numpy(idxs[0] if len(idxs) == 1 else np.concatenate(idxs)).long()

    def scalar(self, name: str, measure) -> float:
        """A number about the teacher on this stream (its held-out loss), measured once under the lock."""
        path = self.dir / f"{name}.json"
        with locked(self.dir / f".{name}.lock"):
            try:
                return float(json.loads(path.read_text())["value"])
            except (OSError, ValueError, KeyError, TypeError):
                value = float(measure())
                atomic_write_json(path, {"value": value, "key": self.key})
                return value

    # ---- what the cell reports
    def bytes_on_disk(self, shards) -> int:
        total = 0
        for j in shards:
            for n in ("logp.npy", "idx.npy"):
                p = self._shard_dir(j) / n
                total += p.stat().st_size if p.exists() else 0
        return total

    def summary(self) -> dict:
        used = sorted({*self.written, *self.read})
        mode = "write" if self.written and not self.read else "hit" if self.read and not self.written else \
            "mixed" if used else "unused"
        return {"key": self.key, "dir": str(self.dir), "k": self.k, "dtype": self.dtype, "mode": mode,
                "shards_written": len(self.written), "shards_read": len(self.read),
                "shard_examples": self.shard_examples, "bytes": self.bytes_on_disk(used),
                "examples_computed": self.examples_computed}


def shard_count(n_examples: int, shard_examples: int) -> int:
    return math.ceil(n_examples / shard_examples)
