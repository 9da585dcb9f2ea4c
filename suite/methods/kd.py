"""`kd`: distillation from a frozen teacher's logits, computed in chunks over tokens.

    loss = (1 − λ)·CE(hard labels, student at T=1) + λ·s·D(p_T ‖ q_T)      s = T² if t2_scale else 1

with p_T = softmax(z_t / T) (optionally truncated to the teacher's top-k and renormalized),
q_T = softmax(z_s / T) and D a divergence by name (methods/divergences.py): forward_kl, reverse_kl,
skew_kl, skew_reverse_kl, jsd, soft_ce. Hinton et al. (2015): divergence=soft_ce (or forward_kl; same
gradient), T in [1, 20], λ close to 1 ("a considerably lower weight on the second objective"), T² on.
Defaults follow Busbridge et al. (2025), the setting of the distillation scaling law: pure distillation
λ = 1, T = 1, forward KL.

The teacher is either full logits z_t or a `TopKTeacher` (its top-k log-probs at T, from a teacher-output cache):
then D runs over k+1 buckets, the k tokens and the tail (divergences.bucket_log_probs); top_k truncates further.
`objective` is the autograd reference; `objective_and_grad` computes the same loss with d loss / d z_s in closed
form for forward_kl and soft_ce (the chunked head loss uses it: no autograd graph per chunk).
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import torch

from .base import METHODS, Method, cross_entropy_sum
from .divergences import DIVERGENCES, TopKTeacher, bucket_log_probs, teacher_log_probs, topk_safe

CLOSED_FORM = ("forward_kl", "soft_ce")  # divergences whose logit gradient objective_and_grad writes out


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
    # the teacher's outputs computed once per (teacher, token stream) and read by every student on that stream
    # (suite/train/teacher_cache.py): none, or topk (its top cache_k log-probs at T + a tail bucket; exact when
    # cache_k >= V, which stores the whole distribution), stored as cache_dtype (float16 | bfloat16 | float32)
    teacher_cache: str = "none"
    cache_k: int = 128
    cache_dtype: str = "float16"    # log-probs in [-30, 0]: float16's 10 mantissa bits beat bfloat16's 7


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
        if p.teacher_cache not in ("none", "topk"):
            raise ValueError(f"kd.teacher_cache must be none or topk, got {p.teacher_cache!r}")
        if p.cache_k < 1:
            raise ValueError(f"kd.cache_k must be >= 1, got {p.cache_k}")
        if p.cache_dtype not in ("float32", "bfloat16", "float16"):
            raise ValueError(f"kd.cache_dtype must be float32, bfloat16 or float16, got {p.cache_dtype!r}")
        if p.teacher_cache == "topk" and p.top_k is not None and p.top_k > p.cache_k:
            raise ValueError(f"kd.top_k = {p.top_k} needs at least that many cached tokens; cache_k is {p.cache_k}")
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
            if isinstance(zt, TopKTeacher):
                teacher, truncate = self._cached_teacher(zt, ls.shape[-1])
                ls, lt = bucket_log_probs(ls, teacher, truncate=truncate)
            else:
                lt = teacher_log_probs(zt, T, p.top_k)
            soft = DIVERGENCES.get(p.divergence)(ls, lt, skew_alpha=p.skew_alpha, jsd_beta=p.jsd_beta).sum()
            scale = T * T if p.t2_scale else 1.0
            total = total + lam * scale * soft
            parts["kd"] = soft.detach()
        return total, parts

    def _cached_teacher(self, teacher: TopKTeacher, vocab: int) -> tuple[TopKTeacher, bool]:
        """(teacher, truncate): top_k truncates a cached top-k teacher further (renormalized, no tail mass)."""
        k = self.params.top_k
        if k is None or k >= vocab:
            return teacher, False
        if k > teacher.k:
            raise ValueError(f"kd.top_k = {k}, but the cached teacher keeps only its top {teacher.k} tokens")
        return teacher.truncated(k), True

    def soft_divergence(self) -> str:
        """The divergence the soft term computes (skew_kl with α = 0 and jsd with β = 0 are forward KL)."""
        p = self.params
        if (p.divergence == "skew_kl" and p.skew_alpha <= 0) or (p.divergence == "jsd" and p.jsd_beta <= 0):
            return "forward_kl"
        return p.divergence

    def closed_form(self):
        """chunked.py's hook: `objective_and_grad` where this configuration has one (forward_kl, soft_ce, or
        λ = 0), else None (autograd on `objective`). A subclass that overrides `objective` gets None."""
        if type(self).objective is not KD.objective or type(self).objective_and_grad is not KD.objective_and_grad:
            return None
        if self.params.kd_weight > 0 and self.soft_divergence() not in CLOSED_FORM:
            return None
        return self.objective_and_grad

    def objective_and_grad(self, zs, zt, labels, need_grad: bool = True, workspace: dict | None = None):
        """`objective`'s (loss, parts) plus d loss / d zs in closed form, without autograd: (loss, parts, dzs).

        zs: [n, V] float32 student logits; zt: teacher logits [n, V] float32 or a TopKTeacher [n, k]. Both are
        scratch: this call overwrites them. workspace: a dict of reusable buffers (kept by the caller across
        chunks). With q_T = softmax(zs / T), target = p_T (for a top-k teacher: p at its tokens and
        q_j · p_tail / q_tail on the tail), s = T² or 1:

            d loss / d zs = λ·s/T · (q_T − target) + (1 − λ)·(softmax(zs) − onehot(label))

        forward_kl and soft_ce share this gradient (they differ by H(p), a constant of the student).
        """
        p = self.params
        name = self.soft_divergence() if p.kd_weight > 0 else None
        if name is not None and name not in CLOSED_FORM:
            raise ValueError(f"objective_and_grad has no closed form for divergence {name!r}")
        lam, T = p.kd_weight, p.temperature
        ce_w = 1.0 - lam
        n, V = zs.shape
        scale = T * T if p.t2_scale else 1.0
        a = lam * scale / T  # weight of (q_T − target) in d loss / d zs
        if (need_grad and lam > 0.0 and not isinstance(zt, TopKTeacher) and (p.top_k is None or p.top_k >= V)
                and (kernel := _compiled_kernel()) is not None):
            try:
                ce, soft, dz = kernel(zs, zt, labels, T, a, ce_w, name == "forward_kl")
            except Exception as e:  # compile unavailable or failed: eager from now on
                _COMPILE["failed"] = repr(e)
                warnings.warn(f"kd: torch.compile of the closed-form loss failed, running eager: {e!r}")
            else:
                return (ce_w * ce if lam < 1.0 else 0.0) + lam * scale * soft, {"ce": ce, "kd": soft}, dz
        ws = {} if workspace is None else workspace
        lab = labels.unsqueeze(-1)
        g = torch.log_softmax(zs, dim=-1, out=_buffer(ws, "g", zs))  # log softmax at T = 1
        ce = -g.gather(-1, lab).sum()
        parts: dict = {"ce": ce}
        total = ce_w * ce if lam < 1.0 else zs.new_zeros(())
        if lam <= 0.0:
            return total, parts, (_sub_onehot(g.exp_(), lab, 1.0) if need_grad else None)
        ls = g if T == 1.0 else torch.log_softmax(zs.div_(T), dim=-1, out=_buffer(ws, "ls", zs))
        teacher, truncate = None, False
        if isinstance(zt, TopKTeacher):
            teacher, truncate = self._cached_teacher(zt, V)
        elif p.top_k is not None and p.top_k < V:
            vals, idx = (zt.div_(T) if T != 1.0 else zt).topk(p.top_k, dim=-1)
            teacher, truncate = TopKTeacher(torch.log_softmax(vals, dim=-1), idx), True
        if teacher is None:  # dense teacher: p over the whole vocabulary
            lt = torch.log_softmax(zt.div_(T) if T != 1.0 else zt, dim=-1, out=zs)  # zs is spent: g, ls hold it
            pt = torch.exp(lt, out=zt)  # and so are zt's logits
            if name == "forward_kl":
                soft = torch.dot(pt.view(-1), lt.sub_(ls).view(-1))  # Σ p (log p − log q); p = 0 adds 0
            else:
                soft = -torch.dot(pt.view(-1), ls.reshape(-1))
            total = total + lam * scale * soft
            parts["kd"] = soft
            if not need_grad:
                return total, parts, None
            q = ls.exp_()
            if T == 1.0:  # q is also the CE's softmax
                dz = q.mul_(a + ce_w).sub_(pt, alpha=a)
            else:
                dz = q.sub_(pt).mul_(a)
                if ce_w > 0:
                    dz.add_(g.exp_(), alpha=ce_w)
            return total, parts, (_sub_onehot(dz, lab, ce_w) if ce_w > 0 else dz)
        # top-k teacher: k buckets of single tokens and the tail bucket
        idx, lt_k = teacher.idx.long(), teacher.logp.float()
        ls_k = ls.gather(-1, idx)
        pk = lt_k.exp()
        if name == "forward_kl":
            soft = torch.where(pk > 0, pk * (lt_k - ls_k), torch.zeros_like(pk)).sum()
        else:
            soft = -(pk * ls_k).sum()
        q = ls.exp_()
        q_k = ls_k.exp()
        ratio = None
        if teacher.k < V:
            q.scatter_(-1, idx, 0.0)  # q on the tail only
            ls_tail = q.sum(-1).clamp(min=torch.finfo(torch.float32).tiny).log()
            if not truncate:
                lt_tail = teacher.tail_log_mass()
                p_tail = lt_tail.exp()
                if name == "forward_kl":
                    soft = soft + torch.where(p_tail > 0, p_tail * (lt_tail - ls_tail), torch.zeros_like(p_tail)).sum()
                else:
                    soft = soft - (p_tail * ls_tail).sum()
                ratio = (lt_tail - ls_tail).exp().clamp(max=1e30)  # p_tail / q_tail (finite when q_tail ~ 0)
        else:
            q.zero_()
        total = total + lam * scale * soft
        parts["kd"] = soft
        if not need_grad:
            return total, parts, None
        # tail tokens: a·q_j·(1 − p_tail/q_tail); teacher tokens: a·(q_j − p_j); plus the CE's softmax − onehot
        tail_w = torch.full((n, 1), a, device=zs.device) if ratio is None else a * (1.0 - ratio).unsqueeze(-1)
        at_k = a * (q_k - pk)
        if T == 1.0 and ce_w > 0:
            tail_w, at_k = tail_w + ce_w, at_k + ce_w * q_k
        dz = q.mul_(tail_w).scatter_(-1, idx, at_k)
        if T != 1.0 and ce_w > 0:
            dz.add_(g.exp_(), alpha=ce_w)
        return total, parts, (_sub_onehot(dz, lab, ce_w) if ce_w > 0 else dz)


def _dense_kernel(zs, zt, labels, T: float, a: float, ce_w: float, forward: bool):
    """objective_and_grad for a dense teacher as one pure function, for torch.compile to fuse: (ce, soft, dzs)."""
    g = torch.log_softmax(zs, dim=-1)
    ce = -g.gather(-1, labels.unsqueeze(-1)).sum()
    ls = g if T == 1.0 else torch.log_softmax(zs / T, dim=-1)
    lt = torch.log_softmax(zt / T, dim=-1)
    pt = lt.exp()
    soft = (pt * (lt - ls)).sum() if forward else -(pt * ls).sum()
    dz = a * (ls.exp() - pt)
    if ce_w > 0:
        onehot = torch.arange(zs.shape[-1], device=zs.device) == labels.unsqueeze(-1)
        dz = dz + ce_w * (g.exp() - onehot.to(dz.dtype))
    return ce, soft, dz


# SUITE_KD_COMPILE=1: the dense closed form runs through torch.compile (off by default: measured on 2 CPU cores it
# takes ~25 s to compile and saves a few % of a step, where the matmuls dominate; a failure falls back to eager)
_COMPILE: dict = {"fn": None, "failed": None}


def _compiled_kernel():
    if os.environ.get("SUITE_KD_COMPILE", "0").strip().lower() not in ("1", "true", "yes", "on"):
        return None
    if _COMPILE["failed"] is not None or not hasattr(torch, "compile"):
        return None
    if _COMPILE["fn"] is None:
        _COMPILE["fn"] = torch.compile(_dense_kernel)
    return _COMPILE["fn"]


def _buffer(ws: dict, key: str, like: torch.Tensor) -> torch.Tensor:
    """A [n, V] scratch tensor like `like`, kept in `ws` and reused while it is large enough."""
    buf = ws.get(key)
    n = like.shape[0]
    if buf is None or buf.shape[0] < n or buf.shape[1:] != like.shape[1:] or buf.dtype != like.dtype \
            or buf.device != like.device:
        buf = ws[key] = torch.empty_like(like)
    return buf[:n]


def _sub_onehot(dz: torch.Tensor, lab: torch.Tensor, w: float) -> torch.Tensor:
    """dz[i, label_i] −= w, in place."""
    return dz.scatter_add_(-1, lab, torch.full(lab.shape, -w, dtype=dz.dtype, device=dz.device))
