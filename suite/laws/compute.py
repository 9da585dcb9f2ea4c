"""Compute-optimal allocation: supervised (closed form and numerical) and distillation (SLSQP, Busbridge §5).

    from suite.laws import compute_optimal_distillation, published
    compute_optimal_distillation(sup, dist, N_S=1e9, C=1e21, scenario="inference")

FLOPs of distillation (Busbridge et al. 2025, eq. 9):
    C = 3 F(N_S) D_S  +  F(N_T) (d_lgt D_S + d_pre 3 D_T)
      (student train)    (teacher logits) (teacher pretraining)
with F(N) the forward FLOPs per token (their eq. 69). The four accounting scenarios set (d_lgt, d_pre).
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np
from scipy.optimize import minimize, minimize_scalar

from ..registry import did_you_mean
from .forms import get_law

# Busbridge et al. §5, Table 2: (teacher-logit factor, teacher-pretraining factor)
SCENARIOS: dict[str, tuple[int, int]] = {
    "amortized": (0, 0),                # best case: the teacher's cost is spread over many students
    "inference": (1, 0),                # the teacher exists; pay for its logits
    "pretraining": (0, 1),              # train the teacher; its logits are stored and reused
    "pretraining+inference": (1, 1),    # train the teacher for this one student: the worst case
}
BOUNDS = (1e6, 1e17)  # Busbridge et al. App. D: N_T, D_S, D_T in [1M, 100P]


def flops_per_token(N: Any, n_ctx: int = 4096, n_vocab: int = 32768, rho_model: float = 128.0,
                    omega: float = 12.0) -> Any:
    """Forward FLOPs per token, F(N) = 2N (1 + s1 n_ctx N^-1/3 + s2 n_vocab N^-2/3) (Busbridge eq. 69),
    s1 = (rho omega^2)^-1/3, s2 = (rho / omega)^1/3; rho = d_model/n_layers = 128, omega = 12 for a gated MLP
    with rho_ffn = 8/3 and MHA. 2N underestimates it by 40% at 103M parameters and 7% at 12.6B."""
    N = np.asarray(N, dtype=float)
    s1 = (rho_model * omega ** 2) ** (-1 / 3)
    s2 = (rho_model / omega) ** (1 / 3)
    out = 2 * N * (1 + s1 * n_ctx * N ** (-1 / 3) + s2 * n_vocab * N ** (-2 / 3))
    return float(out) if out.ndim == 0 else out


def _split(params: Mapping[str, float]) -> tuple[float, float, float]:
    a = params["beta"] / (params["alpha"] + params["beta"])
    g = (params["alpha"] * params["A"] / (params["beta"] * params["B"])) ** (1 / (params["alpha"] + params["beta"]))
    return a, 1 - a, g


def chinchilla_optimal(params: Mapping[str, float], C: Any) -> tuple[Any, Any]:
    """(N_opt, D_opt) at compute C = 6ND: N = G (C/6)^a, D = (C/6)^b / G, G = (alpha A / (beta B))^(1/(alpha+beta)),
    a = beta/(alpha+beta) (Hoffmann et al. eq. 4). Exact for the gamma form too: x^gamma is monotone."""
    a, b, g = _split(params)
    c6 = np.asarray(C, dtype=float) / 6.0
    return g * c6 ** a, c6 ** b / g


def supervised_optimal(params: Mapping[str, float], C: float, law: str = "supervised",
                       flops: Callable[[float], float] | None = None) -> dict[str, float]:
    """Loss-minimizing (N, D) at training compute C. With `flops` = forward FLOPs per token F(N), training costs
    3 F(N) D and the optimum is found numerically over log N; without, C = 6ND and the closed form is used."""
    form = get_law(law)
    if flops is None:
        N, D = chinchilla_optimal(params, C)
    else:
        def loss(logn: float) -> float:
            n = np.exp(logn)
            return float(form.predict(params, N=n, D=C / (3 * flops(n))))

        lo, hi = np.log(BOUNDS[0]), np.log(C / (3 * 2.0 * BOUNDS[0]))
        if hi <= lo:
            raise ValueError(f"compute {C:.3g} is too small for the smallest model ({BOUNDS[0]:.0e} parameters)")
        r = minimize_scalar(loss, bounds=(lo, hi), method="bounded", options={"xatol": 1e-10})
        N = float(np.exp(r.x))
        D = C / (3 * flops(N))
    N, D = float(N), float(D)
    return {"N": N, "D": D, "tokens_per_param": D / N, "loss": float(form.predict(params, N=N, D=D)), "C": float(C)}


def optimal_teacher_loss(supervised: Mapping[str, float], distillation: Mapping[str, float], N_S: float,
                         D_S: float, L_T_range: tuple[float | None, float | None] | None = None,
                         bound_rtol: float = 1e-6) -> dict[str, Any]:
    """The teacher loss that minimizes the student loss at (N_S, D_S): the bottom of the capacity-gap U.
    D_S may be np.inf. The search range defaults to [E, 2 L~_S] of the supervised law (E x 1.0001); either end
    of `L_T_range` may be None for its default. The ends are candidates themselves (Brent's bounded method
    never evaluates them), so an optimum on a bound is returned exactly on it, and `at_search_bound` says so
    ("low" / "high" in `search_bound`) when L_T is within `bound_rtol` (relative) of an end."""
    law = get_law("distillation", supervised=supervised)
    sup = float(get_law("supervised").predict(supervised, N=N_S, D=D_S))
    lo, hi = L_T_range or (None, None)
    lo = supervised["E"] * 1.0001 if lo is None else float(lo)
    hi = 2 * sup if hi is None else float(hi)
    if not hi > lo:
        raise ValueError(f"teacher-loss search range [{lo:.6g}, {hi:.6g}] is empty")

    def f(lt: float) -> float:
        return float(law.predict(distillation, N_S=N_S, D_S=D_S, L_T=lt))

    # the U can be flat-bottomed; a coarse scan (one batched prediction) brackets the minimum before Brent's
    # method polishes it
    grid = np.linspace(lo, hi, 401)
    vals = law.predict(distillation, N_S=np.full_like(grid, N_S), D_S=np.full_like(grid, D_S), L_T=grid)
    i = int(np.argmin(vals))
    r = minimize_scalar(f, bounds=(grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]), method="bounded",
                        options={"xatol": 1e-9})
    lt, ls = float(r.x), float(r.fun)
    for end in (lo, hi):
        v = f(end)
        if v <= ls:
            lt, ls = end, v
    side = ("low" if abs(lt - lo) <= bound_rtol * abs(lo) else
            "high" if abs(lt - hi) <= bound_rtol * abs(hi) else None)
    return {"L_T": lt, "L_S": ls, "L_supervised": sup, "gain": sup - ls, "search_range": [lo, hi],
            "at_search_bound": side is not None, "search_bound": side}


def distillation_flops(N_S: float, D_S: float, N_T: float, D_T: float, scenario: str = "pretraining+inference",
                       flops: Callable[[float], float] = flops_per_token) -> dict[str, float]:
    """Busbridge eq. 9, split into its three parts, for one of SCENARIOS."""
    d_lgt, d_pre = _scenario(scenario)
    parts = {"student_train": 3 * flops(N_S) * D_S, "teacher_logits": d_lgt * flops(N_T) * D_S,
             "teacher_pretrain": d_pre * 3 * flops(N_T) * D_T}
    return {**parts, "total": sum(parts.values())}


def _scenario(name: str) -> tuple[int, int]:
    if name not in SCENARIOS:
        raise ValueError(f"unknown compute scenario {name!r}{did_you_mean(name, SCENARIOS)}; "
                         f"valid: {', '.join(SCENARIOS)}")
    return SCENARIOS[name]


def compute_optimal_distillation(supervised: Mapping[str, float], distillation: Mapping[str, float], N_S: float,
                                 C: float, scenario: str = "pretraining+inference",
                                 flops: Callable[[float], float] = flops_per_token,
                                 bounds: tuple[float, float] = BOUNDS) -> dict[str, Any]:
    """argmin over (D_S, N_T, D_T) of L_S(N_S, D_S, L(N_T, D_T)) subject to eq. 9 = C, with SLSQP in log10 space
    from several starts (Busbridge et al. §5). Also returns the supervised student at the same compute.
    `at_bound` names the variables (D_S, N_T, D_T) that ended on `bounds` (returned too): the unconstrained
    optimum may lie beyond them, and the loss is then what the bounds allow."""
    d_lgt, d_pre = _scenario(scenario)
    dist = get_law("distillation", supervised=supervised)
    sup = get_law("supervised")
    f_s = flops(N_S)
    lb, ub = np.log10(bounds[0]), np.log10(bounds[1])
    if 3 * f_s * bounds[0] >= C:
        raise ValueError(f"compute {C:.3g} FLOPs cannot train a {N_S:.3g}-parameter student on "
                         f"{bounds[0]:.0e} tokens (needs {3 * f_s * bounds[0]:.3g})")
    logC = np.log(C)

    def unpack(x):
        return 10.0 ** x[0], 10.0 ** x[1], 10.0 ** x[2]

    def loss(x):
        ds, nt, dt = unpack(x)
        lt = sup.predict(supervised, N=nt, D=dt)
        return float(dist.predict(distillation, N_S=N_S, D_S=ds, L_T=lt))

    def budget(x):  # log FLOPs - log C = 0; logs keep the constraint O(1) across 10 decades
        ds, nt, dt = unpack(x)
        return np.log(3 * f_s * ds + flops(nt) * (d_lgt * ds + d_pre * 3 * dt)) - logC

    best = None
    for ds_frac in (0.5, 0.9, 0.99):
        for nt0 in (N_S, 10 * N_S):
            ds0 = np.clip(ds_frac * C / (3 * f_s), *bounds)
            # spend what is left on the teacher: tokens if it costs any, else a well-trained teacher
            rest = C - 3 * f_s * ds0 - d_lgt * flops(nt0) * ds0
            dt0 = rest / (3 * flops(nt0)) if d_pre and rest > 0 else 20 * nt0
            x0 = np.clip(np.log10([ds0, nt0, dt0]), lb, ub)
            r = minimize(loss, x0, method="SLSQP", bounds=[(lb, ub)] * 3,
                         constraints=[{"type": "eq", "fun": budget}], options={"maxiter": 500, "ftol": 1e-12})
            if abs(budget(r.x)) < 1e-6 and (best is None or r.fun < best.fun):
                best = r
    if best is None:
        raise RuntimeError(f"SLSQP found no allocation meeting the budget C={C:.3g} for N_S={N_S:.3g} ({scenario})")
    ds, nt, dt = unpack(best.x)
    lt = float(sup.predict(supervised, N=nt, D=dt))
    fl = distillation_flops(N_S, ds, nt, dt, scenario, flops)
    d_sup = C / (3 * f_s)
    l_sup = float(sup.predict(supervised, N=N_S, D=d_sup))
    at = [n for n, v in zip(("D_S", "N_T", "D_T"), best.x) if min(v - lb, ub - v) < 1e-6]
    return {"scenario": scenario, "C": float(C), "N_S": float(N_S), "D_S": ds, "N_T": nt, "D_T": dt, "L_T": lt,
            "L_S": float(best.fun), "flops": fl,
            "fractions": {k: v / fl["total"] for k, v in fl.items() if k != "total"},
            "supervised": {"D": d_sup, "L": l_sup}, "distillation_gain": l_sup - float(best.fun),
            "at_bound": at, "bounds": [float(bounds[0]), float(bounds[1])]}
