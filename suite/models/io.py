"""Checkpoint io: models in safetensors (Hugging Face layout), written atomically."""
from __future__ import annotations

from pathlib import Path

from .._io import atomic_replace_dir, mkdtemp


def save_pretrained(model, out_dir: str | Path, tokenizer=None) -> Path:
    """`save_pretrained` (safetensors) plus tokenizer into a temp dir, then moved into place."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = mkdtemp(out_dir.parent, f".{out_dir.name}.")
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a one-shard "Writing model shards" bar per save is noise in run logs
    try:
        model.save_pretrained(tmp, safe_serialization=True)
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()
    if tokenizer is not None:
        tokenizer.save_pretrained(tmp)
    atomic_replace_dir(tmp, out_dir)
    return out_dir
