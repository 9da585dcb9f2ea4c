"""What a training objective is: a loss on the LM head, given student (and teacher) hidden states.

One loop trains every method (suite/train/loop.py); a method only says whether it needs a teacher,
which parameters it takes (a frozen dataclass, validated from YAML), and its per-chunk loss.

    @METHODS.register("my-method")
    class MyMethod(Method):
        Params = MyParams
        def objective(self, zs, zt, labels): ...   # sums over the chunk's tokens
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

import torch
import torch.nn.functional as F

from ..config import METHODS  # noqa: F401  (the registry every method registers in; re-exported)
from .chunked import head_loss


@dataclass(frozen=True)
class NoParams:
    pass


class Method:
    """Base objective. Subclasses set `Params`, `needs_teacher` and implement `objective`."""

    Params: ClassVar[type] = NoParams
    needs_teacher: ClassVar[bool] = False

    @classmethod
    def requires_teacher(cls, params: Mapping[str, Any]) -> bool:
        """Does a cell with these parameters load a teacher? `needs_teacher` unless the method says otherwise."""
        return cls.needs_teacher

    def __init__(self, params=None):
        self.params = params if params is not None else self.Params()
        self.validate()

    def validate(self) -> None:
        """Raise ValueError for parameter combinations that cannot work."""

    def objective(self, zs: torch.Tensor, zt: torch.Tensor | None, labels: torch.Tensor):
        raise NotImplementedError

    def loss(self, h_s, W_s, labels, h_t=None, W_t=None, chunk_size: int | None = None):
        """(sum of per-token losses, parts) for one micro-batch; the loop normalizes by the global token count."""
        return head_loss(h_s, W_s, labels, self.objective, h_t=h_t, W_t=W_t,
                         chunk_size=chunk_size or getattr(self.params, "chunk_size", None))


def cross_entropy_sum(zs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(zs, labels, reduction="sum")


def ce_objective(zs: torch.Tensor, zt: torch.Tensor | None, labels: torch.Tensor):
    """Plain next-token CE as a chunk objective (held-out loss, SFT terms)."""
    return cross_entropy_sum(zs, labels), {}


def z_loss_sum(zs: torch.Tensor) -> torch.Tensor:
    """Σ (log Z)², PaLM's z-loss (Busbridge et al. use weight 1e-4)."""
    return torch.logsumexp(zs, dim=-1).pow(2).sum()
