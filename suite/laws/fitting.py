"""Fitting a law the robust way: log space, summed Huber, multi-start, bootstrap, held-out extrapolation.

    suite fit --law chinchilla --data points.csv --bootstrap 4000 --json

The objective is sum_i Huber_delta(log L(x_i; theta) - log L_i), summed over points, never averaged
(averaging shrinks it ~n times and L-BFGS stops early: Besiroglu et al. 2024, marin PR #749).

How the multi-start grid is made fast without changing its answer:
1. Every start of the grid descends at once: a batched Levenberg-Marquardt on the Huber loss (IRLS weights),
   vectorized over starts and points with the law's analytic Jacobian. The 4500-start Chinchilla grid on
   240 points takes `scout` (15) array steps of shape (5, 4500, 240) instead of 4500 Python-level optimizer
   loops. Grids larger than `prune` starts (the distillation grid has 216,000) are first cut to the `prune`
   starts with the lowest objective, a cheap vectorized pass.
2. The `keep` (128) best scouts descend on, batched, until they converge. (On the Chinchilla grid the best
   basin is reached by a few starts within 10 steps and by hundreds within 20.)
3. The best distinct end points (`polish` of them) are finished with scipy L-BFGS-B and the analytic
   gradient, to full precision; the best of those is the fit.
`method="full"` instead runs L-BFGS-B from every start, the literal recipe of the papers.
"""
from __future__ import annotations

import dataclasses
import itertools
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
from scipy.optimize import minimize

from ..registry import did_you_mean
from .data import check_points
from .forms import Law

__all__ = ["FitResult", "fit", "bootstrap", "holdout", "huber", "start_grid"]


def huber(r: np.ndarray, delta: float) -> np.ndarray:
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


def start_grid(law: Law, grid: Mapping[str, Any] | None = None) -> np.ndarray:
    """The Cartesian product of the per-coordinate start values, clipped into the bounds: (S, p)."""
    g = dict(law.grid)
    for k, v in (grid or {}).items():
        if k not in law.fit_names:
            raise ValueError(f"grid key {k!r} is not a fitted coordinate of the {law.name} law; "
                             f"valid: {', '.join(law.fit_names)}")
        g[k] = tuple(np.atleast_1d(np.asarray(v, dtype=float)))
    starts = np.array(list(itertools.product(*[g[k] for k in law.fit_names])), dtype=float)
    lo, hi = np.array(law.bounds).T
    return np.clip(starts, lo, hi)


class _Objective:
    """Summed, optionally weighted Huber loss of one law on one data set, for many thetas at once."""

    def __init__(self, law: Law, data: Mapping[str, Any], loss: np.ndarray, delta: float,
                 fixed: Mapping[int, float] | None = None):
        self.law, self.delta = law, float(delta)
        self.z = law.prepare(data)
        self.y = np.log(np.asarray(loss, dtype=float))
        self.lo, self.hi = np.array(law.bounds, dtype=float).T
        for k, v in (fixed or {}).items():  # a held parameter is a coordinate whose bounds meet
            self.lo[k] = self.hi[k] = v
        self.held = self.lo == self.hi

    def single(self) -> "_Objective":
        """The same objective in float32: half the memory traffic, for the scouting pass only."""
        new = object.__new__(_Objective)
        new.__dict__.update(self.__dict__)
        new.z = {k: v.astype(np.float32) for k, v in self.z.items()}
        new.y = self.y.astype(np.float32)
        new.lo, new.hi = self.lo.astype(np.float32), self.hi.astype(np.float32)
        return new

    def value(self, theta: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):
            r = self.law.log_predict(np.atleast_2d(theta), self.z) - self.y
            h = huber(r, self.delta)
            f = (h if weights is None else h * weights).sum(axis=1)
        return np.where(np.isfinite(f), f, np.inf)

    def screen(self, theta: np.ndarray, max_points: int = 64, chunk: int = 20_000) -> np.ndarray:
        """A cheap objective for ranking many starts: float32, on at most `max_points` points spread by compute."""
        law, z32 = self.law, self.single()
        if len(self.y) > max_points:
            order = np.argsort(law.compute({k: self.z[k] for k in law.inputs}), kind="stable")
            pick = order[np.linspace(0, len(order) - 1, max_points).round().astype(int)]
            z32.z = {k: v[pick] for k, v in z32.z.items()}
            z32.y = z32.y[pick]
        t32 = theta.astype(np.float32)
        return np.concatenate([z32.value(t32[i:i + chunk]) for i in range(0, len(t32), chunk)])

    def grad(self, theta: np.ndarray, weights: np.ndarray | None = None):
        """(gradient (S, p), residuals r (S, n), Jacobian (p, S, n)) of the summed Huber loss."""
        lp, J = self.law.jacobian(np.atleast_2d(theta), self.z)
        r = lp - self.y
        psi = np.clip(r, -self.delta, self.delta)
        if weights is not None:
            psi = psi * weights
        return np.einsum("psn,sn->sp", J, psi), r, J

    # ---- batched Levenberg-Marquardt ----------------------------------------------------------------
    def descend(self, theta: np.ndarray, weights: np.ndarray | None = None, max_iter: int = 200,
                ftol: float = 1e-10, chunk: int = 8192) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Run every row of theta downhill; returns (theta, objective, converged) per row."""
        outs = [self._descend(theta[i:i + chunk].copy(), None if weights is None else weights[i:i + chunk],
                              max_iter, ftol) for i in range(0, len(theta), chunk)]
        return tuple(np.concatenate(x) for x in zip(*outs))  # type: ignore[return-value]

    def _descend(self, theta, weights, max_iter, ftol):
        S, p = theta.shape
        f = self.value(theta, weights)
        mu = np.full(S, 1e-2)
        done = ~np.isfinite(f)
        converged = np.zeros(S, dtype=bool)
        stall = np.zeros(S, dtype=int)
        eye = np.eye(p)
        for _ in range(max_iter):
            act = np.flatnonzero(~done)
            if act.size == 0:
                break
            th, w = theta[act], None if weights is None else weights[act]
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                g, r, J = self.grad(th, w)
                a = np.abs(r)
                irls = np.where(a <= self.delta, 1.0, self.delta / np.maximum(a, 1e-300))
                if w is not None:
                    irls = irls * w
                H = np.einsum("psn,qsn->spq", J * irls, J, optimize=True)
            H, g = H.astype(float), g.astype(float)
            if self.held.any():  # held coordinates take no step: an identity block, zero gradient
                H[:, self.held, :] = 0.0
                H[:, :, self.held] = 0.0
                H[:, self.held, self.held] = 1.0
                g[:, self.held] = 0.0
            d = np.einsum("spp->sp", H)
            damp = mu[act, None] * (d + 1e-9 * d.max(axis=1, keepdims=True) + 1e-12)
            A = H + damp[:, :, None] * eye
            bad = ~np.isfinite(A).all(axis=(1, 2)) | ~np.isfinite(g).all(axis=1)
            A[bad], g[bad] = eye, 0.0
            try:
                step = np.linalg.solve(A, -g[..., None])[..., 0]
            except np.linalg.LinAlgError:
                step = np.einsum("spq,sq->sp", np.linalg.pinv(A), -g)
            cand = np.clip(th + step.astype(th.dtype), self.lo, self.hi)
            fc = self.value(cand, w)
            fo = f[act]
            better = fc < fo
            rel = (fo - np.where(better, fc, fo)) / np.maximum(np.abs(fo), 1e-300)
            theta[act[better]] = cand[better]
            f[act[better]] = fc[better]
            mu[act] = np.where(better, np.maximum(mu[act] / 3.0, 1e-12), mu[act] * 4.0)
            small = better & (rel < ftol)
            stall[act] = np.where(small | ~better, stall[act] + 1, 0)
            # converged: accepted steps stopped paying (or damping exploded: no descent direction left)
            conv = (stall[act] >= 3) & (small | (mu[act] > 1e8)) | (np.abs(step).max(axis=1) < 1e-12) | bad
            converged[act[conv]] = ~bad[conv]
            done[act[conv]] = True
        return theta, f, converged

    # ---- scipy L-BFGS-B -------------------------------------------------------------------------------
    def lbfgsb(self, x0: np.ndarray, weights: np.ndarray | None = None, numerical: bool = False,
               options: Mapping[str, Any] | None = None):
        w = None if weights is None else weights[None, :]

        def fg(x):
            g, r, _ = self.grad(x[None, :], w)
            h = huber(r, self.delta)
            v = float((h if w is None else h * w).sum())
            return (v, g[0]) if np.isfinite(v) else (1e300, np.zeros_like(x))

        def fv(x):
            return float(min(self.value(x[None, :], w)[0], 1e300))

        opts = {"maxiter": 5000, "ftol": 1e-15, "gtol": 1e-12, **(options or {})}
        if numerical:
            return minimize(fv, x0, method="L-BFGS-B", bounds=list(zip(self.lo, self.hi)), options=opts)
        return minimize(fg, x0, jac=True, method="L-BFGS-B", bounds=list(zip(self.lo, self.hi)), options=opts)


@dataclass(frozen=True)
class FitResult:
    """A fitted law. `params` use the papers' names; `theta` is the fitted vector (`law.fit_names`)."""

    law: str
    params: dict[str, float]
    theta: tuple[float, ...]
    objective: float
    n_points: int
    starts: int
    converged: int      # starts whose descent ended at a stationary point (of the `searched`)
    searched: int       # starts that descended: all, or the `prune` lowest-objective ones of a larger grid
    refined: int        # starts run to convergence (method "fast": the `keep` best scouts; "full": all)
    delta: float
    method: str
    seconds: float
    at_bound: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    ci: dict[str, tuple[float, float]] | None = None
    ci_level: float | None = None
    n_bootstrap: int = 0
    samples: np.ndarray | None = field(default=None, repr=False, compare=False)  # (n_bootstrap, params)
    holdout: dict[str, Any] | None = None
    context: dict[str, Any] = field(default_factory=dict)   # law.built_on(), fixed, n_params

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"law": self.law, "params": self.params, "objective": self.objective,
                               "n_points": self.n_points, "starts": self.starts, "searched": self.searched,
                               "converged": self.converged,
                               "refined": self.refined,
                               "delta": self.delta, "method": self.method, "seconds": round(self.seconds, 3),
                               "at_bound": list(self.at_bound), "warnings": list(self.warnings)}
        if self.ci is not None:
            out["ci"] = {k: list(v) for k, v in self.ci.items()}
            out["ci_level"] = self.ci_level
            out["n_bootstrap"] = self.n_bootstrap
        if self.holdout is not None:
            out["holdout_rel_error"] = self.holdout["mean_rel_error"]
            out["holdout"] = self.holdout
        if self.context:
            out["context"] = self.context
        return out


def _at_bound(law: Law, theta: np.ndarray, held: set[int]) -> tuple[str, ...]:
    lo, hi = np.array(law.bounds, dtype=float).T
    tol = 1e-6 * np.maximum(1.0, np.abs(np.array(law.bounds, dtype=float)).max(axis=1))
    return tuple(n for i, (n, t, a, b, e) in enumerate(zip(law.fit_names, theta, lo, hi, tol))
                 if i not in held and (t - a <= e or b - t <= e))


def _held(law: Law, fixed: Mapping[str, float] | None) -> dict[int, float]:
    """Held parameters (paper names) as {coordinate index: value in fit space}."""
    out = {}
    for name, v in (fixed or {}).items():
        if name not in law.param_names:
            raise ValueError(f"cannot hold {name!r}: the {law.name} law's parameters are "
                             f"{', '.join(law.param_names)}{did_you_mean(name, law.param_names)}")
        if name in law.log_params:
            if v <= 0:
                raise ValueError(f"held parameter {name} must be positive, got {v}")
            out[law.fit_names.index(f"log_{name}")] = float(np.log(v))
        else:
            out[law.fit_names.index(name)] = float(v)
    return out


def _distinct(theta: np.ndarray, f: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k lowest-objective rows that are not near-duplicates of a better one."""
    keep: list[int] = []
    for i in np.argsort(f, kind="stable"):
        if not np.isfinite(f[i]):
            break
        if all(np.max(np.abs(theta[i] - theta[j]) / (1.0 + np.abs(theta[j]))) > 1e-4 for j in keep):
            keep.append(int(i))
            if len(keep) == k:
                break
    return np.array(keep, dtype=int)


def fit(law: Law, data: Mapping[str, Any], loss: Any = None, *, delta: float | None = None,
        grid: Mapping[str, Any] | np.ndarray | None = None, method: str = "fast", scout: int = 15,
        keep: int = 128, polish: int = 8, prune: int = 20_000, fixed: Mapping[str, float] | None = None,
        bootstrap: int = 0, ci: float = 0.9, seed: int = 0, holdout: float | None = None,
        progress: Callable[[str], None] | None = None, source: str = "data") -> FitResult:
    """Fit `law` to points. `data` maps the law's inputs (and "loss", unless `loss` is given) to arrays,
    e.g. a DataFrame with columns N, D, loss. `fixed` holds parameters at given values (paper names, e.g.
    {"gamma": 1.0}). `source` names the data in error messages. See the module docstring for `method`, `scout`,
    `keep`, `polish` and `prune`."""

    t0 = time.perf_counter()
    cols = check_points(law, data, loss, source=source)
    y = cols.pop("loss")
    delta = float(law.delta if delta is None else delta)
    if method not in ("fast", "full"):
        raise ValueError(f"fit method must be 'fast' or 'full', got {method!r}")
    if bootstrap and not 0 < ci < 1:
        raise ValueError(f"ci level must be in (0, 1), e.g. 0.9, got {ci}")
    if holdout is not None and not 0 < holdout < 1:
        raise ValueError(f"holdout fraction must be in (0, 1), e.g. 0.2, got {holdout}")
    held = _held(law, fixed)
    obj = _Objective(law, cols, y, delta, held)
    if isinstance(grid, np.ndarray):
        starts = np.array(grid, dtype=float)  # a copy: held values are written into it
        if starts.ndim != 2 or starts.shape[1] != len(law.fit_names):
            raise ValueError(f"starts must have shape (S, {len(law.fit_names)}) for the {law.name} law "
                             f"({', '.join(law.fit_names)}); got {starts.shape}")
        starts = np.clip(starts, obj.lo, obj.hi)
    else:
        starts = start_grid(law, grid)
    if held:  # one start value per held coordinate
        starts[:, list(held)] = list(held.values())
        starts = np.unique(starts, axis=0)
    say = progress or (lambda _: None)
    n_starts = len(starts)

    if method == "full":
        say(f"{law.name}: L-BFGS-B from {n_starts} starts")
        results = [obj.lbfgsb(s) for s in starts]
        f = np.array([r.fun for r in results])
        converged = int(sum(bool(r.success) for r in results))
        refined = searched = n_starts
        best = results[int(np.argmin(f))]
        theta, fbest = best.x, float(best.fun)
    else:
        if n_starts > prune:  # cheap first pass: keep the starts with the lowest objective
            f0 = obj.screen(starts)
            starts = starts[np.argsort(f0, kind="stable")[:prune]]
            say(f"{law.name}: pruned {n_starts} starts to the {prune} with the lowest objective")
        say(f"{law.name}: batched descent from {len(starts)} starts on {len(y)} points")
        ends, f, conv = obj.single().descend(starts.astype(np.float32), max_iter=scout)
        best_scouts = np.argsort(f, kind="stable")[:keep]
        rest = np.ones(len(f), dtype=bool)
        rest[best_scouts] = False
        ends, f, conv2 = obj.descend(ends[best_scouts].astype(float), max_iter=400)
        converged, refined, searched = int(conv[rest].sum() + conv2.sum()), len(best_scouts), len(starts)
        cand = [obj.lbfgsb(ends[i]) for i in _distinct(ends, f, polish)]
        if not cand:
            raise FloatingPointError(f"{law.name} fit: the objective is not finite at any start")
        best = min(cand, key=lambda r: r.fun)
        theta, fbest = best.x, float(best.fun)
        # L-BFGS-B can stall along the flat ridges of these laws; a last Gauss-Newton pass from the winner
        # (quadratic near a small-residual minimum) finishes it, and is kept only if it is lower
        th2, f2, _ = obj.descend(theta[None, :].copy(), max_iter=500, ftol=1e-14)
        if f2[0] < fbest:
            theta, fbest = th2[0], float(f2[0])

    bound = _at_bound(law, theta, set(held))
    notes = [f"{law.name} fit: {n} is at its bound {dict(zip(law.fit_names, law.bounds))[n]}; the fit may be "
             f"degenerate (too little spread in the data for this law?)" for n in bound]
    for n in notes:
        warnings.warn(n, stacklevel=2)
    res = FitResult(law=law.name, params=law.to_params(theta), theta=tuple(map(float, theta)), objective=fbest,
                    n_points=len(y), starts=n_starts, searched=searched,
                    converged=converged, refined=refined, delta=delta, method=method,
                    seconds=0.0, at_bound=bound, warnings=tuple(notes),
                    context={**_context(law), **({"fixed": dict(fixed)} if fixed else {})})
    extra: dict[str, Any] = {}
    if bootstrap:
        say(f"{law.name}: bootstrap, {bootstrap} resamples")
        extra.update(_bootstrap(obj, law, theta, bootstrap, ci, seed))
    if holdout:
        say(f"{law.name}: held-out extrapolation on the top {holdout:.0%} of compute")
        extra["holdout"] = _holdout(law, cols, y, holdout, delta=delta, grid=grid, method=method,
                                    scout=scout, keep=keep, polish=polish, prune=prune, fixed=fixed)
    return dataclasses.replace(res, seconds=time.perf_counter() - t0, **extra)


def _context(law: Law) -> dict[str, Any]:
    return law.built_on()   # e.g. {"supervised": params} for a distillation fit


def _bootstrap(obj: _Objective, law: Law, theta: np.ndarray, n: int, level: float, seed: int) -> dict[str, Any]:
    """Resample points with replacement n times; refit each from the point estimate, all resamples at once
    (a resample is the same points with multinomial counts as weights)."""
    if not 0 < level < 1:
        raise ValueError(f"ci level must be in (0, 1), got {level}")
    rng = np.random.default_rng(seed)
    m = len(obj.y)
    counts = np.stack([np.bincount(rng.integers(0, m, m), minlength=m) for _ in range(n)]).astype(float)
    ends, f, _ = obj.descend(np.repeat(theta[None, :], n, axis=0), weights=counts, max_iter=300, chunk=1024)
    ok = np.isfinite(f)
    samples = np.array([list(law.to_params(t).values()) for t in ends[ok]])
    q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
    lo, hi = np.percentile(samples, q, axis=0)
    ci = {name: (float(a), float(b)) for name, a, b in zip(law.param_names, lo, hi)}
    return {"ci": ci, "ci_level": level, "n_bootstrap": int(ok.sum()), "samples": samples}


def _holdout(law: Law, cols: dict[str, np.ndarray], y: np.ndarray, frac: float, **kw: Any) -> dict[str, Any]:
    """Fit on the lowest-compute (1 - frac) of the points; relative error of L on the rest."""
    if not 0 < frac < 1:
        raise ValueError(f"holdout fraction must be in (0, 1), got {frac}")
    c = law.compute(cols)
    order = np.argsort(c, kind="stable")
    n_test = max(1, int(round(frac * len(y))))
    train, test = order[:-n_test], order[-n_test:]
    if len(train) <= len(law.fit_names):
        raise ValueError(f"holdout {frac} leaves {len(train)} of {len(y)} points to fit the {law.name} law, which has "
                         f"{len(law.fit_names)} parameters; hold out less or run more cells")
    sub = fit(law, {**{k: v[train] for k, v in cols.items()}, "loss": y[train]}, **kw)
    pred = law.predict(sub.params, {k: v[test] for k, v in cols.items()})
    obs = y[test]
    rel = np.abs(pred - obs) / obs
    return {"fraction": frac, "n_fit": int(len(train)), "n_test": int(n_test),
            "compute_threshold": float(c[order[-n_test]]), "mean_rel_error": float(rel.mean()),
            "max_rel_error": float(rel.max()), "params": sub.params}


def bootstrap(law: Law, data: Mapping[str, Any], n: int = 4096, ci: float = 0.9, seed: int = 0, **kw: Any) -> FitResult:
    """`fit` with `bootstrap=n` resamples (90% percentile intervals by default, as Busbridge et al.)."""
    return fit(law, data, bootstrap=n, ci=ci, seed=seed, **kw)


def holdout(law: Law, data: Mapping[str, Any], frac: float = 0.2, **kw: Any) -> dict[str, Any]:
    """Fit on the low-compute points and report the relative error of the law on the top `frac` of compute."""
    res = fit(law, data, holdout=frac, **kw)
    assert res.holdout is not None
    return res.holdout
