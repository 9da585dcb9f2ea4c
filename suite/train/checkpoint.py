"""Training checkpoints: model weights in safetensors, optimizer / scheduler / RNG in torch format.

    checkpoints/step_00000120/  model.safetensors · trainer.pt · state.json
A checkpoint directory is written under a temporary name and renamed when complete, so the newest
directory with a state.json is always whole; resume discovers it on disk (never from job arguments).
"""
from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from .._io import atomic_replace_dir, mkdtemp

_STEP_DIR = re.compile(r"step_(\d{8})$")


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
    atomic_replace_dir(tmp, final)
    for old in list_checkpoints(ckpt_root)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(ckpt_root: Path) -> list[Path]:
    """Complete checkpoints (with state.json), oldest first."""
    ckpt_root = Path(ckpt_root)
    if not ckpt_root.is_dir():
        return []
    found = [p for p in ckpt_root.iterdir() if _STEP_DIR.match(p.name) and (p / "state.json").exists()]
    return sorted(found, key=lambda p: int(_STEP_DIR.match(p.name).group(1)))


def latest_checkpoint(ckpt_root: Path) -> Path | None:
    found = list_checkpoints(ckpt_root)
    return found[-1] if found else None


def load_checkpoint(path: Path, model, optimizer, scheduler, scaler=None) -> dict:
    """Restore everything saved by save_checkpoint; returns the state dict (step, tokens, ...)."""
    path = Path(path)
    weights = load_file(str(path / "model.safetensors"))
    missing, unexpected = model.load_state_dict(weights, strict=False)
    # tied weights were saved once; anything else missing is a real mismatch
    tied = {k for k in missing if k.endswith("lm_head.weight") or k.endswith("embed_tokens.weight")}
    if set(missing) - tied or unexpected:
        raise RuntimeError(f"checkpoint {path} does not match the model: missing {sorted(set(missing) - tied)}, "
                           f"unexpected {sorted(unexpected)}")
    trainer = torch.load(path / "trainer.pt", map_location="cpu", weights_only=False)
    optimizer.load_state_dict(trainer["optimizer"])
    scheduler.load_state_dict(trainer["scheduler"])
    if scaler is not None and trainer.get("scaler"):
        scaler.load_state_dict(trainer["scaler"])
    set_rng_state(trainer["rng"])
    return json.loads((path / "state.json").read_text())
