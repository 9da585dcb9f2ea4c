"""Training objectives by name: `supervised`, `kd`, the continual-learning `gere` family,
and `genrecal` (vision-language students; suite/genrecal/).

    method = make_method("kd", {"divergence": "jsd", "jsd_beta": 0.5, "temperature": 2.0})
    loss_sum, parts = method.loss(h_s, W_s, labels, h_t=h_t, W_t=W_t)
"""
from . import genrecal, gere, kd, supervised  # noqa: F401  (registration)
from .base import METHODS, Method
from .chunked import IGNORE_INDEX, auto_chunk_size, head_loss, naive_head_loss
from .divergences import DIVERGENCES, teacher_log_probs


def make_method(name: str, params: dict | None = None) -> Method:
    """A method instance from its registry name and a dict of its parameters (validated)."""
    from ..config import build_dataclass

    cls = METHODS.get(name)
    return cls(build_dataclass(cls.Params, params or {}, where=f"method {name!r}"))


__all__ = ["METHODS", "Method", "make_method", "DIVERGENCES", "IGNORE_INDEX", "auto_chunk_size", "head_loss",
           "naive_head_loss", "teacher_log_probs"]
