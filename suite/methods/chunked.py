"""Losses on the LM head computed in chunks of tokens, so [tokens × vocabulary] logits never exist at once.

    loss_sum = head_loss(h_s, W_s, labels, objective, h_t=h_t, W_t=W_t)   # chunked (default)
    loss_sum = naive_head_loss(h_s, W_s, labels, objective, h_t=h_t, W_t=W_t)  # reference

`objective(zs, zt, labels) -> (sum_loss, {name: sum})` sees one chunk of student logits (and teacher
logits when a teacher is given) in float32. The chunked path works like Liger-Kernel's fused linear
losses: the forward pass walks chunks of rows, computes each chunk's loss and, right there, its
gradients with respect to the student's hidden states and head weight; backward only scales them.
Matmuls: 4 per chunk (z_s, z_t, dL/dh, dL/dW), the same count as the naive loss, but peak memory holds
one chunk's logits instead of all of them. Rows whose label is ignore_index are dropped first.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

IGNORE_INDEX = -100
Objective = Callable[[torch.Tensor, "torch.Tensor | None", torch.Tensor], "tuple[torch.Tensor, dict]"]


MIN_CHUNK_ELEMENTS = 1 << 23  # 32 MB of fp32 logits: below this, per-chunk launches and syncs dominate


def auto_chunk_size(n_tokens: int, hidden: int, vocab: int) -> int:
    """Rows per chunk so one chunk of logits (rows × V) is about the size of the hidden states (n × H),
    Liger-Kernel's rule, but never under MIN_CHUNK_ELEMENTS logits; rounded up to a power of two.

    At V=128k, H=1024, n=4096: 128 rows (64 MB of fp32 logits per tensor instead of 2 GB); at V=516,
    H=256 everything at once. The floor matters for small students of large-vocabulary teachers: at
    V=49,152, H=160, n=8,192 Liger's rule alone gives 32 rows, 256 chunks per step, and on an H200 the
    step was launch-bound (measured: 24k tokens/s for tiny-2M); the floor gives 256 rows, 32 chunks.
    """
    rows = max(1, math.ceil(n_tokens / max(1, math.ceil(vocab / hidden))), math.ceil(MIN_CHUNK_ELEMENTS / vocab))
    return max(16, 1 << (rows - 1).bit_length())


def _select(h_s, labels, h_t):
    keep = labels.reshape(-1) != IGNORE_INDEX
    h_s = h_s.reshape(-1, h_s.shape[-1])[keep]
    h_t = None if h_t is None else h_t.reshape(-1, h_t.shape[-1])[keep]
    return h_s, labels.reshape(-1)[keep], h_t, keep


def naive_head_loss(h_s, W_s, labels, objective: Objective, h_t=None, W_t=None):
    """Reference: full logits of both models, then the objective. Returns (sum_loss, parts)."""
    h_s, y, h_t, _ = _select(h_s, labels, h_t)
    zs = (h_s @ W_s.t()).float()
    zt = None if h_t is None else (h_t @ W_t.t()).float()
    return objective(zs, zt, y)


class _ChunkedHeadLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h_s, W_s, h_t, W_t, y, objective, chunk, parts_out):
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_h = torch.zeros_like(h_s) if need_h else None
        grad_w = torch.zeros_like(W_s) if need_w else None
        total = h_s.new_zeros((), dtype=torch.float32)
        sums: dict[str, torch.Tensor] = {}  # parts stay on the device: one host sync per call, not per chunk
        w_leaf = W_s.detach().requires_grad_(need_w)
        for start in range(0, h_s.shape[0], chunk):
            sl = slice(start, start + chunk)
            hc = h_s[sl].detach().requires_grad_(need_h)
            with torch.no_grad():
                zt = None if h_t is None else (h_t[sl] @ W_t.t()).float()
            with torch.enable_grad():
                zs = (hc @ w_leaf.t()).float()
                loss, parts = objective(zs, zt, y[sl])
            wrt = [t for t, need in ((hc, need_h), (w_leaf, need_w)) if need]
            if wrt:
                grads = list(torch.autograd.grad(loss, wrt))
                if need_h:
                    grad_h[sl] = grads.pop(0)
                if need_w:
                    grad_w += grads.pop(0)
            total += loss.detach()
            for k, v in parts.items():
                v = v.detach().float() if torch.is_tensor(v) else torch.tensor(float(v), device=total.device)
                sums[k] = sums[k] + v if k in sums else v
        if sums:
            for k, v in zip(sums, torch.stack(list(sums.values())).tolist()):
                parts_out[k] = parts_out.get(k, 0.0) + v
        ctx.save_for_backward(*(g for g in (grad_h, grad_w) if g is not None))
        ctx.has = (need_h, need_w)
        return total

    @staticmethod
    def backward(ctx, g):
        saved = list(ctx.saved_tensors)
        need_h, need_w = ctx.has
        gh = saved.pop(0) if need_h else None
        gw = saved.pop(0) if need_w else None
        gh = None if gh is None else gh * g.to(gh.dtype)
        gw = None if gw is None else gw * g.to(gw.dtype)
        return gh, gw, None, None, None, None, None, None


def head_loss(h_s, W_s, labels, objective: Objective, h_t=None, W_t=None, chunk_size: int | None = None):
    """Chunked loss over the LM head. Returns (sum_loss tensor with grad, parts dict of floats).

    h_s: [..., H_s] student final hidden states; W_s: [V, H_s] student head; labels: [...] with -100 ignored;
    h_t / W_t: the frozen teacher's hidden states and head (no gradient flows to them).
    """
    h_s, y, h_t, _ = _select(h_s, labels, h_t)
    if h_s.shape[0] == 0:
        return (h_s.sum() * 0.0 + W_s.sum() * 0.0).float(), {}
    chunk = chunk_size or auto_chunk_size(h_s.shape[0], h_s.shape[-1], W_s.shape[0])
    parts: dict[str, float] = {}
    total = _ChunkedHeadLoss.apply(h_s, W_s, None if h_t is None else h_t.detach(),
                                   None if W_t is None else W_t.detach(), y, objective, chunk, parts)
    return total, parts
