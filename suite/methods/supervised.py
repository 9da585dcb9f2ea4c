"""`supervised`: next-token cross-entropy on the data (nats/token), optionally with a z-loss."""
from __future__ import annotations

from dataclasses import dataclass

from .base import METHODS, Method, cross_entropy_sum, z_loss_sum


@dataclass(frozen=True)
class SupervisedParams:
    z_loss: float = 0.0             # weight of (log Z)²; Busbridge et al. use 1e-4
    chunk_size: int | None = None   # rows per head chunk; None = auto (see methods/chunked.py)


@METHODS.register("supervised")
class Supervised(Method):
    Params = SupervisedParams

    def objective(self, zs, zt, labels):
        ce = cross_entropy_sum(zs, labels)
        total = ce
        if self.params.z_loss:
            total = total + self.params.z_loss * z_loss_sum(zs)
        return total, {"ce": ce.detach()}
