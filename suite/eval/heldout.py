"""Held-out cross-entropy in nats/token: the L of the scaling laws.

    loss = heldout_loss(HiddenStatesLM(model), source, batch_size=32)
Sums over every predicted token of the source's held-out split (processes share the examples and
all-reduce the sums), so the value does not depend on batch size or process count.
"""
from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import torch

from ..distributed import DistEnv, all_reduce_sum
from ..methods.base import ce_objective
from ..methods.chunked import head_loss


@torch.no_grad()
def heldout_loss(model, source, batch_size: int = 32, device: str | torch.device = "cpu",
                 autocast=None, dist_env=None, max_examples: int | None = None, split: str = "heldout") -> float:
    """Mean next-token cross-entropy (nats) over the held-out split. `model` is a HiddenStatesLM."""
    env = dist_env or DistEnv()
    n = source.num_examples(split)
    if max_examples is not None:
        n = min(n, max_examples)
    was_training = model.training
    model.eval()
    total = torch.zeros(2, dtype=torch.float64)
    mine = np.arange(env.rank, n, env.world_size)
    for start in range(0, len(mine), batch_size):
        ex = torch.from_numpy(source.batch(mine[start:start + batch_size].tolist(), split=split)).to(device)
        with autocast or nullcontext():
            h = model(ex[:, :-1])
            loss, _ = head_loss(h, model.head_weight, ex[:, 1:], ce_objective)
        total[0] += float(loss)
        total[1] += ex[:, 1:].numel()
    all_reduce_sum(total, env)
    model.train(was_training)
    return float(total[0] / total[1])
