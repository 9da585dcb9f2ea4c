"""Parameter and FLOP counting the way the scaling-law papers do it.

N (non-embedding parameters, Kaplan et al. 2020; Busbridge et al. 2025) excludes the token embedding
and the LM head (tied or not) and any learned position embedding; norms and biases are counted.
"""
from __future__ import annotations

import torch.nn as nn


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in _unique_params(model))


def count_non_embedding(model: nn.Module) -> int:
    """N: every parameter except the input embedding, the output head and position embeddings."""
    skip = set()
    emb = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    for mod in (emb, head):
        if mod is not None:
            skip.update(id(p) for p in mod.parameters())
    for name, mod in model.named_modules():
        # GPT-2 style learned positions (wpe) and similar; RoPE models have none
        if isinstance(mod, nn.Embedding) and any(k in name.split(".")[-1] for k in ("wpe", "position")):
            skip.update(id(p) for p in mod.parameters())
    return sum(p.numel() for p in _unique_params(model) if id(p) not in skip)


def _unique_params(model: nn.Module):
    seen = set()
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            yield p


def forward_flops_per_token(n_non_embedding: int, n_layers: int, d_model: int, n_ctx: int, vocab: int) -> float:
    """Forward FLOPs per token, Kaplan et al. (2020) Table 1: 2N + 2·n_layer·n_ctx·d_model, plus the LM head 2·d·V.

    Training costs 3× this (backward = 2× forward). The attention term uses the full context,
    an upper bound for causal attention (Kaplan's convention).
    """
    return 2.0 * n_non_embedding + 2.0 * n_layers * n_ctx * d_model + 2.0 * d_model * vocab
