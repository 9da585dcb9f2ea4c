"""`suite bench fit`: the 4500-start Chinchilla grid on simulated points, our fitter vs a plain scipy loop.

    suite bench fit --json          # ~1 s for ours, about a minute for the loop, on 2 CPU cores

Points: 240 (N, D) pairs spread log-uniformly over Chinchilla's range (N 5.7e7-1.6e10, D 2.5e8-3.2e11),
losses from the Epoch 2024 coefficients times log-normal noise (1% by default). The same start grid
(Hoffmann/Epoch, 6*6*5*5*5) and the same summed Huber objective (delta 1e-3) go to both:
- ours: `suite.laws.fit` (batched descent of every start, the best refined with L-BFGS-B and analytic gradients);
- naive: one `scipy.optimize.minimize(method="L-BFGS-B")` per start with finite-difference gradients and
  default options, keeping the best.
Prints ours_seconds, naive_seconds, speed_ratio (naive / ours), both objectives and max_param_rel_diff.
Goal: speed_ratio >= 20 with max_param_rel_diff < 1e-3.
"""
from __future__ import annotations

import time
import warnings

import numpy as np
from scipy.optimize import minimize
from tqdm import tqdm

from ..laws import fit, get_law, published, start_grid
from ..laws.fitting import huber


def simulate(points: int = 240, noise: float = 0.01, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    N = np.exp(rng.uniform(np.log(5.7e7), np.log(1.6e10), points))
    D = np.exp(rng.uniform(np.log(2.5e8), np.log(3.2e11), points))
    loss = get_law("chinchilla").predict(published("epoch2024").params, N=N, D=D) * np.exp(rng.normal(0, noise, points))
    return {"N": N, "D": D, "loss": loss}


def naive_fit(data: dict[str, np.ndarray], delta: float = 1e-3, grid: dict | None = None,
              progress: bool = True) -> tuple[np.ndarray, float]:
    law = get_law("chinchilla")
    logn, logd, y = np.log(data["N"]), np.log(data["D"]), np.log(data["loss"])

    def objective(x):
        a, b, e, alpha, beta = x
        pred = np.logaddexp(np.logaddexp(a - alpha * logn, b - beta * logd), e)
        return float(huber(pred - y, delta).sum())

    best = None
    for x0 in tqdm(start_grid(law, grid), desc="naive per-start L-BFGS-B", disable=not progress, leave=False,
                   mininterval=1.0):
        r = minimize(objective, x0, method="L-BFGS-B", bounds=law.bounds)
        if best is None or r.fun < best.fun:
            best = r
    return best.x, float(best.fun)


def bench(points: int = 240, noise: float = 0.01, seed: int = 0, grid: dict | None = None,
          progress: bool = True) -> dict:
    """`grid` overrides start values per coordinate (tests use a small grid; the benchmark uses the paper's)."""
    law = get_law("chinchilla")
    data = simulate(points, noise, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        ours = fit(law, data, grid=grid)
        t_ours = time.perf_counter() - t0
        t0 = time.perf_counter()
        x_naive, f_naive = naive_fit(data, grid=grid, progress=progress)
        t_naive = time.perf_counter() - t0
    p_naive = law.to_params(x_naive)
    diff = {k: abs(ours.params[k] - p_naive[k]) / abs(p_naive[k]) for k in law.param_names}
    return {"points": points, "starts": ours.starts, "noise": noise, "ours_seconds": round(t_ours, 3),
            "naive_seconds": round(t_naive, 3), "speed_ratio": round(t_naive / t_ours, 2),
            "ours_objective": ours.objective, "naive_objective": f_naive,
            "max_param_rel_diff": max(diff.values()), "param_rel_diff": diff,
            "ours_params": ours.params, "naive_params": p_naive}
