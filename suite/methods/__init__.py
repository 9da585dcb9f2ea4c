"""Training objectives by name: `supervised` and `kd` (its divergences: forward / reverse / skew KL, JSD, TVD).

    method = make_method("kd", {"divergence": "jsd", "jsd_beta": 0.5, "temperature": 2.0})
    loss_sum, parts = method.loss(h_s, W_s, labels, h_t=h_t, W_t=W_t)

Every module of this package is imported here, so a new objective is one module that registers itself with
`@METHODS.register(name)`. Objectives that need their own data or stage machinery live with it in a plugin
package and register the same way: GenRecal (suite/vlm/), GeRe and its continual-learning baselines
(suite/continual/); `METHODS` loads those on the first lookup of a name it lacks (registry.py: plugins).
"""
import importlib
import pkgutil

from ..config import build_dataclass
from .base import METHODS, Method
from .chunked import IGNORE_INDEX, auto_chunk_size, head_loss, naive_head_loss
from .divergences import DIVERGENCES, teacher_log_probs

for _module in pkgutil.iter_modules(__path__):  # registration: supervised, kd, and any objective added here
    importlib.import_module(f"{__name__}.{_module.name}")


def make_method(name: str, params: dict | None = None) -> Method:
    """A method instance from its registry name and a dict of its parameters (validated)."""
    cls = METHODS.get(name)
    return cls(build_dataclass(cls.Params, params or {}, where=f"method {name!r}"))


__all__ = ["METHODS", "Method", "make_method", "DIVERGENCES", "IGNORE_INDEX", "auto_chunk_size", "head_loss",
           "naive_head_loss", "teacher_log_probs"]
