"""Build causal LMs from a spec: a named tiny config (`tiny-2M`), a local path, or a Hugging Face id.

    model = build_model("tiny-2M", vocab_size=516, seed=0)
    model = build_model("runs/teacher/model")          # a saved checkpoint (HF format)
    model = build_model("Qwen/Qwen2.5-0.5B", dtype="bfloat16")   # from the hub when reachable
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import torch

from .tiny import TINY

_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
           "float16": torch.float16, "fp16": torch.float16}


def is_tiny(spec: str) -> bool:
    return spec in TINY


def build_model(spec: str, vocab_size: int | None = None, seed: int | None = None, dtype: str | None = None):
    """A `transformers` causal LM. Tiny names are built from scratch (seeded); paths and ids are loaded."""
    from transformers import AutoModelForCausalLM

    torch_dtype = _DTYPES[dtype] if dtype else None
    if is_tiny(spec):
        if vocab_size is None:
            raise ValueError(f"building {spec!r} from scratch needs vocab_size (from the tokenizer)")
        if seed is not None:
            torch.manual_seed(seed)
        cfg = TINY.get(spec).to_hf(vocab_size)
        model = AutoModelForCausalLM.from_config(cfg)
        return model.to(torch_dtype) if torch_dtype else model
    path = Path(os.path.expanduser(spec))
    looks_local = spec.startswith((".", "/", "~")) or path.exists()
    if looks_local and not (path / "config.json").exists():
        raise FileNotFoundError(
            f"model {spec!r}: no config.json in {path.resolve()} (expected a checkpoint saved by `suite train` "
            f"or `save_pretrained`); tiny names: {', '.join(TINY.names())}")
    kwargs = {"dtype": torch_dtype} if torch_dtype else {}
    try:
        with quiet_local_load(looks_local):
            return AutoModelForCausalLM.from_pretrained(str(path) if looks_local else spec, **kwargs)
    except OSError as e:
        raise OSError(f"could not load model {spec!r} (not a tiny name, local checkpoint, or reachable hub id; "
                      f"tiny names: {', '.join(TINY.names())}): {e}") from e


@contextlib.contextmanager
def quiet_local_load(local: bool = True):
    """No "Loading weights" bar for a local load (noise in run logs); downloads keep theirs."""
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    if local:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if bars:
            hf_logging.enable_progress_bar()


def model_shape(model) -> dict:
    """Layers, width, heads and vocabulary of a loaded model, for FLOP accounting and results."""
    cfg = model.config
    cfg = getattr(cfg, "text_config", None) or cfg
    return {
        "n_layers": int(cfg.num_hidden_layers),
        "d_model": int(cfg.hidden_size),
        "n_heads": int(cfg.num_attention_heads),
        "vocab_size": int(model.get_output_embeddings().weight.shape[0]),
        "family": str(cfg.model_type),
    }
