"""Per-token divergences between teacher p and student q over the vocabulary, on log-probabilities.

Every function takes `ls = log q` (student) and `lt = log p` (teacher), both [n, V] float32 over the
same vocabulary, and returns [n] per-token values. Teacher entries may be -inf (top-k truncation);
terms with zero mass contribute 0 (0·log 0 = 0), so truncated teachers stay finite where the
divergence is defined. Formulas and conventions (see specs/scaling_laws.md §4):

    forward_kl        KL(p‖q)                                   standard KD; DistiLLM forward_kl + teacher entropy
    reverse_kl        KL(q‖p)                                   teacher-forced token-level reverse KL
    skew_kl(α)        KL(p ‖ α·p + (1−α)·q)                     DistiLLM's SKL loss, α = 0.1
    skew_reverse_kl(α) KL(q ‖ (1−α)·p + α·q)                    DistiLLM's SRKL loss, α = 0.1

These are token-level losses on fixed (teacher-forced) sequences. They are not the MiniLLM method (sequence-level
reverse KL optimised by policy gradient on the student's own samples) nor the DistiLLM method (its skew loss on
an adaptive mix of student-generated and fixed outputs): a row labelled "MiniLLM" or "DistiLLM" in a published
table is those methods, and a run of `reverse_kl` / `skew_kl` here is their teacher-forced loss only.
    jsd(β)            β·KL(p‖M) + (1−β)·KL(q‖M), M = β·p + (1−β)·q   GKD; β=0 → KL(p‖q), β=1 → KL(q‖p) as TRL
    soft_ce           −Σ p log q = KL(p‖q) + H(p)                Hinton's soft-target cross-entropy
                                                                 (same gradient as forward_kl)
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from ..registry import Registry

Divergence = Callable[..., torch.Tensor]
DIVERGENCES = Registry[Divergence]("divergence")
# which divergences stay finite when the teacher is truncated to its top-k tokens (p = 0 elsewhere)
TOPK_SAFE = {"forward_kl", "soft_ce", "skew_kl", "skew_reverse_kl", "jsd"}


def _kl(la: torch.Tensor, lb: torch.Tensor) -> torch.Tensor:
    """KL(a‖b) per row from log-probs; entries with a = 0 contribute exactly 0."""
    a = la.exp()
    diff = torch.where(a > 0, la - lb, torch.zeros_like(la))
    return (a * diff).sum(-1)


def _log_mix(la: torch.Tensor, lb: torch.Tensor, wa: float) -> torch.Tensor:
    """log(wa·a + (1−wa)·b) from log-probs, stable (logaddexp handles -inf)."""
    return torch.logaddexp(la + math.log(wa), lb + math.log1p(-wa))


@DIVERGENCES.register("forward_kl")
def forward_kl(ls, lt, **_):
    return _kl(lt, ls)


@DIVERGENCES.register("reverse_kl")
def reverse_kl(ls, lt, **_):
    return _kl(ls, lt)


@DIVERGENCES.register("soft_ce")
def soft_ce(ls, lt, **_):
    p = lt.exp()
    return -(p * torch.where(p > 0, ls, torch.zeros_like(ls))).sum(-1)


@DIVERGENCES.register("skew_kl")
def skew_kl(ls, lt, skew_alpha: float = 0.1, **_):
    if skew_alpha <= 0:
        return forward_kl(ls, lt)
    return _kl(lt, _log_mix(lt, ls, skew_alpha))


@DIVERGENCES.register("skew_reverse_kl")
def skew_reverse_kl(ls, lt, skew_alpha: float = 0.1, **_):
    if skew_alpha <= 0:
        return reverse_kl(ls, lt)
    return _kl(ls, _log_mix(ls, lt, skew_alpha))


@DIVERGENCES.register("jsd")
def jsd(ls, lt, jsd_beta: float = 0.5, **_):
    if jsd_beta <= 0:        # TRL's special case: the mixture form degenerates to 0 at the ends
        return forward_kl(ls, lt)
    if jsd_beta >= 1:
        return reverse_kl(ls, lt)
    lm = _log_mix(lt, ls, jsd_beta)
    return jsd_beta * _kl(lt, lm) + (1 - jsd_beta) * _kl(ls, lm)


def teacher_log_probs(zt: torch.Tensor, temperature: float, top_k: int | None) -> torch.Tensor:
    """log softmax(z_t / T), optionally renormalized over the teacher's top-k tokens (-inf elsewhere)."""
    zt = zt / temperature
    if top_k is not None and top_k < zt.shape[-1]:
        vals, idx = zt.topk(top_k, dim=-1)
        out = torch.full_like(zt, float("-inf"))
        return out.scatter_(-1, idx, torch.log_softmax(vals, dim=-1))
    return torch.log_softmax(zt, dim=-1)


def topk_safe(name: str, jsd_beta: float = 0.5) -> bool:
    if name == "jsd":
        return jsd_beta < 1
    return name in TOPK_SAFE
