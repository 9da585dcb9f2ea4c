"""Losses on the LM head computed in chunks of tokens, so [tokens × vocabulary] logits never exist at once.

    loss_sum = head_loss(h_s, W_s, labels, objective, h_t=h_t, W_t=W_t)   # chunked (default)
    loss_sum = naive_head_loss(h_s, W_s, labels, objective, h_t=h_t, W_t=W_t)  # reference

`objective(zs, zt, labels) -> (sum_loss, {name: sum})` sees one chunk of student logits (and teacher
logits when a teacher is given) in float32. The teacher is either its hidden states and head (h_t, W_t) or
a precomputed `TopKTeacher` (its top-k log-probs at T, rows aligned with the labels; pass it as h_t): the
objective then gets that chunk's rows of it as zt. The chunked path works like Liger-Kernel's fused linear
losses: the forward pass walks chunks of rows, computes each chunk's loss and, right there, its
gradients with respect to the student's hidden states and head weight; backward only scales them.
Matmuls: 4 per chunk (z_s, z_t, dL/dh, dL/dW), the same count as the naive loss, but peak memory holds
one chunk's logits instead of all of them. Rows whose label is ignore_index are dropped first.

Per chunk, d loss / d z_s comes from one of two places: an objective with a closed form (`closed_form`
below: KD with forward_kl / soft_ce writes the gradient of its logits out, and reuses its buffers) or autograd
on the objective with the logits as the leaf (any objective). Either way the two gradient matmuls are ours:
dL/dh = dz·W into its rows, dL/dW accumulated in place (addmm_), so no [V, H] temporary per chunk.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from .divergences import TopKTeacher

IGNORE_INDEX = -100
Objective = Callable[[torch.Tensor, "torch.Tensor | None", torch.Tensor], "tuple[torch.Tensor, dict]"]


MIN_CHUNK_ELEMENTS = 1 << 23  # 32 MB of fp32 logits: below this, per-chunk launches and syncs dominate
# on CPU: at least this many rows (capped at CPU_MAX_CHUNK_ELEMENTS logits, 256 MB in fp32): dL/dW accumulates one
# [V, H] matmul per chunk whose inner dimension is the chunk's rows, and MKL on 2 cores ran it at 75 GFLOP/s with
# 64 rows, 98 with 128, 124 with 512 (V = 128k, H = 1024); a step at 1024 tokens took 13.9 s with 128-row chunks,
# 12.0 s with 512 (the four matmuls alone, unchunked: 10.9 s)
CPU_MIN_ROWS = 512
CPU_MAX_CHUNK_ELEMENTS = 1 << 26


def auto_chunk_size(n_tokens: int, hidden: int, vocab: int, device: str | None = None) -> int:
    """Rows per chunk so one chunk of logits (rows × V) is about the size of the hidden states (n × H),
    Liger-Kernel's rule, but never under MIN_CHUNK_ELEMENTS logits; rounded up to a power of two.

    At V=128k, H=1024, n=4096: 128 rows (64 MB of fp32 logits per tensor instead of 2 GB); at V=516,
    H=256 everything at once. The floor matters for small students of large-vocabulary teachers: at
    V=49,152, H=160, n=8,192 Liger's rule alone gives 32 rows, 256 chunks per step, and on an H200 the
    step was launch-bound (measured: 24k tokens/s for tiny-2M); the floor gives 256 rows, 32 chunks.
    device="cpu" raises the floor to CPU_MIN_ROWS rows (fewer rows where that passes CPU_MAX_CHUNK_ELEMENTS):
    512 at V=128k.
    """
    rows = max(1, math.ceil(n_tokens / max(1, math.ceil(vocab / hidden))), math.ceil(MIN_CHUNK_ELEMENTS / vocab))
    if device == "cpu":
        rows = max(rows, min(CPU_MIN_ROWS, CPU_MAX_CHUNK_ELEMENTS // max(1, vocab)))
    return max(16, 1 << (rows - 1).bit_length())


def _select(h_s, labels, h_t):
    keep = labels.reshape(-1) != IGNORE_INDEX
    h_s = h_s.reshape(-1, h_s.shape[-1])[keep]
    if isinstance(h_t, TopKTeacher):
        h_t = h_t.flatten()
        if len(h_t) != keep.shape[0]:
            raise ValueError(f"TopKTeacher has {len(h_t)} rows, labels have {keep.shape[0]}: they must be aligned")
        h_t = h_t[keep]
    elif h_t is not None:
        h_t = h_t.reshape(-1, h_t.shape[-1])[keep]
    return h_s, labels.reshape(-1)[keep], h_t, keep


def closed_form(objective: Objective):
    """`objective`'s closed-form variant, or None: an objective (or the object whose bound method it is) may offer
    `closed_form() -> fn | None` with fn(zs, zt, labels, need_grad, workspace) -> (loss, parts, dzs or None),
    allowed to overwrite zs and zt. KD does for forward_kl and soft_ce."""
    owner = getattr(objective, "__self__", objective)
    hook = getattr(owner, "closed_form", None)
    return hook() if callable(hook) else None


def naive_head_loss(h_s, W_s, labels, objective: Objective, h_t=None, W_t=None):
    """Reference: full logits of both models, then the objective. Returns (sum_loss, parts).
    h_t: the teacher's hidden states (with W_t) or a TopKTeacher aligned with the labels."""
    h_s, y, h_t, _ = _select(h_s, labels, h_t)
    zs = (h_s @ W_s.t()).float()
    if h_t is None or isinstance(h_t, TopKTeacher):
        zt = h_t
    else:
        zt = (h_t @ W_t.t()).float()
    return objective(zs, zt, y)


def _compute_dtype(t: torch.Tensor) -> torch.dtype:
    """The matmul dtype: autocast's where it is on (as `h @ W.t()` would get), else the hidden states'."""
    dev = t.device.type
    if torch.is_autocast_enabled(dev):
        return torch.get_autocast_dtype(dev)
    return t.dtype


def _logits(h, W, buffers: dict, key: str):
    """h @ Wᵀ in float32 (h, W already in the compute dtype); float32 goes into a buffer reused chunk to chunk."""
    if h.dtype != torch.float32:
        return (h @ W.t()).float()
    b = buffers.get(key)
    if b is None or b.shape[0] < h.shape[0]:
        b = buffers[key] = h.new_empty(h.shape[0], W.shape[0])
    return torch.mm(h, W.t(), out=b[:h.shape[0]])


class _ChunkedHeadLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h_s, W_s, h_t, W_t, y, objective, chunk, parts_out, topk):
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        need = need_h or need_w
        cdt = _compute_dtype(h_s)
        Wc = W_s.to(cdt)  # cast once per call, not per chunk (a no-op without autocast)
        Wt = None if W_t is None else W_t.to(_compute_dtype(h_t))
        grad_h = torch.empty_like(h_s) if need_h else None
        grad_w = (torch.empty_like(W_s) if W_s.dtype == cdt else torch.zeros_like(W_s)) if need_w else None
        total = h_s.new_zeros((), dtype=torch.float32)
        sums: dict[str, torch.Tensor] = {}  # parts stay on the device: one host sync per call, not per chunk
        fast = closed_form(objective)
        buffers: dict = {}  # logits of both models, reused chunk to chunk
        workspace: dict = {}  # the closed form's scratch, likewise
        for start in range(0, h_s.shape[0], chunk):
            sl = slice(start, start + chunk)
            hc = h_s[sl].to(cdt)
            with torch.no_grad():
                if topk is not None:
                    zt = topk[sl]
                else:
                    zt = None if h_t is None else _logits(h_t[sl].to(Wt.dtype), Wt, buffers, "zt")
                zs = _logits(hc, Wc, buffers, "zs")
            if fast is not None:
                with torch.no_grad():
                    loss, parts, dz = fast(zs, zt, y[sl], need_grad=need, workspace=workspace)
            else:
                zs = zs.detach().requires_grad_(need)
                with torch.enable_grad():
                    loss, parts = objective(zs, zt, y[sl])
                dz = None
                if need:
                    dz = torch.autograd.grad(loss, zs, allow_unused=True)[0] if loss.requires_grad else None
                    dz = torch.zeros_like(zs) if dz is None else dz
            if dz is not None:
                dz = dz.to(cdt)
                if need_h:
                    if grad_h.dtype == cdt:
                        torch.mm(dz, Wc, out=grad_h[sl])
                    else:
                        grad_h[sl] = dz @ Wc
                if need_w:
                    if grad_w.dtype == cdt and start == 0:
                        torch.mm(dz.t(), hc, out=grad_w)  # the first chunk sets it: no zero fill
                    elif grad_w.dtype == cdt:
                        grad_w.addmm_(dz.t(), hc)
                    else:
                        grad_w += dz.t() @ hc
            total += loss.detach()
            for k, v in parts.items():
                v = v.detach().float() if torch.is_tensor(v) else torch.tensor(float(v), device=total.device)
                sums[k] = sums[k] + v if k in sums else v
        if sums:
            for k, v in zip(sums, torch.stack(list(sums.values())).tolist()):
                parts_out[k] = parts_out.get(k, 0.0) + v
        ctx.grads = (grad_h, grad_w)  # not save_for_backward: backward hands them over without a copy
        return total

    @staticmethod
    def backward(ctx, g):
        if ctx.grads is None:
            raise RuntimeError("head_loss: backward through the chunked loss can run once (retain_graph is not "
                               "supported; the gradients were computed in the forward pass and handed over)")
        grad_h, grad_w = ctx.grads
        ctx.grads = None
        # scaled in place: the engine then takes these tensors as .grad with no [V, H] copy
        grad_h = None if grad_h is None else grad_h.mul_(g.to(grad_h.dtype))
        grad_w = None if grad_w is None else grad_w.mul_(g.to(grad_w.dtype))
        return grad_h, grad_w, None, None, None, None, None, None, None


def head_loss(h_s, W_s, labels, objective: Objective, h_t=None, W_t=None, chunk_size: int | None = None):
    """Chunked loss over the LM head. Returns (sum_loss tensor with grad, parts dict of floats).

    h_s: [..., H_s] student final hidden states; W_s: [V, H_s] student head; labels: [...] with -100 ignored;
    h_t / W_t: the frozen teacher's hidden states and head (no gradient flows to them), or h_t a TopKTeacher
    with one row per label (W_t None). Backward runs once per call (no retain_graph).
    """
    h_s, y, h_t, _ = _select(h_s, labels, h_t)
    if h_s.shape[0] == 0:
        return (h_s.sum() * 0.0 + W_s.sum() * 0.0).float(), {}
    chunk = chunk_size or auto_chunk_size(h_s.shape[0], h_s.shape[-1], W_s.shape[0], h_s.device.type)
    parts: dict[str, float] = {}
    topk = h_t if isinstance(h_t, TopKTeacher) else None
    dense = None if h_t is None or topk is not None else h_t.detach()
    total = _ChunkedHeadLoss.apply(h_s, W_s, dense, None if W_t is None or dense is None else W_t.detach(), y,
                                   objective, chunk, parts, topk)
    return total, parts
