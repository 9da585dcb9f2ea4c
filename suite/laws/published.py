"""Published coefficients of the laws, with their sources (see ../shared/specs/scaling_laws.md §1.4, §2).

    from suite.laws import published
    published("busbridge2025-supervised").params     # {"E": 1.22, "A": 3355.0, ...}

N counts (non-embedding) parameters and D tokens, both raw counts, losses in nats per token.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..registry import Registry


@dataclass(frozen=True)
class PublishedFit:
    name: str
    law: str
    params: dict[str, float]
    citation: str
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    ci_level: float | None = None
    n_points: int | None = None


PUBLISHED: Registry[PublishedFit] = Registry("published fit")


def _add(fit: PublishedFit) -> None:
    PUBLISHED.register(fit.name, fit)


_add(PublishedFit(
    "chinchilla", "chinchilla", {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28},
    "Hoffmann et al. 2022, Training Compute-Optimal Large Language Models, eq. 10 (arXiv 2203.15556)"))
_add(PublishedFit(
    "chinchilla-tex", "chinchilla",
    {"E": 1.69337368, "A": 406.401018, "B": 410.722827, "alpha": 0.33917084, "beta": 0.2849083},
    "Hoffmann et al. 2022, unrounded values from the arXiv TeX source, as quoted by Besiroglu et al. 2024"))
_add(PublishedFit(
    "epoch2024", "chinchilla", {"E": 1.8172, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658},
    "Besiroglu et al. 2024, Chinchilla Scaling: A replication attempt, Table 1 estimates (arXiv 2404.10102); "
    "95% bootstrap CIs from their data_analysis.ipynb",
    ci={"E": (1.769, 1.871), "A": (285.214, 743.626), "B": (1042.357, 5810.344), "alpha": (0.317, 0.373),
        "beta": (0.331, 0.415)}, ci_level=0.95, n_points=240))
_add(PublishedFit(
    "busbridge2025-supervised", "supervised",
    {"E": 1.220, "A": 3355.0, "B": 18186.0, "alpha": 0.408, "beta": 0.431, "gamma": 0.452},
    "Busbridge et al. 2025, Distillation Scaling Laws, Table 6, supervised (arXiv 2502.08606)",
    ci={"E": (1.190, 1.247), "A": (3346.0, 3360.0), "B": (18157.0, 18236.0), "alpha": (0.405, 0.411),
        "beta": (0.428, 0.433), "gamma": (0.442, 0.461)}, ci_level=0.90, n_points=73))
_add(PublishedFit(
    "busbridge2025-distillation", "distillation",
    {"A": 2243.0, "B": 24181.0, "alpha": 0.321, "beta": 0.637, "gamma": 0.764, "c0": 2.549, "c1": 522.6,
     "f1": 0.090, "d1": 1.315},
    "Busbridge et al. 2025, Distillation Scaling Laws, Table 6, distillation (arXiv 2502.08606)",
    ci={"A": (2227.0, 2255.0), "B": (24084.0, 24266.0), "alpha": (0.319, 0.324), "beta": (0.634, 0.640),
        "gamma": (0.732, 0.788), "c0": (2.425, 2.615), "c1": (522.6, 522.6), "f1": (0.088, 0.093),
        "d1": (1.302, 1.327)}, ci_level=0.90, n_points=697))


def published(name: str) -> PublishedFit:
    """A published coefficient set by name: chinchilla, chinchilla-tex, epoch2024,
    busbridge2025-{supervised,distillation}."""
    return PUBLISHED.get(name)
