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

Top-k teachers. A teacher-output cache keeps per token only the teacher's k most likely tokens at T
(`TopKTeacher`: their log-probs and vocabulary indices). The divergences then run on k+1 buckets
(`bucket_log_probs`): the k teacher tokens, each its own bucket, and one tail bucket holding every other
token, for the teacher p_tail = 1 − Σ p_k and for the student q_tail = Σ over the other tokens of q. Bucketing
can only lose information (data processing: the bucketed KL(p‖q) ≤ the full one); with k = V there is no
tail and the result is the full-vocabulary divergence.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
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


# floor of the teacher's tail log-mass when 1 − Σ p_k rounds to 0 (k < V): keeps KL(q‖p) finite; the change to
# any divergence is below 1e-36
LOG_TINY = math.log(torch.finfo(torch.float32).tiny)


@dataclass(frozen=True, eq=False)
class TopKTeacher:
    """A teacher's k most likely tokens per row: what a teacher-output cache stores instead of full logits.

    logp: [n, k] float, log softmax(z_t / T) at those tokens (T is baked in); idx: [n, k] int64, their vocabulary
    indices (distinct within a row; any order). Rows follow the flattened labels; `t[a:b]` / `t[mask]` select rows.
    """
    logp: torch.Tensor
    idx: torch.Tensor

    def __post_init__(self):
        if self.logp.shape != self.idx.shape or self.logp.dim() < 1:
            raise ValueError(f"TopKTeacher: logp {tuple(self.logp.shape)} and idx {tuple(self.idx.shape)} must have "
                             f"the same shape [..., k]")
        if self.idx.dtype.is_floating_point or self.idx.dtype == torch.bool:
            raise ValueError(f"TopKTeacher: idx must be an integer tensor, got {self.idx.dtype}")

    @property
    def k(self) -> int:
        return self.logp.shape[-1]

    def __len__(self) -> int:
        return self.logp.shape[0]

    def __getitem__(self, rows) -> "TopKTeacher":
        return TopKTeacher(self.logp[rows], self.idx[rows])

    def flatten(self) -> "TopKTeacher":
        """Rows [..., k] → [n, k] (as labels.reshape(-1))."""
        return TopKTeacher(self.logp.reshape(-1, self.k), self.idx.reshape(-1, self.k))

    def to(self, device) -> "TopKTeacher":
        return TopKTeacher(self.logp.to(device), self.idx.to(device))

    def tail_log_mass(self) -> torch.Tensor:
        """[n] log(1 − Σ_k p) in float32, stable near both ends; floored at LOG_TINY where it rounds to 0."""
        return log1mexp(torch.logsumexp(self.logp.float(), dim=-1)).clamp(min=LOG_TINY)

    def truncated(self, top_k: int) -> "TopKTeacher":
        """The `top_k` most likely of the k tokens, renormalized (the tail then has no mass: KDParams.top_k)."""
        logp = self.logp.float()
        if top_k < self.k:
            logp, pos = logp.topk(top_k, dim=-1)
            return TopKTeacher(torch.log_softmax(logp, dim=-1), self.idx.gather(-1, pos))
        return TopKTeacher(torch.log_softmax(logp, dim=-1), self.idx)


def topk_teacher(zt: torch.Tensor, temperature: float, k: int) -> TopKTeacher:
    """TopKTeacher from full teacher logits [..., V]: log_softmax(z_t / T), then its top-k (k capped at V)."""
    lp = torch.log_softmax(zt.float() / temperature, dim=-1)
    vals, idx = lp.topk(min(k, lp.shape[-1]), dim=-1)
    return TopKTeacher(vals, idx)


def log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 − exp(x)) for x ≤ 0 (Mächler 2012): log(−expm1(x)) near 0, log1p(−exp(x)) below −log 2; −inf at 0."""
    x = x.clamp(max=0.0)
    return torch.where(x > -math.log(2.0), torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


def bucket_log_probs(ls: torch.Tensor, teacher: TopKTeacher,
                     truncate: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(log q, log p) over the k+1 buckets of a top-k teacher: its k tokens, then the tail (all other tokens).

    ls: [n, V] student log-probs (full vocabulary, at the same T as the teacher); teacher: [n, k]. truncate: the
    teacher has no tail mass (its top-k renormalized, KDParams.top_k): p_tail = 0. The student's tail is
    log Σ q over the other tokens (no 1 − Σ q_k cancellation near q_tail = 0). With k = V there is no tail bucket.
    Differentiable in ls; the divergences take the result as they take full-vocabulary log-probs.
    """
    idx = teacher.idx.long()
    ls_k, lt_k = ls.gather(-1, idx), teacher.logp.float()
    if teacher.k >= ls.shape[-1]:
        return ls_k, lt_k
    # Σ q over the tail tokens (not 1 − Σ q_k: no cancellation when the tail is small), as the closed form has it
    ls_tail = ls.exp().scatter(-1, idx, 0.0).sum(-1, keepdim=True).clamp(min=torch.finfo(ls.dtype).tiny).log()
    if truncate:
        lt_tail = torch.full_like(ls_tail, float("-inf"))
    else:
        lt_tail = teacher.tail_log_mass().unsqueeze(-1)
    return torch.cat([ls_k, ls_tail], dim=-1), torch.cat([lt_k, lt_tail], dim=-1)


def topk_safe(name: str, jsd_beta: float = 0.5) -> bool:
    if name == "jsd":
        return jsd_beta < 1
    return name in TOPK_SAFE
