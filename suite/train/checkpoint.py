"""Training checkpoints: model weights in safetensors, optimizer / scheduler / RNG in torch format.

    checkpoints/step_00000120/  model.safetensors · trainer.pt · state.json · manifest.json
A checkpoint directory is written under a temporary name, its manifest.json (each file's name, size and
sha256) last, then renamed into place, so a directory with a manifest was whole when written; resume
discovers it on disk (never from job arguments). A file damaged since (a truncated copy, a bad disk) no
longer matches the manifest: `resume_checkpoint` walks the checkpoints newest-first, moves a damaged one
aside (step_XXXXXXXX.damaged, kept for inspection and out of the keep=N pruning) and falls back to the next.
Checkpoints written before manifests existed (state.json, no manifest.json) are still accepted.
"""
from __future__ import annotations

import json
import os
import random
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from .._io import atomic_replace_dir, file_sha256, mkdtemp

_STEP_DIR = re.compile(r"step_(\d{8})$")
_FILES = ("model.safetensors", "trainer.pt", "state.json")
MANIFEST = "manifest.json"


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, truncated, corrupted or unreadable; the message names the file."""


def _state_dict(model: torch.nn.Module) -> dict:
    # safetensors refuses shared storage (tied embeddings): keep the first name of each tensor
    out, seen = {}, set()
    for k, v in model.state_dict().items():
        key = (v.data_ptr(), v.shape)
        if key in seen:
            continue
        seen.add(key)
        out[k] = v.detach().contiguous().cpu()
    return out


def rng_state() -> dict:
    st = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st: dict) -> None:
    torch.set_rng_state(st["torch"])
    np.random.set_state(st["numpy"])
    random.setstate(st["python"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(ckpt_root: Path, step: int, model, optimizer, scheduler, state: dict,
                    scaler=None, keep: int = 2) -> Path:
    ckpt_root = Path(ckpt_root)
    ckpt_root.mkdir(parents=True, exist_ok=True)
    final = ckpt_root / f"step_{step:08d}"
    tmp = mkdtemp(ckpt_root, f".step_{step:08d}.")
    save_file(_state_dict(model), str(tmp / "model.safetensors"))
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict() if scaler is not None else None, "rng": rng_state()},
               tmp / "trainer.pt")
    (tmp / "state.json").write_text(json.dumps({**state, "step": step}, indent=2, sort_keys=True))
    files = {}
    for name in _FILES:  # on disk before the manifest that vouches for them, and before the rename
        _fsync(tmp / name)
        files[name] = {"bytes": (tmp / name).stat().st_size, "sha256": file_sha256(tmp / name)}
    (tmp / MANIFEST).write_text(json.dumps({"format": 1, "step": step, "files": files}, indent=2, sort_keys=True))
    _fsync(tmp / MANIFEST)
    _fsync(tmp)
    atomic_replace_dir(tmp, final)
    _fsync(ckpt_root)
    for old in list_checkpoints(ckpt_root)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(ckpt_root: Path) -> list[Path]:
    """Complete checkpoints, oldest first: step_XXXXXXXX directories with a manifest.json (or, written before
    manifests, a state.json). Whether their files are intact is `verify_checkpoint`'s question."""
    ckpt_root = Path(ckpt_root)
    if not ckpt_root.is_dir():
        return []
    # the manifest is written last inside the temporary directory, so a step_ directory with a state.json and
    # no manifest can only be an older checkpoint (the rename is atomic): treated as complete, as before
    found = [p for p in ckpt_root.iterdir() if _STEP_DIR.match(p.name) and p.is_dir()
             and ((p / MANIFEST).exists() or (p / "state.json").exists())]
    return sorted(found, key=lambda p: int(_STEP_DIR.match(p.name).group(1)))


def verify_checkpoint(path: Path, *, hashes: bool = True) -> str | None:
    """None when the checkpoint at `path` matches its manifest (sizes, and sha256 unless hashes=False);
    otherwise what is wrong, naming the file."""
    path = Path(path)
    man = path / MANIFEST
    if not man.exists():  # written before manifests: complete if its files are there
        for name in _FILES:
            if not (path / name).is_file():
                return f"{path / name}: missing (a checkpoint without {MANIFEST})"
        return None
    try:
        files = json.loads(man.read_text())["files"]
        entries = [(str(name), int(e["bytes"]), str(e["sha256"])) for name, e in files.items()]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        return f"{man}: unreadable ({type(e).__name__}: {e})"
    for name, size, _ in entries:  # sizes first: cheap, and the usual damage (a truncated copy)
        f = path / name
        if not f.is_file():
            return f"{f}: missing, the manifest lists it ({size} bytes)"
        actual = f.stat().st_size
        if actual != size:
            return f"{f}: {actual} bytes, manifest says {size} ({'truncated?' if actual < size else 'overwritten?'})"
    for name, _, sha in entries if hashes else []:
        f = path / name
        try:
            actual = file_sha256(f)
        except OSError as e:
            return f"{f}: unreadable ({e})"
        if actual != sha:
            return f"{f}: sha256 {actual[:16]}… but the manifest says {sha[:16]}… (corrupted)"
    return None


def latest_checkpoint(ckpt_root: Path) -> Path | None:
    """The newest complete checkpoint whose file sizes match its manifest (resume also checks sha256:
    `resume_checkpoint`)."""
    for p in reversed(list_checkpoints(ckpt_root)):
        if verify_checkpoint(p, hashes=False) is None:
            return p
    return None


def _read(f: Path, reader):
    try:
        return reader(f)
    except Exception as e:  # noqa: BLE001 - safetensors, pickle and zip errors alike; re-raised naming the file
        raise CheckpointError(f"{f}: cannot be read ({type(e).__name__}: {e})") from e


def read_checkpoint(path: Path) -> dict:
    """Every file of the checkpoint read into memory, nothing applied yet: {"weights", "trainer", "state"}.
    Raises CheckpointError naming the file that cannot be read."""
    path = Path(path)
    state = _read(path / "state.json", lambda f: json.loads(f.read_text()))
    if not isinstance(state, dict) or not isinstance(state.get("step"), int) or "tokens" not in state:
        raise CheckpointError(f"{path / 'state.json'}: has no step and tokens")
    weights = _read(path / "model.safetensors", lambda f: load_file(str(f)))
    trainer = _read(path / "trainer.pt", lambda f: torch.load(f, map_location="cpu", weights_only=False))
    if not isinstance(trainer, dict) or not {"optimizer", "scheduler", "rng"} <= trainer.keys():
        raise CheckpointError(f"{path / 'trainer.pt'}: has no optimizer, scheduler and rng state")
    return {"weights": weights, "trainer": trainer, "state": state}


def apply_checkpoint(path: Path, payload: dict, model, optimizer, scheduler, scaler=None) -> dict:
    """Load what `read_checkpoint` read into the model, optimizer, scheduler, scaler and RNGs; returns the
    state dict (step, tokens, ...). A checkpoint that does not fit them is an error naming the file."""
    path = Path(path)
    try:
        missing, unexpected = model.load_state_dict(payload["weights"], strict=False)
    except RuntimeError as e:  # shape mismatches
        raise RuntimeError(f"{path / 'model.safetensors'} does not match the model: {e}") from e
    # tied weights were saved once; anything else missing is a real mismatch
    tied = {k for k in missing if k.endswith("lm_head.weight") or k.endswith("embed_tokens.weight")}
    if set(missing) - tied or unexpected:
        raise RuntimeError(f"checkpoint {path / 'model.safetensors'} does not match the model: missing "
                           f"{sorted(set(missing) - tied)}, unexpected {sorted(unexpected)}")
    trainer = payload["trainer"]
    try:
        optimizer.load_state_dict(trainer["optimizer"])
        scheduler.load_state_dict(trainer["scheduler"])
        if scaler is not None and trainer.get("scaler"):
            scaler.load_state_dict(trainer["scaler"])
        set_rng_state(trainer["rng"])
    except (RuntimeError, ValueError, KeyError, TypeError) as e:
        raise RuntimeError(f"{path / 'trainer.pt'} does not fit this optimizer / scheduler: "
                           f"{type(e).__name__}: {e}") from e
    return payload["state"]


def load_checkpoint(path: Path, model, optimizer, scheduler, scaler=None) -> dict:
    """Verify, read and restore everything saved by save_checkpoint; returns the state dict (step, tokens, ...).
    A damaged checkpoint raises CheckpointError naming the file (nothing is loaded then)."""
    problem = verify_checkpoint(path)
    if problem is not None:
        raise CheckpointError(problem)
    return apply_checkpoint(path, read_checkpoint(path), model, optimizer, scheduler, scaler)


def _warn(msg: str) -> None:
    print(f"suite: warning: {msg}", file=sys.stderr, flush=True)


def _move_aside(path: Path) -> Path | None:
    """step_XXXXXXXX -> step_XXXXXXXX.damaged (.damaged.2, ... if taken): never resumed, never pruned."""
    target, n = path.with_name(path.name + ".damaged"), 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.damaged.{n}")
    try:
        os.replace(path, target)
    except OSError as e:
        _warn(f"could not rename {path} aside ({e})")
        return None
    return target


def resume_checkpoint(ckpt_root: Path) -> tuple[Path, dict] | None:
    """The newest checkpoint that verifies (sizes and sha256) and reads, as (path, read_checkpoint's payload);
    None when there is none. Damaged ones on the way are renamed aside with a warning on stderr naming the
    file and the problem. Run it on one process only (it renames)."""
    for partial in Path(ckpt_root).glob(".step_*"):  # a save killed before its rename: never complete
        shutil.rmtree(partial, ignore_errors=True)
    damaged, found = [], None
    for p in reversed(list_checkpoints(ckpt_root)):
        problem = verify_checkpoint(p)
        if problem is None:
            try:
                found = (p, read_checkpoint(p))
                break
            except CheckpointError as e:  # verified but unreadable: a checkpoint without manifest, or bad at write
                problem = str(e)
        damaged.append((p, problem))
    then = (f"resuming from {found[0].name} instead" if found is not None else
            "no usable checkpoint left: training starts from scratch")
    for p, problem in damaged:
        moved = _move_aside(p)
        _warn(f"damaged checkpoint: {problem}; {'moved it to ' + moved.name if moved else 'left it in place'}, "
              f"{then}")
    return found
