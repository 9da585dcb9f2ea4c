"""`kd`: distillation from a frozen teacher's logits, computed in chunks over tokens.

    loss = (1 − λ)·CE(hard labels, student at T=1) + λ·s·D(p_T ‖ q_T)      s = T² if t2_scale else 1

with p_T = softmax(z_t / T) (optionally truncated to the teacher's top-k and renormalized),
q_T = softmax(z_s / T) and D a divergence by name (methods/divergences.py): forward_kl, reverse_kl,
skew_kl, skew_reverse_kl, jsd, soft_ce. Hinton et al. (2015): divergence=soft_ce (or forward_kl; same
gradient), T in [1, 20], λ close to 1 ("a considerably lower weight on the second objective"), T² on.
Defaults follow Busbridge et al. (2025), the setting of the distillation scaling law: pure distillation
λ = 1, T = 1, forward KL.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import METHODS, Method, cross_entropy_sum
from .divergences import DIVERGENCES, teacher_log_probs, topk_safe


@dataclass(frozen=True)
class KDParams:
    divergence: str = "forward_kl"  # forward_kl | reverse_kl | skew_kl | skew_reverse_kl | jsd | soft_ce
    temperature: float = 1.0        # T, applied to both teacher and student logits in the soft term
    kd_weight: float = 1.0          # λ: weight of the soft term; 1 − λ goes to the hard-label CE
    t2_scale: bool = True           # multiply the soft term by T² (Hinton: keeps gradient scale T-independent)
    skew_alpha: float = 0.1         # α of skew_kl / skew_reverse_kl (DistiLLM)
    jsd_beta: float = 0.5           # β of jsd (GKD/TRL); 0 → forward KL, 1 → reverse KL
    top_k: int | None = None        # keep the teacher's top-k tokens only (renormalized)
    chunk_size: int | None = None   # rows per head chunk; None = auto


@METHODS.register("kd")
class KD(Method):
    Params = KDParams
    needs_teacher = True

    def validate(self) -> None:
        p = self.params
        DIVERGENCES.get(p.divergence)  # unknown name → error listing the valid ones
        if p.temperature <= 0:
            raise ValueError(f"kd.temperature must be > 0, got {p.temperature}")
        if not 0.0 <= p.kd_weight <= 1.0:
            raise ValueError(f"kd.kd_weight (λ) must be in [0, 1], got {p.kd_weight}")
        if not 0.0 <= p.skew_alpha < 1.0:
            raise ValueError(f"kd.skew_alpha must be in [0, 1), got {p.skew_alpha}")
        if not 0.0 <= p.jsd_beta <= 1.0:
            raise ValueError(f"kd.jsd_beta must be in [0, 1], got {p.jsd_beta}")
        if p.top_k is not None:
            if p.top_k < 1:
                raise ValueError(f"kd.top_k must be >= 1, got {p.top_k}")
            if not topk_safe(p.divergence, p.jsd_beta):
                raise ValueError(f"kd.top_k cannot be used with divergence {p.divergence!r}: the truncated teacher "
                                 f"puts zero mass where the student does not, so KL(q‖p) is infinite; "
                                 f"use forward_kl, soft_ce, skew_kl, skew_reverse_kl or jsd with beta < 1")

    def objective(self, zs, zt, labels):
        p = self.params
        lam, T = p.kd_weight, p.temperature
        parts: dict = {}
        total = zs.new_zeros(())
        if lam < 1.0:
            ce = cross_entropy_sum(zs, labels)
            total = total + (1.0 - lam) * ce
            parts["ce"] = ce.detach()
        else:
            with torch.no_grad():
                parts["ce"] = cross_entropy_sum(zs, labels)
        if lam > 0.0:
            ls = torch.log_softmax(zs / T, dim=-1)
            lt = teacher_log_probs(zt, T, p.top_k)
            soft = DIVERGENCES.get(p.divergence)(ls, lt, skew_alpha=p.skew_alpha, jsd_beta=p.jsd_beta).sum()
            scale = T * T if p.t2_scale else 1.0
            total = total + lam * scale * soft
            parts["kd"] = soft.detach()
        return total, parts
