"""Continual-learning objectives: `gere` (replay + threshold-based margin loss) and its baselines.

    method: {name: gere, weight: 100}        # or weight: 1, or weight: dy (dynamic); full FT best at 100
    method: seq-ft | replay | replay-kl | replay-l1 | replay-l2

These train the stages of a continual-learning sequence (config section `continual`, suite/continual/).
A micro-batch holds task rows (prompt + label; CE on the label tokens) and, for every method but `seq-ft`,
rows of the general replay set (CE on every token: "label fitting", GeRe's BaselineR). The loss is per
example, as in the reference with one sequence per device (1 × 66 accumulation):

    L_e = CE_e                                  task row: mean CE over its label tokens
    L_e = CE_e + w · C_e                        replay row: CE over its tokens, plus the method's constraint C
    step loss = mean over the step's examples

with C (methods.md B.4-B.6; h the current final normed hidden states, h0 the base model's, on the same
tokens, padding masked):
    gere       TM loss: each (token, dim) keeps the base's activation state (negative h0 <= μ−σ,
               positive h0 >= μ+σ, neutral in between) through ReLU hinges at the thresholds; the sum of
               violations over the number of violating elements (zero margin, no logits)
    replay-kl  KL(softmax(z0/T) ‖ softmax(z/T)) summed over the vocabulary, mean over tokens (no T²),
               z0 = h0 W0ᵀ the base logits (as the reference's unused calc_kl, T = 2)
    replay-l1  mean |h − h0| over tokens and dimensions
    replay-l2  mean (h − h0)² over tokens and dimensions
`weight` is a number or "dy": w = CE_e / C_e, both detached (the reference's dynamic weight).
The KL / L1 / L2 baselines are UNVERIFIED readings of the paper (its code has none): added to label fitting
with weight 1 by default, like TM; `label_fit: false` makes any of them pure imitation.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from ..methods.base import METHODS, Method, cross_entropy_sum
from ..methods.chunked import IGNORE_INDEX, head_loss

_EPS = 1e-8


def tm_violations(h: torch.Tensor, h0: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor,
                  mask: torch.Tensor | None = None) -> torch.Tensor:
    """ℓ per element: relu(h − lo) where h0 <= lo; relu(hi − h) where h0 >= hi; relu(h − hi) + relu(lo − h)
    elsewhere; times `mask` (broadcast over the last dim). h, h0: [..., H]; lo, hi: [H]."""
    h = h.float()
    neg, pos = h0 <= lo, h0 >= hi
    v = torch.where(neg, F.relu(h - lo), torch.where(pos, F.relu(hi - h), F.relu(h - hi) + F.relu(lo - h)))
    return v if mask is None else v * mask[..., None].to(v.dtype)


def tm_loss(h, h0, lo, hi, mask=None, dims: tuple[int, ...] | None = None) -> torch.Tensor:
    """The TM loss: Σ ℓ / (#{ℓ ≠ 0} + 1e-8) over `dims` (default: all elements)."""
    v = tm_violations(h, h0, lo, hi, mask)
    dims = dims or tuple(range(v.dim()))
    return v.sum(dims) / ((v != 0).sum(dims) + _EPS)


def _ce(zs, zt, labels):
    return cross_entropy_sum(zs, labels), {}


def _kl(temperature: float):
    def objective(zs, zt, labels):  # labels only select rows here
        lt = torch.log_softmax(zt / temperature, dim=-1)
        ls = torch.log_softmax(zs / temperature, dim=-1)
        return (lt.exp() * (lt - ls)).sum(), {}
    return objective


@dataclass(frozen=True)
class SeqFTParams:
    chunk_size: int | None = None   # rows per head chunk; None = auto


@dataclass(frozen=True)
class ReplayParams:
    label_fit: bool = True          # CE on the replay rows (BaselineR); off: the constraint alone
    chunk_size: int | None = None


@dataclass(frozen=True)
class ImitationParams:
    weight: float | str = 1.0       # w, or "dy": CE / term per replay example (detached)
    label_fit: bool = True
    chunk_size: int | None = None


@dataclass(frozen=True)
class KLParams(ImitationParams):
    temperature: float = 2.0        # T of both softmaxes (the reference's calc_kl default)


@dataclass(frozen=True)
class GeReParams(ImitationParams):
    weight: float | str = 100.0     # '100' is the reference default (best for full FT); 'dy' its demo (LoRA)
    sigma: float = 1.0              # thresholds μ ± sigma·σ (hard-coded 1 in the reference)


class ContinualMethod(Method):
    """Per-example task / replay CE plus an optional constraint on replay rows (see the module docstring)."""

    continual: ClassVar[bool] = True
    uses_replay: ClassVar[bool] = True       # the stage mixes the general replay set into its data
    needs_snapshot: ClassVar[bool] = False   # the base model's states on the replay set (and its thresholds)
    term: ClassVar[str | None] = None        # name of the constraint in the logged parts

    def validate(self) -> None:
        w = getattr(self.params, "weight", 0.0)
        if isinstance(w, str) and w != "dy":
            raise ValueError(f"weight must be a number or 'dy', got {w!r}")
        if isinstance(w, str) and not self.params.label_fit:
            raise ValueError("weight 'dy' scales the constraint to the replay CE, which label_fit: false turns off")
        if not isinstance(w, str) and w < 0:
            raise ValueError(f"weight must be >= 0, got {w}")
        if getattr(self.params, "temperature", 1.0) <= 0:
            raise ValueError(f"temperature must be > 0, got {self.params.temperature}")
        if getattr(self.params, "sigma", 1.0) < 0:
            raise ValueError(f"sigma must be >= 0, got {self.params.sigma}")

    def constraint(self, h, W, batch, rows, chunk) -> torch.Tensor:
        """The constraint per replay row of `rows` (a float tensor [R])."""
        raise NotImplementedError

    def loss(self, h_s, W_s, labels, h_t=None, W_t=None, chunk_size=None, *, batch=None):
        if batch is None:
            raise ValueError(f"method {type(self).__name__} trains continual-learning stages; the config needs a "
                             f"continual section (continual.tasks and continual.stage)")
        chunk = chunk_size or self.params.chunk_size
        label_fit = getattr(self.params, "label_fit", True)
        replay = batch.replay
        ce = []
        for i in range(h_s.shape[0]):  # per-example mean CE: examples weigh the same whatever their length
            n = int((labels[i] != IGNORE_INDEX).sum())
            if n == 0 or (bool(replay[i]) and not label_fit):
                ce.append(h_s.new_zeros((), dtype=torch.float32))
                continue
            s, _ = head_loss(h_s[i], W_s, labels[i], _ce, chunk_size=chunk)
            ce.append(s / n)
        ce = torch.stack(ce)
        total = ce.sum()
        parts = {"ce": float(ce.detach().sum()), "task_ce": float(ce.detach()[~replay].sum()),
                 "replay_ce": float(ce.detach()[replay].sum()), "replay_rows": float(replay.sum())}
        rows = replay.nonzero().flatten()
        if self.term is not None and rows.numel():
            c = self.constraint(h_s, W_s, batch, rows, chunk)
            w = self.params.weight
            w = ce[rows].detach() / (c.detach() + _EPS) if w == "dy" else float(w)
            total = total + (w * c).sum()
            parts[self.term] = float(c.detach().sum())
        return total, parts


@METHODS.register("seq-ft")
class SequentialFT(ContinualMethod):
    """Sequential fine-tuning: task CE only, no replay (the lower bound of the comparison)."""
    Params = SeqFTParams
    uses_replay = False


@METHODS.register("replay")
class Replay(ContinualMethod):
    """Label fitting: task CE + CE on the replayed general samples (GeRe's BaselineR)."""
    Params = ReplayParams


@METHODS.register("replay-kl")
class ReplayKL(ContinualMethod):
    Params = KLParams
    needs_snapshot = True
    term = "kl"

    def constraint(self, h, W, batch, rows, chunk):
        T = self.params.temperature
        out = []
        for i in rows.tolist():
            sel = torch.where(batch.valid[i], 0, IGNORE_INDEX)  # every real token, its next-token target unused
            s, _ = head_loss(h[i], W, sel, _kl(T), h_t=batch.h0[i].to(h.dtype), W_t=batch.head.to(h.dtype),
                             chunk_size=chunk)
            out.append(s / batch.valid[i].sum())
        return torch.stack(out)


class _Feature(ContinualMethod):
    Params = ImitationParams
    needs_snapshot = True
    p: ClassVar[int] = 2

    def constraint(self, h, W, batch, rows, chunk):
        d = (h[rows].float() - batch.h0[rows]) * batch.valid[rows][..., None]
        d = d.abs() if self.p == 1 else d * d
        return d.sum((1, 2)) / (batch.valid[rows].sum(1) * h.shape[-1])


@METHODS.register("replay-l1")
class ReplayL1(_Feature):
    term, p = "l1", 1


@METHODS.register("replay-l2")
class ReplayL2(_Feature):
    term, p = "l2", 2


@METHODS.register("gere")
class GeRe(ContinualMethod):
    """Replay label fitting + w · TM loss against the base model's activation states (GeRe, methods.md B)."""
    Params = GeReParams
    needs_snapshot = True
    term = "tm"

    def constraint(self, h, W, batch, rows, chunk):
        lo, hi = batch.thresholds(self.params.sigma)
        return tm_loss(h[rows], batch.h0[rows], lo, hi, batch.valid[rows], dims=(1, 2))
