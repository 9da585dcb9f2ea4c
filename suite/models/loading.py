"""What the model builders share (build.py: causal LMs; vlm.py: vision-language models)."""
from __future__ import annotations

import contextlib

import torch

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float16": torch.float16, "fp16": torch.float16}


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
