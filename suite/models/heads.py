"""Expose a causal LM as (final hidden states, LM head) so losses can chunk over the head.

HF causal LMs compute `logits = lm_head(norm(decoder(x)))`; the [tokens × vocab] logits are the memory
hog at large vocabularies, so the loop never asks for them: it takes the normed hidden states from
`base_model` and hands the head weight to a chunked loss (methods/chunked.py).
"""
from __future__ import annotations

import torch
import torch.nn as nn


class HiddenStatesLM(nn.Module):
    """forward(input_ids) -> final normed hidden states [B, T, H]; `.head_weight` is the LM head [V, H]."""

    def __init__(self, lm: nn.Module):
        super().__init__()
        self.lm = lm
        head = lm.get_output_embeddings()
        if getattr(head, "bias", None) is not None:
            raise ValueError("LM heads with a bias are not supported by the chunked losses")

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        out = self.lm.base_model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
        return out.last_hidden_state

    @property
    def head_weight(self) -> torch.Tensor:
        return self.lm.get_output_embeddings().weight
