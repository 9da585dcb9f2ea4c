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

Conventions (`CONVENTIONS`): what N and C count changes the exponents, most at small sizes, where the
embeddings can outweigh the rest of the model. `non_embedding` (the default) counts non-embedding N and
C = 6ND (Kaplan; Busbridge et al.); `total` counts every parameter, C = 6·N_total·D (Hoffmann et al.);
`measured` keeps non-embedding N and takes C from the training loop's own FLOP count (column C_measured,
a results table's flops.student_train: attention and the LM head included). Approaches 1 and 2 keep the
levels of the sweep's design (grouped by 6ND with the N column) and re-express each level's optimum run (or
vertex, interpolated between the level's sizes) in the convention: the runs of a level are iso-compute in
the design's accounting, only roughly in another. Approach 3 is exact in each: the closed form of a law
fitted with that N for C = 6ND (`parametric_exponents`), and a numeric optimum under the measured cost
per token, interpolated between the measured sizes (`parametric_measured`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import pandas as pd

from .compute import chinchilla_optimal

APPROACHES = ("envelope", "isoflop", "parametric")


@dataclass(frozen=True)
class Convention:
    """What N and C count: `n_params` non_embedding | total, `flops` 6ND | measured."""

    key: str
    n_params: str
    flops: str
    label: str       # for captions
    phrase: str      # for a sentence: "with total parameters"


CONVENTIONS: dict[str, Convention] = {c.key: c for c in (
    Convention("non_embedding", "non_embedding", "6ND", "N non-embedding, C = 6ND",
               "with non-embedding parameters and C = 6ND"),
    Convention("total", "total", "6ND", "N total (embeddings and LM head included), C = 6ND",
               "with total parameters (embeddings and LM head included)"),
    Convention("measured", "non_embedding", "measured", "N non-embedding, C = the loop's measured FLOPs",
               "with C from the loop's measured FLOPs (flops.student_train)"),
)}
DEFAULT_CONVENTION = "non_embedding"


def get_convention(key: "str | Convention") -> Convention:
    """The convention named `key` (a key of CONVENTIONS), or a ValueError naming the valid ones."""
    if isinstance(key, Convention):
        return key
    if key not in CONVENTIONS:
        from ..registry import did_you_mean

        raise ValueError(f"unknown convention {key!r}{did_you_mean(str(key), CONVENTIONS)}; valid: "
                         f"{', '.join(CONVENTIONS)}")
    return CONVENTIONS[key]


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
    # N, D, loss, C, level (seeds averaged)
    points: pd.DataFrame | None = field(default=None, repr=False, compare=False)
    warnings: tuple[str, ...] = ()
    convention: str = DEFAULT_CONVENTION   # a key of CONVENTIONS: what N and C count

    def optimal(self, C: Any) -> tuple[Any, Any]:
        C = np.asarray(C, dtype=float)
        return self.k_N * C ** self.a, self.k_D * C ** self.b

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"approach": self.approach, "a": self.a, "b": self.b, "k_N": self.k_N, "k_D": self.k_D,
                               "convention": self.convention, "warnings": list(self.warnings)}
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


def _points(data: Mapping[str, Any] | pd.DataFrame, conv: Convention | None = None) -> pd.DataFrame:
    """Seed-averaged points: N, D, loss, C = 6ND (the design compute, which makes the levels), and N_c, C_c:
    N and C as the convention counts them."""
    conv = CONVENTIONS[DEFAULT_CONVENTION] if conv is None else conv
    extra = {"total": "N_total"}.get(conv.n_params), {"measured": "C_measured"}.get(conv.flops)
    extra = tuple(c for c in extra if c)
    have = list(data.columns) if isinstance(data, pd.DataFrame) else list(data)
    missing = [c for c in ("N", "D", "loss", *extra) if c not in have]
    if missing:
        raise ValueError(f"convention {conv.key} ({conv.label}) needs column(s) {', '.join(missing)}; "
                         f"columns present: {', '.join(map(str, have))}")
    df = pd.DataFrame({k: np.asarray(data[k], dtype=float) for k in ("N", "D", "loss", *extra)})
    base = df[["N", "D", "loss"]]
    bad = ~np.isfinite(base.to_numpy()).all(axis=1) | (base <= 0).any(axis=1).to_numpy()
    if bad.any():
        raise ValueError(f"{int(bad.sum())} point(s) with a non-finite or non-positive N, D or loss")
    for c in extra:
        bad = ~np.isfinite(df[c].to_numpy()) | (df[c] <= 0).to_numpy()
        if bad.any():
            raise ValueError(f"convention {conv.key}: {int(bad.sum())} point(s) without a positive {c}")
    # seeds of one (N, D): their mean (N_total and C_measured are the same for every seed)
    df = df.groupby(["N", "D"], as_index=False)[["loss", *extra]].mean()
    df["C"] = 6.0 * df["N"] * df["D"]
    df["N_c"] = df["N_total"] if conv.n_params == "total" else df["N"]
    df["C_c"] = df["C_measured"] if conv.flops == "measured" else 6.0 * df["N_c"] * df["D"]
    return df


def _interp(x0: float, x: np.ndarray, y: np.ndarray) -> float:
    """y at x0 by linear interpolation in (x, y), extended linearly beyond the ends."""
    x, inv = np.unique(np.asarray(x, dtype=float), return_inverse=True)   # sorted; repeats (resamples) averaged
    y = np.bincount(inv.reshape(-1), weights=np.asarray(y, dtype=float)) / np.bincount(inv.reshape(-1))
    if x.size == 1:
        return float(y[0])
    if x0 < x[0]:
        return float(y[0] + (x0 - x[0]) * (y[1] - y[0]) / (x[1] - x[0]))
    if x0 > x[-1]:
        return float(y[-1] + (x0 - x[-1]) * (y[-1] - y[-2]) / (x[-1] - x[-2]))
    return float(np.interp(x0, x, y))


def _slopes(C: np.ndarray, N: np.ndarray, D: np.ndarray) -> tuple[float, float, float, float]:
    lc = np.log(C)
    a, ln_kn = np.polyfit(lc, np.log(N), 1)
    b, ln_kd = np.polyfit(lc, np.log(D), 1)
    return float(a), float(b), float(np.exp(ln_kn)), float(np.exp(ln_kd))


_LEVEL_COLUMNS = ("N", "D", "loss", "C", "N_c", "C_c")


def _split(df: pd.DataFrame) -> list[tuple[int, dict[str, np.ndarray]]]:
    """(level, {column: array}) per compute level, in level order, rows in their order (as df.groupby("level"))."""
    lv = df["level"].to_numpy()
    order = np.argsort(lv, kind="stable")
    keys, starts = np.unique(lv[order], return_index=True)
    cols = {c: df[c].to_numpy(dtype=float)[order] for c in _LEVEL_COLUMNS}
    ends = [*starts[1:], len(order)]
    return [(int(k), {c: v[s:e] for c, v in cols.items()}) for k, s, e in zip(keys, starts, ends)]


def _same(df: pd.DataFrame) -> bool:
    """Whether the convention counts N and C as the design does (then nothing is re-expressed)."""
    return bool(df["N_c"].equals(df["N"]) and df["C_c"].equals(df["C"]))


def _envelope_rows(groups: list[tuple[int, dict[str, np.ndarray]]], same: bool, min_sizes: int = 3) -> list[dict]:
    rows = []
    for lvl, g in groups:
        i = int(np.argmin(g["loss"]))   # the first run of lowest loss
        sizes = np.unique(g["N"]).size
        row = {"level": lvl, "C": float(g["C_c"][i]), "runs": len(g["N"]), "N_opt": float(g["N_c"][i]),
               "D_opt": float(g["D"][i]), "loss_min": float(g["loss"][i]), "used": sizes >= min_sizes, "note": ""}
        if sizes < min_sizes:
            row["note"] = f"{sizes} size(s); a minimum over sizes needs {min_sizes}"
        elif g["N"][i] in (g["N"].min(), g["N"].max()):
            row["note"] = "the best run is the smallest or largest size of its level: the optimum may lie beyond"
        rows.append(row)
    return rows


def fit_parabola(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """(c2, c1, c0) of y = c2 x² + c1 x + c0 by least squares; x is centred internally for conditioning."""
    x = np.asarray(x, dtype=float)
    m = x.mean()
    c2, c1, c0 = np.polyfit(x - m, np.asarray(y, dtype=float), 2)
    return float(c2), float(c1 - 2 * c2 * m), float(c0 - c1 * m + c2 * m * m)


def _isoflop_rows(groups: list[tuple[int, dict[str, np.ndarray]]], same: bool, min_sizes: int = 3) -> list[dict]:
    rows = []
    for lvl, g in groups:
        C = float(np.exp(np.log(g["C"]).mean()))
        row = {"level": lvl, "C": C, "runs": len(g["N"]), "N_opt": np.nan, "D_opt": np.nan, "loss_min": np.nan,
               "curvature": np.nan, "used": False, "note": ""}
        x = np.log(g["N"])
        if np.unique(x).size < min_sizes:
            row["note"] = f"{np.unique(x).size} size(s); a parabola needs {min_sizes}"
        else:
            c2, c1, c0 = fit_parabola(x, g["loss"])
            row["curvature"] = c2
            if c2 <= 0:
                row["note"] = "the parabola opens downwards: no minimum"
            else:
                xv = float(np.clip(-c1 / (2 * c2), -700, 700))   # a near-flat parabola's vertex is far off
                row.update(N_opt=float(np.exp(xv)), D_opt=float(C / (6 * np.exp(xv))),
                           loss_min=float(c0 - c1 * c1 / (4 * c2)))
                if not same:   # the vertex's N and C as the convention counts them, between the level's sizes
                    n_c = float(np.exp(_interp(xv, x, np.log(g["N_c"]))))
                    per_token = float(np.exp(_interp(xv, x, np.log(g["C_c"] / g["D"]))))
                    row.update(N_opt=n_c, C=per_token * row["D_opt"])
                if not x.min() <= xv <= x.max():
                    row["note"] = (f"vertex N = {np.exp(xv):.3g} outside the measured sizes "
                                   f"[{np.exp(x.min()):.3g}, {np.exp(x.max()):.3g}]")
                else:
                    row["used"] = True
        if not same and not row["used"]:
            row["C"] = float(np.exp(np.log(g["C_c"]).mean()))
        rows.append(row)
    return rows


def _approach(name: str, data, level_tolerance: float, bootstrap: int, ci: float, seed: int,
              conv: "str | Convention" = DEFAULT_CONVENTION) -> ApproachResult:
    conv = get_convention(conv)
    df = _points(data, conv)
    df["level"] = compute_levels(df["C"], level_tolerance)
    per_level = _envelope_rows if name == "envelope" else _isoflop_rows
    groups, same = _split(df), _same(df)
    levels = pd.DataFrame(per_level(groups, same))
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
        samples = []
        for _ in range(bootstrap):   # resample the runs of each level (arrays, not frames: this loop is hot)
            res = []
            for lvl, g in groups:
                pick = rng.integers(0, len(g["N"]), len(g["N"]))
                res.append((lvl, {c: v[pick] for c, v in g.items()}))
            lv = [r for r in per_level(res, same) if r["used"]]
            if len(lv) >= 2:
                samples.append(_slopes(*(np.array([r[k] for r in lv]) for k in ("C", "N_opt", "D_opt")))[:2])
        s = np.array(samples)
        q = [(1 - ci) / 2 * 100, (1 + ci) / 2 * 100]
        if len(s):
            extra = {"ci": {"a": tuple(map(float, np.percentile(s[:, 0], q))),
                            "b": tuple(map(float, np.percentile(s[:, 1], q)))},
                     "ci_level": ci, "n_bootstrap": len(s)}
    return ApproachResult(name, a, b, k_n, k_d, levels=levels, points=df, warnings=tuple(notes), convention=conv.key,
                          **extra)


def envelope(data: Mapping[str, Any] | pd.DataFrame, *, level_tolerance: float = 1.05, bootstrap: int = 0,
             ci: float = 0.9, seed: int = 0, convention: "str | Convention" = DEFAULT_CONVENTION) -> ApproachResult:
    """Hoffmann et al.'s approach 1 on final losses: the lowest-loss run at each compute level. `convention`
    (a key of CONVENTIONS) says what N and C count; "total" needs a column N_total, "measured" C_measured."""
    return _approach("envelope", data, level_tolerance, bootstrap, ci, seed, convention)


def isoflop(data: Mapping[str, Any] | pd.DataFrame, *, level_tolerance: float = 1.05, bootstrap: int = 0,
            ci: float = 0.9, seed: int = 0, convention: "str | Convention" = DEFAULT_CONVENTION) -> ApproachResult:
    """Hoffmann et al.'s approach 2: a parabola in ln N per isoFLOP level, its vertex the optimum (`convention`
    as for `envelope`)."""
    return _approach("isoflop", data, level_tolerance, bootstrap, ci, seed, convention)


def parametric_exponents(params: Mapping[str, float], samples: np.ndarray | None = None,
                         param_names: tuple[str, ...] | None = None, ci: float = 0.9,
                         convention: "str | Convention" = DEFAULT_CONVENTION) -> ApproachResult:
    """Approach 3: a = beta/(alpha+beta), b = alpha/(alpha+beta) of a fitted chinchilla or supervised law,
    k_N and k_D from the closed form (`chinchilla_optimal`); intervals from bootstrap `samples` (rows in
    `param_names` order, as FitResult.samples). C = 6ND with the N the law was fitted with: `convention`
    ("non_embedding" or "total") only labels the result; a measured FLOP count needs `parametric_measured`."""
    conv = get_convention(convention)
    if conv.flops != "6ND":
        raise ValueError(f"the closed form assumes C = 6ND; for convention {conv.key} use parametric_measured")

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
    return ApproachResult("parametric", float(a), float(1 - a), float(n1), float(d1), convention=conv.key,
                          **extra)


def parametric_measured(law: Any, params: Mapping[str, float], data: Mapping[str, Any] | pd.DataFrame, *,
                        samples: np.ndarray | None = None, ci: float = 0.9,
                        convention: "str | Convention" = "measured", n_compute: int = 25,
                        grid_points: int = 1601) -> ApproachResult:
    """Approach 3 under a measured FLOP count: at each of `n_compute` compute values spread over the measured
    range, the N that minimizes the fitted `law` (inputs N, D; fitted with the convention's N) subject to
    C = c(N)·D, where c(N) is the measured cost per token (C_measured / D of the runs, interpolated in log-log
    between the measured sizes, extended linearly beyond them); a and b are the least-squares slopes of
    log N_opt and log D_opt on log C, intervals from bootstrap `samples` (rows in `law.param_names` order).
    The optimum is no exact power law when c(N) is not ∝ N, so the slopes are over the measured range; the
    result's `points` holds the optimum (C, N_opt, D_opt) at each compute value."""
    conv = get_convention(convention)
    if tuple(law.inputs) != ("N", "D"):
        raise ValueError(f"parametric_measured needs a law of N and D, not the {law.name} law")
    pts = _points(data, conv)
    cost = pts.assign(f=pts["C_c"] / pts["D"]).groupby("N_c")["f"].mean()   # measured FLOPs per token, per size
    ln_n, ln_f = np.log(cost.index.to_numpy(float)), np.log(cost.to_numpy(float))
    C = np.geomspace(pts["C_c"].min(), pts["C_c"].max(), n_compute)
    x = np.linspace(ln_n.min() - np.log(100.0), ln_n.max() + np.log(100.0), grid_points)
    f_x = np.exp(np.array([_interp(v, ln_n, ln_f) for v in x]))
    N = np.broadcast_to(np.exp(x), (C.size, x.size))
    D = C[:, None] / f_x[None, :]
    z = law.prepare({"N": N.reshape(-1), "D": D.reshape(-1)})

    def optima(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ln N_opt (S, n_compute), at the grid's edge (S, n_compute)) for parameter rows theta (S, p)."""
        lp = law.log_predict(theta, z).reshape(len(theta), C.size, x.size)
        lp = np.where(np.isfinite(lp), lp, np.inf)
        i = np.clip(lp.argmin(axis=2), 1, x.size - 2)
        edge = (lp.argmin(axis=2) == 0) | (lp.argmin(axis=2) == x.size - 1)
        y0, y1, y2 = (np.take_along_axis(lp, (i + k)[..., None], axis=2)[..., 0] for k in (-1, 0, 1))
        den = y0 - 2 * y1 + y2
        h = x[1] - x[0]
        shift = np.where(den > 0, 0.5 * (y0 - y2) / np.where(den > 0, den, 1.0), 0.0)   # parabola through 3 points
        return x[i] + np.clip(shift, -1, 1) * h, edge

    def slopes(xo: np.ndarray) -> tuple[float, float, float, float]:
        n_opt = np.exp(xo)
        d_opt = C / np.exp(np.array([_interp(v, ln_n, ln_f) for v in xo]))
        return _slopes(C, n_opt, d_opt)

    xo, edge = optima(law.from_params(params)[None, :])
    a, b, k_n, k_d = slopes(xo[0])
    notes = [f"a and b: least-squares slopes of log N_opt and log D_opt on log C over C = {C[0]:.3g} to {C[-1]:.3g} "
             f"({n_compute} values), the optimum under the measured cost per token"]
    if edge.any():
        notes.append("at some compute values the optimum lies at the edge of the searched sizes (x100 beyond the "
                     "measured ones): no interior optimum there")
    lo, hi = np.exp(ln_n.min()), np.exp(ln_n.max())
    out_of = (np.exp(xo[0]) < lo) | (np.exp(xo[0]) > hi)
    if out_of.any():
        notes.append(f"at {int(out_of.sum())} of {n_compute} compute values N_opt lies outside the measured sizes "
                     f"[{lo:.3g}, {hi:.3g}]: the cost per token is extrapolated there")
    extra: dict[str, Any] = {}
    if samples is not None and len(samples):
        theta = np.array([law.from_params(dict(zip(law.param_names, row))) for row in samples])
        ab = []
        for j in range(0, len(theta), 32):
            xs, _ = optima(theta[j:j + 32])
            ab += [slopes(r)[:2] for r in xs]
        ab = np.array(ab)
        q = [(1 - ci) / 2 * 100, (1 + ci) / 2 * 100]
        extra = {"ci": {"a": tuple(map(float, np.percentile(ab[:, 0], q))),
                        "b": tuple(map(float, np.percentile(ab[:, 1], q)))},
                 "ci_level": ci, "n_bootstrap": int(len(ab))}
    per_c = pd.DataFrame({"C": C, "N_opt": np.exp(xo[0]),
                          "D_opt": C / np.exp([_interp(v, ln_n, ln_f) for v in xo[0]])})
    return ApproachResult("parametric", a, b, k_n, k_d, points=per_c, warnings=tuple(notes), convention=conv.key,
                          **extra)


def exponent_summary(results: Mapping[str, Mapping[str, "ApproachResult | str"]]) -> dict[str, Any]:
    """{convention: {"label", "n_params", "flops", "approaches": {approach: {"a", "a_ci", "b", "b_ci", "ci_level"}
    or {"error": why}}}} from {convention: {approach: ApproachResult or error string}}: what a headline quotes."""
    out: dict[str, Any] = {}
    for key, res in results.items():
        conv = get_convention(key)
        ap: dict[str, Any] = {}
        for name, r in res.items():
            if isinstance(r, str):
                ap[name] = {"error": r.splitlines()[0]}
                continue
            ci = r.ci or {}
            ap[name] = {"a": r.a, "a_ci": list(ci["a"]) if "a" in ci else None, "b": r.b,
                        "b_ci": list(ci["b"]) if "b" in ci else None, "ci_level": r.ci_level}
        out[key] = {"label": conv.label, "n_params": conv.n_params, "flops": conv.flops, "approaches": ap}
    return out


def conventions_sentence(summary: Mapping[str, Any], approach: str = "parametric") -> str:
    """One headline sentence from `exponent_summary`: which convention the report's numbers use, and the
    exponent a (N_opt ∝ C^a) of `approach` (approach 2, then 1, where it is missing) in each convention, e.g.
    "N counts non-embedding parameters and C = 6ND (as Busbridge et al.): N_opt ∝ C^a with a = 0.62 [0.58, 0.65]
    by approach 3; with total parameters (embeddings and LM head included) a = 0.46 [0.42, 0.50]; ...".
    """
    labels = {"envelope": "approach 1", "isoflop": "approach 2", "parametric": "approach 3"}

    def a_of(key: str) -> tuple[str, str] | None:
        ap = summary.get(key, {}).get("approaches", {})
        for name in (approach, "isoflop", "envelope"):
            r = ap.get(name)
            if r and "a" in r:
                ci = f" [{r['a_ci'][0]:.2f}, {r['a_ci'][1]:.2f}]" if r.get("a_ci") else ""
                return f"a = {r['a']:.2f}{ci}", name
        return None

    text = "N counts non-embedding parameters and C = 6ND (as Busbridge et al.)"
    first = a_of(DEFAULT_CONVENTION)
    if first is not None:
        text += f": N_opt ∝ C^a with {first[0]} by {labels[first[1]]}"
    for key in CONVENTIONS:
        got = a_of(key) if key != DEFAULT_CONVENTION and key in summary else None
        if got is not None:
            by = "" if first is not None and got[1] == first[1] else f" by {labels[got[1]]}"
            text += f"; {CONVENTIONS[key].phrase} {got[0]}{by}"
    return text + " (tables/compute_optimal)."
