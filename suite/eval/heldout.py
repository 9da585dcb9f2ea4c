"""Held-out cross-entropy in nats/token: the L of the scaling laws, and its standard error over blocks.

    loss = heldout_loss(HiddenStatesLM(model), source, batch_size=32)
    stats = heldout_stats(HiddenStatesLM(model), source)     # {"loss", "stderr", "n_blocks", "n_tokens"}
Sums over every predicted token of the source's held-out split (processes share the examples and
all-reduce the sums), so the value does not depend on batch size or process count.

The standard error treats the held-out blocks (examples, i.e. token sequences) as the sampled units: the loss
is the ratio L = sum_i s_i / sum_i t_i of block loss sums s_i over block token counts t_i, and its SE is the
ratio (linearization) estimator sqrt(n/(n-1) * sum_i (s_i - L t_i)^2) / sum_i t_i. For blocks of equal length,
as every source here makes, that is exactly the sample SD (ddof=1) of the per-block mean losses / sqrt(n).
The per-token losses come from the same log-softmax that gives the loss, so the loss itself is unchanged.
"""
from __future__ import annotations

import math
from contextlib import nullcontext

import numpy as np
import torch
import torch.nn.functional as F

from ..distributed import DistEnv, all_reduce_sum
from ..methods.chunked import IGNORE_INDEX, head_loss


def _recording_ce(store: list):
    """ce_objective's loss (the same bits: cross_entropy is nll_loss of log_softmax), keeping per-token losses."""
    def objective(zs: torch.Tensor, zt, labels: torch.Tensor):
        logp = torch.log_softmax(zs, dim=-1)
        store.append(-logp.gather(1, labels[:, None]).squeeze(1).detach())
        return F.nll_loss(logp, labels, reduction="sum"), {}
    return objective


@torch.no_grad()
def heldout_stats(model, source, batch_size: int = 32, device: str | torch.device = "cpu",
                  autocast=None, dist_env=None, max_examples: int | None = None,
                  split: str = "heldout") -> dict[str, float | int | None]:
    """Mean next-token cross-entropy (nats) over the held-out split, with its standard error over blocks.

    Returns `loss` (nats/token, what `heldout_loss` returns), `stderr` (nats/token; None with fewer than two
    blocks), `n_blocks` (examples that had a predicted token) and `n_tokens`. `model` is a HiddenStatesLM.
    """
    env = dist_env or DistEnv()
    n = source.num_examples(split)
    if max_examples is not None:
        n = min(n, max_examples)
    was_training = model.training
    model.eval()
    # loss sum, labels, blocks, sum s_i, sum t_i, sum s_i^2, sum s_i t_i, sum t_i^2 (s_i, t_i: block i's loss
    # sum and predicted tokens); the first two are the loss as it always was, the rest its standard error
    total = torch.zeros(8, dtype=torch.float64)
    mine = np.arange(env.rank, n, env.world_size)
    for start in range(0, len(mine), batch_size):
        ex = torch.from_numpy(source.batch(mine[start:start + batch_size].tolist(), split=split)).to(device)
        labels = ex[:, 1:]
        per_token: list[torch.Tensor] = []
        with autocast or nullcontext():
            h = model(ex[:, :-1])
            loss, _ = head_loss(h, model.head_weight, labels, _recording_ce(per_token))
        keep = (labels != IGNORE_INDEX).reshape(-1).cpu()
        token_loss = torch.zeros(keep.numel(), dtype=torch.float64)
        if per_token:
            token_loss[keep] = torch.cat(per_token).double().cpu()
        s = token_loss.reshape(labels.shape).sum(1)
        t = keep.reshape(labels.shape).sum(1).double()
        total[0] += float(loss)
        total[1] += labels.numel()
        total[2] += float((t > 0).sum())
        total[3:] += torch.stack([s.sum(), t.sum(), (s * s).sum(), (s * t).sum(), (t * t).sum()])
    all_reduce_sum(total, env)
    model.train(was_training)
    blocks, s_sum, tokens, ss, st, tt = total[2:].tolist()
    stderr = None
    if blocks >= 2 and tokens > 0:
        mean = s_sum / tokens
        resid = max(ss - 2.0 * mean * st + mean * mean * tt, 0.0)
        stderr = math.sqrt(blocks / (blocks - 1) * resid) / tokens
    return {"loss": float(total[0] / total[1]), "stderr": stderr, "n_blocks": int(blocks), "n_tokens": int(tokens)}


def heldout_loss(model, source, batch_size: int = 32, device: str | torch.device = "cpu",
                 autocast=None, dist_env=None, max_examples: int | None = None, split: str = "heldout") -> float:
    """Mean next-token cross-entropy (nats) over the held-out split. `model` is a HiddenStatesLM."""
    return heldout_stats(model, source, batch_size, device, autocast, dist_env, max_examples, split)["loss"]
