"""Compute-optimal scaling by Hoffmann et al.'s three approaches: N_opt ∝ C^a and D_opt ∝ C^b.

    suite fit --approach envelope --data reports/scaling_lab/results.parquet     # approach 1
    suite fit --approach isoflop  --data reports/scaling_lab/results.parquet     # approach 2
    suite fit --approach parametric --law supervised --data ...                   # approach 3

    from suite.laws import envelope, isoflop, parametric_exponents
    r = isoflop(df)                   # df: columns N, D, loss (a sweep's supervised runs, or points)
    r.a, r.b, r.ci["a"], r.levels     # exponents, bootstrap intervals, one row per compute level

Compute is C = 6ND (Hoffmann et al.), the same accounting as the parametric laws' closed-form optimum.
Runs are grouped into compute levels: sorted by C, a new level starts where C exceeds the level's first
run by more than `level_tolerance` (× 1.05 by default: the runs of one isoFLOP level differ by the step
rounding of their token budgets, under 1%, while other runs of a sweep, e.g. a product grid of baselines,
should not join a level). A level needs ≥ 3 sizes for either approach; repeated (N, D) runs (seeds) are
averaged first.

  * approach 1 (envelope): at each compute level the run of lowest loss gives (N*, D*); a and b are the
    least-squares slopes of log N* and log D* on log C. Hoffmann et al. take the envelope of training
    curves; from final losses alone it is the minimum over the runs of each level.
  * approach 2 (isoflop): at each level with ≥ 3 sizes, a parabola in ln N fitted to the loss gives
    N_opt at its vertex and D_opt = C / (6 N_opt); then the same slopes. A level whose parabola opens
    downwards, or whose vertex lies outside the sizes it measured, is reported and left out.
  * approach 3 (parametric): the fitted law's closed form a = beta/(alpha+beta), b = alpha/(alpha+beta)
    (exact for Busbridge's gamma form too), with intervals from the law's bootstrap samples.
Intervals of approaches 1 and 2: percentile bootstrap, resampling the (N, D) points within each level.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import pandas as pd

from .compute import chinchilla_optimal

APPROACHES = ("envelope", "isoflop", "parametric")


@dataclass(frozen=True)
class ApproachResult:
    """N_opt = k_N·C^a and D_opt = k_D·C^b by one approach; `levels` has one row per compute level."""

    approach: str
    a: float
    b: float
    k_N: float
    k_D: float
    ci: dict[str, tuple[float, float]] | None = None
    ci_level: float | None = None
    n_bootstrap: int = 0
    levels: pd.DataFrame | None = field(default=None, repr=False, compare=False)
    points: pd.DataFrame | None = field(default=None, repr=False, compare=False)   # N, D, loss, C, level (seeds averaged)
    warnings: tuple[str, ...] = ()

    def optimal(self, C: Any) -> tuple[Any, Any]:
        C = np.asarray(C, dtype=float)
        return self.k_N * C ** self.a, self.k_D * C ** self.b

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"approach": self.approach, "a": self.a, "b": self.b, "k_N": self.k_N, "k_D": self.k_D,
                               "warnings": list(self.warnings)}
        if self.ci is not None:
            out.update(ci={k: list(v) for k, v in self.ci.items()}, ci_level=self.ci_level,
                       n_bootstrap=self.n_bootstrap)
        if self.levels is not None:
            out["levels"] = self.levels.to_dict(orient="records")
        return out


def compute_levels(C: Any, tolerance: float = 1.05) -> np.ndarray:
    """Level index of each compute value: sorted, a new level when C > tolerance × the level's first C."""
    if tolerance <= 1:
        raise ValueError(f"level tolerance must be > 1 (a factor), got {tolerance}")
    C = np.asarray(C, dtype=float)
    order = np.argsort(C, kind="stable")
    out = np.empty(C.size, dtype=int)
    level, first = -1, None
    for i in order:
        if first is None or C[i] > tolerance * first:
            level, first = level + 1, C[i]
        out[i] = level
    return out


def _points(data: Mapping[str, Any] | pd.DataFrame) -> pd.DataFrame:
    df = pd.DataFrame({k: np.asarray(data[k], dtype=float) for k in ("N", "D", "loss")})
    bad = ~np.isfinite(df.to_numpy()).all(axis=1) | (df[["N", "D", "loss"]] <= 0).any(axis=1).to_numpy()
    if bad.any():
        raise ValueError(f"{int(bad.sum())} point(s) with a non-finite or non-positive N, D or loss")
    df = df.groupby(["N", "D"], as_index=False)["loss"].mean()   # seeds of one (N, D): their mean
    df["C"] = 6.0 * df["N"] * df["D"]
    return df


def _slopes(C: np.ndarray, N: np.ndarray, D: np.ndarray) -> tuple[float, float, float, float]:
    lc = np.log(C)
    a, ln_kn = np.polyfit(lc, np.log(N), 1)
    b, ln_kd = np.polyfit(lc, np.log(D), 1)
    return float(a), float(b), float(np.exp(ln_kn)), float(np.exp(ln_kd))


def _envelope_levels(df: pd.DataFrame, min_sizes: int = 3) -> pd.DataFrame:
    rows = []
    for lvl, g in df.groupby("level"):
        g = g.reset_index(drop=True)
        best = g.loc[g["loss"].idxmin()]
        sizes = g["N"].nunique()
        row = {"level": int(lvl), "C": float(best["C"]), "runs": len(g), "N_opt": float(best["N"]),
               "D_opt": float(best["D"]), "loss_min": float(best["loss"]), "used": sizes >= min_sizes, "note": ""}
        if sizes < min_sizes:
            row["note"] = f"{sizes} size(s); a minimum over sizes needs {min_sizes}"
        elif best["N"] in (g["N"].min(), g["N"].max()):
            row["note"] = "the best run is the smallest or largest size of its level: the optimum may lie beyond"
        rows.append(row)
    return pd.DataFrame(rows)


def fit_parabola(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """(c2, c1, c0) of y = c2 x² + c1 x + c0 by least squares; x is centred internally for conditioning."""
    x = np.asarray(x, dtype=float)
    m = x.mean()
    c2, c1, c0 = np.polyfit(x - m, np.asarray(y, dtype=float), 2)
    return float(c2), float(c1 - 2 * c2 * m), float(c0 - c1 * m + c2 * m * m)


def _isoflop_levels(df: pd.DataFrame, min_sizes: int = 3) -> pd.DataFrame:
    rows = []
    for lvl, g in df.groupby("level"):
        C = float(np.exp(np.log(g["C"]).mean()))
        row = {"level": int(lvl), "C": C, "runs": len(g), "N_opt": np.nan, "D_opt": np.nan, "loss_min": np.nan,
               "curvature": np.nan, "used": False, "note": ""}
        x = np.log(g["N"].to_numpy())
        if np.unique(x).size < min_sizes:
            row["note"] = f"{np.unique(x).size} size(s); a parabola needs {min_sizes}"
        else:
            c2, c1, c0 = fit_parabola(x, g["loss"].to_numpy())
            row["curvature"] = c2
            if c2 <= 0:
                row["note"] = "the parabola opens downwards: no minimum"
            else:
                xv = float(np.clip(-c1 / (2 * c2), -700, 700))   # a near-flat parabola's vertex is far off
                row.update(N_opt=float(np.exp(xv)), D_opt=float(C / (6 * np.exp(xv))),
                           loss_min=float(c0 - c1 * c1 / (4 * c2)))
                if not x.min() <= xv <= x.max():
                    row["note"] = (f"vertex N = {np.exp(xv):.3g} outside the measured sizes "
                                   f"[{np.exp(x.min()):.3g}, {np.exp(x.max()):.3g}]")
                else:
                    row["used"] = True
        rows.append(row)
    return pd.DataFrame(rows)


def _approach(name: str, data, level_tolerance: float, bootstrap: int, ci: float, seed: int) -> ApproachResult:
    df = _points(data)
    df["level"] = compute_levels(df["C"], level_tolerance)
    per_level = _envelope_levels if name == "envelope" else _isoflop_levels
    levels = per_level(df)
    use = levels[levels["used"]]
    # levels of one or two sizes are runs off the isoFLOP design (baselines, teachers): counted, not listed
    stray = levels["runs"].lt(3) & ~levels["used"]
    notes = [f"level {int(r.level)} (C = {r.C:.3g}): {r.note}" for r in levels[~stray].itertuples() if r.note]
    if stray.any():
        notes.append(f"{int(levels.loc[stray, 'runs'].sum())} run(s) at {int(stray.sum())} other compute value(s) "
                     f"with fewer than 3 sizes each: not on an isoFLOP level, left out")
    if len(use) < 2:
        raise ValueError(f"approach {name}: {len(use)} usable compute level(s) of {len(levels)}; at least 2 are "
                         "needed for a slope" + ("".join(f"\n  {n}" for n in notes)))
    a, b, k_n, k_d = _slopes(use["C"].to_numpy(), use["N_opt"].to_numpy(), use["D_opt"].to_numpy())
    extra: dict[str, Any] = {}
    if bootstrap:
        if not 0 < ci < 1:
            raise ValueError(f"ci level must be in (0, 1), got {ci}")
        rng = np.random.default_rng(seed)
        groups = [g for _, g in df.groupby("level")]
        samples = []
        for _ in range(bootstrap):
            res = pd.concat([g.iloc[rng.integers(0, len(g), len(g))] for g in groups], ignore_index=True)
            lv = per_level(res)
            lv = lv[lv["used"]]
            if len(lv) >= 2:
                samples.append(_slopes(lv["C"].to_numpy(), lv["N_opt"].to_numpy(), lv["D_opt"].to_numpy())[:2])
        s = np.array(samples)
        q = [(1 - ci) / 2 * 100, (1 + ci) / 2 * 100]
        if len(s):
            extra = {"ci": {"a": tuple(map(float, np.percentile(s[:, 0], q))),
                            "b": tuple(map(float, np.percentile(s[:, 1], q)))},
                     "ci_level": ci, "n_bootstrap": len(s)}
    return ApproachResult(name, a, b, k_n, k_d, levels=levels, points=df, warnings=tuple(notes), **extra)


def envelope(data: Mapping[str, Any] | pd.DataFrame, *, level_tolerance: float = 1.05, bootstrap: int = 0,
             ci: float = 0.9, seed: int = 0) -> ApproachResult:
    """Hoffmann et al.'s approach 1 on final losses: the lowest-loss run at each compute level."""
    return _approach("envelope", data, level_tolerance, bootstrap, ci, seed)


def isoflop(data: Mapping[str, Any] | pd.DataFrame, *, level_tolerance: float = 1.05, bootstrap: int = 0,
            ci: float = 0.9, seed: int = 0) -> ApproachResult:
    """Hoffmann et al.'s approach 2: a parabola in ln N per isoFLOP level, its vertex the optimum."""
    return _approach("isoflop", data, level_tolerance, bootstrap, ci, seed)


def parametric_exponents(params: Mapping[str, float], samples: np.ndarray | None = None,
                         param_names: tuple[str, ...] | None = None, ci: float = 0.9) -> ApproachResult:
    """Approach 3: a = beta/(alpha+beta), b = alpha/(alpha+beta) of a fitted chinchilla or supervised law,
    k_N and k_D from the closed form (`chinchilla_optimal`); intervals from bootstrap `samples` (rows in
    `param_names` order, as FitResult.samples)."""

    a = params["beta"] / (params["alpha"] + params["beta"])
    n1, d1 = chinchilla_optimal(params, 1.0)
    extra: dict[str, Any] = {}
    if samples is not None and len(samples) and param_names is not None:
        al = samples[:, param_names.index("alpha")]
        be = samples[:, param_names.index("beta")]
        sa = be / (al + be)
        q = [(1 - ci) / 2 * 100, (1 + ci) / 2 * 100]
        extra = {"ci": {"a": tuple(map(float, np.percentile(sa, q))), "b": tuple(map(float, np.percentile(1 - sa, q)))},
                 "ci_level": ci, "n_bootstrap": int(len(samples))}
    return ApproachResult("parametric", float(a), float(1 - a), float(n1), float(d1), **extra)
