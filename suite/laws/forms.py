"""Scaling-law forms, written in log-sum-exp form with analytic Jacobians.

    from suite.laws import get_law
    law = get_law("supervised")
    law.predict({"E": 1.22, "A": 3355, ...}, N=1.82e9, D=36.4e9)        # 2.2509

A law is fitted in log space: it maps a parameter vector theta (its `fit_names`, e.g. log A rather than A,
so that every coordinate has a similar scale) and prepared inputs to log L, and gives d log L / d theta for
every start and every point at once: theta is (S, p), the inputs are (n,), log L is (S, n) and its
Jacobian (p, S, n), parameter-major so the fitter's products run over contiguous (S, n) blocks. A new law
registers under a name and needs only `log_predict`; the Jacobian falls back to central differences.

A law also says what the report and `suite fit` need to know about it, so that neither asks for it by name:
`needs` (the laws whose fitted parameters it is built on: the distillation law needs the supervised law),
`compute_optimal` (approach 3's closed form applies), `compare_with` (the published set a report puts beside
a fit), `summary` (the report's headline sentences for a fit) and `derived` (what a fit implies beyond its
parameters, e.g. the distillation law's effective break).
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..registry import Registry

LAWS: Registry[type["Law"]] = Registry("scaling law")


def _lse_parts(terms) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    m = terms[0]
    for t in terms[1:]:
        m = np.maximum(m, t)
    m = np.where(np.isfinite(m), m, 0.0)
    # Differences below -600 are clipped before exp: exp(-600) ~ 1e-261 is nothing next to 1, and it keeps
    # numpy off the denormal path, 10-30x slower (the start grids put terms thousands of nats apart).
    es = [np.exp(np.maximum(t - m, -600.0)) for t in terms]
    tot = es[0]
    for e in es[1:]:
        tot = tot + e
    return m, es, tot


def _softmax(*terms: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """log(sum exp(terms)) and the softmax weights exp(term - lse), elementwise over broadcast terms."""
    m, es, tot = _lse_parts(terms)
    return m + np.log(tot), [e / tot for e in es]


def _lse(*terms: np.ndarray) -> np.ndarray:
    m, _, tot = _lse_parts(terms)
    return m + np.log(tot)


def _col(theta: np.ndarray, k: int) -> np.ndarray:
    return theta[:, k, None]  # (S, 1): broadcasts against (n,) inputs


class Law:
    """One scaling-law form. Subclasses set the class attributes and `log_predict` (and `jacobian` for speed)."""

    name: str = ""
    inputs: tuple[str, ...] = ()            # data columns, in the names of the papers
    fit_names: tuple[str, ...] = ()         # the fitted coordinates (logs of scale parameters)
    param_names: tuple[str, ...] = ()       # reported parameters, as named in the papers
    log_params: frozenset[str] = frozenset()  # reported names whose fitted coordinate is log_<name>
    bounds: tuple[tuple[float, float], ...] = ()
    grid: Mapping[str, tuple[float, ...]] = {}  # default multi-start grid, per fit name (the paper's)
    delta: float = 1e-3                     # default Huber delta on log L
    citation: str = ""
    # laws whose fitted parameters this one is built on: each is a keyword of the constructor and an attribute
    # of the instance, both named after the law (Distillation(supervised=params).supervised)
    needs: tuple[str, ...] = ()
    compute_optimal: bool = False           # a law of N and D with approach 3's closed form a = beta/(alpha+beta)
    compare_with: str | None = None         # the published set a report puts beside a fit (a key of PUBLISHED)
    headline_params: tuple[tuple[str, str], ...] = ()   # (parameter, label) as `summary` states them; default all

    def __init__(self, **context: Any):
        if context:
            raise TypeError(f"law {self.name!r} takes no context, got {sorted(context)}")

    def built_on(self) -> dict[str, dict[str, float]]:
        """{law: parameters} of each law in `needs` this instance was made with (get_law(name, **built_on())
        makes it again); a fit records it in its context."""
        return {dep: dict(getattr(self, dep)) for dep in self.needs}

    # ---- what a fit says ---------------------------------------------------------------------------
    def summary(self, res: Any, name: str, exact_E: float | None = None) -> tuple[list[str], dict[str, Any]]:
        """The report's headline sentences for the fit `res` (a FitResult) named `name`, and the numbers behind
        them beyond its parameters (they join summary.json's headline["fit.NAME"]). `exact_E`: the data's
        exact irreducible loss, when the runs carry it. By default one sentence of the coefficients."""
        return [self._coefficients(res, name)], {}

    def derived(self, res: Any) -> dict[str, tuple[Any, str]]:
        """What a fit implies beyond its parameters: {key: (JSON value, one line of text)}; `suite fit` puts
        each value in its JSON under key and prints its line. Empty by default."""
        return {}

    def _coefficients(self, res: Any, name: str) -> str:
        """'Fitted LAW law 'NAME' (n points; 90% bootstrap intervals): A = 1.2 [1.1, 1.3], ...'."""
        p, ci, held = res.params, res.ci or {}, res.context.get("fixed") or {}

        def coef(k: str, label: str) -> str:
            lo_hi = ci.get(k)
            band = (f" [{lo_hi[0]:.3g}, {lo_hi[1]:.3g}]" if lo_hi and lo_hi[0] != lo_hi[1] and k not in held
                    else " (held)" if k in held else "")
            return f"{label} = {p[k]:.3g}{band}"

        pairs = self.headline_params or tuple((k, k) for k in self.param_names)
        return (f"Fitted {self.name} law '{name}' ({res.n_points} points{_n_convention(res)}"
                + (f"; {res.ci_level:.0%} bootstrap intervals" if ci else "") + "): "
                + ", ".join(coef(k, lab) for k, lab in pairs if k in p) + ".")

    # ---- parameter conversion ---------------------------------------------------------------------
    def to_params(self, theta: np.ndarray) -> dict[str, float]:
        t = dict(zip(self.fit_names, np.asarray(theta, dtype=float).tolist()))
        return {n: float(np.exp(t[f"log_{n}"])) if n in self.log_params else float(t[n]) for n in self.param_names}

    def from_params(self, params: Mapping[str, float]) -> np.ndarray:
        missing = [n for n in self.param_names if n not in params]
        if missing:
            raise ValueError(f"{self.name} law needs parameters {list(self.param_names)}; missing {missing}")
        vals = {f"log_{n}" if n in self.log_params else n:
                float(np.log(params[n])) if n in self.log_params else float(params[n]) for n in self.param_names}
        return np.array([vals[f] for f in self.fit_names])

    # ---- evaluation --------------------------------------------------------------------------------
    def prepare(self, data: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """The inputs as float arrays plus whatever the form needs precomputed (logs), once per data set."""
        z = {k: np.asarray(data[k], dtype=float).reshape(-1) for k in self.inputs}
        for k in self.inputs:
            with np.errstate(divide="ignore"):
                z[f"log_{k}"] = np.log(z[k])
        return z

    def log_predict(self, theta: np.ndarray, z: Mapping[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def jacobian(self, theta: np.ndarray, z: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(log L, d log L / d theta) with shapes (S, n) and (p, S, n); central differences by default."""
        theta = np.atleast_2d(theta)
        lp = self.log_predict(theta, z)
        cols = []
        for k in range(theta.shape[1]):
            h = 1e-6 * max(1.0, float(np.abs(theta[:, k]).max()))
            up, dn = theta.copy(), theta.copy()
            up[:, k] += h
            dn[:, k] -= h
            cols.append((self.log_predict(up, z) - self.log_predict(dn, z)) / (2 * h))
        return lp, np.stack(cols)

    def predict(self, params: Mapping[str, float], data: Mapping[str, Any] | None = None, **inputs: Any) -> np.ndarray:
        """L at the given inputs (arrays broadcast; np.inf allowed for D). Returns a float for scalar inputs."""
        data = {**({} if data is None else {k: data[k] for k in self.inputs if k in data}), **inputs}
        missing = [k for k in self.inputs if k not in data]
        if missing:
            raise ValueError(f"{self.name} law needs inputs {list(self.inputs)}; missing {missing}")
        arrays = np.broadcast_arrays(*[np.asarray(data[k], dtype=float) for k in self.inputs])
        shape = arrays[0].shape
        z = self.prepare(dict(zip(self.inputs, arrays)))
        out = np.exp(self.log_predict(self.from_params(params)[None, :], z)[0]).reshape(shape)
        return float(out) if out.ndim == 0 else out

    def compute(self, data: Mapping[str, Any]) -> np.ndarray:
        """Training compute of each point (6·N·D, from the first two inputs; a one-input law orders by its
        input), used to order points for held-out extrapolation."""
        out = 6.0 * np.asarray(data[self.inputs[0]], dtype=float)
        return out * np.asarray(data[self.inputs[1]], dtype=float) if len(self.inputs) > 1 else out


def _n_convention(res: Any) -> str:
    """', N = total parameters' for a fit that counts embeddings and the head (the default, non-embedding N, is
    what the papers' laws count and goes unsaid)."""
    return ", N = total parameters" if res.context.get("n_params") == "total" else ""


class _SupervisedForm(Law):
    """A law of supervised training, L(N, D) with an irreducible E: approach 3 applies, and its headline states
    E against the exact one and the effective exponents."""

    inputs = ("N", "D")
    compute_optimal = True

    def summary(self, res, name, exact_E=None):
        p, held, nums = res.params, res.context.get("fixed") or {}, {}
        s = (f"Fitted {self.name} law '{name}' ({res.n_points} points{_n_convention(res)}): "
             + ", ".join(f"{k} = {p[k]:.4g}" + (" (held)" if k in held else "")
                         for k in ("E", "alpha", "beta", "gamma") if k in p))
        if res.ci and "E" not in held:
            lo, hi = res.ci["E"]
            s += f"; E's {res.ci_level:.0%} bootstrap interval [{lo:.4f}, {hi:.4f}]"
        if exact_E is not None and "E" not in held:
            s += f"; the exact E is {exact_E:.4f}, so the fit's E is off by {(p['E'] - exact_E) / exact_E:+.1%}"
            nums["E_error_vs_exact"] = (p["E"] - exact_E) / exact_E
        if "alpha" in p and "gamma" in p:
            s += (f". Effective exponents: loss - E ~ N^-{p['alpha'] * p['gamma']:.3f} at infinite data and "
                  f"~ D^-{p['beta'] * p['gamma']:.3f} at infinite size")
        return [s + "."], nums


@LAWS.register("chinchilla")
class Chinchilla(_SupervisedForm):
    """L(N, D) = E + A/N^alpha + B/D^beta (Hoffmann et al. 2022, approach 3)."""

    name = "chinchilla"
    compare_with = "epoch2024"
    fit_names = ("log_A", "log_B", "log_E", "alpha", "beta")
    param_names = ("E", "A", "B", "alpha", "beta")
    log_params = frozenset({"E", "A", "B"})
    bounds = ((-20.0, 60.0), (-20.0, 60.0), (-10.0, 5.0), (0.0, 5.0), (0.0, 5.0))
    # Hoffmann et al. App. D.2 as replicated by Besiroglu et al. 2024: 6*6*5*5*5 = 4500 starts
    grid = {"log_A": (0, 5, 10, 15, 20, 25), "log_B": (0, 5, 10, 15, 20, 25), "log_E": (-1, -0.5, 0, 0.5, 1),
            "alpha": (0, 0.5, 1, 1.5, 2), "beta": (0, 0.5, 1, 1.5, 2)}
    delta = 1e-3
    citation = "Hoffmann et al. 2022 (arXiv 2203.15556), eq. 2 and App. D.2"

    def _terms(self, theta, z):
        t1 = _col(theta, 0) - _col(theta, 3) * z["log_N"]
        t2 = _col(theta, 1) - _col(theta, 4) * z["log_D"]
        t3 = np.broadcast_to(_col(theta, 2), t1.shape)
        return t1, t2, t3

    def log_predict(self, theta, z):
        return _lse(*self._terms(np.atleast_2d(theta), z))

    def jacobian(self, theta, z):
        theta = np.atleast_2d(theta)
        lp, (s1, s2, s3) = _softmax(*self._terms(theta, z))
        return lp, np.stack([s1, s2, s3, -s1 * z["log_N"], -s2 * z["log_D"]])


@LAWS.register("supervised")
class Supervised(_SupervisedForm):
    """L(N, D) = E + (A/N^alpha + B/D^beta)^gamma (Busbridge et al. 2025, eq. 1)."""

    name = "supervised"
    compare_with = "busbridge2025-supervised"
    fit_names = ("log_A", "log_B", "log_E", "alpha", "beta", "gamma")
    param_names = ("E", "A", "B", "alpha", "beta", "gamma")
    log_params = frozenset({"E", "A", "B"})
    bounds = ((-20.0, 60.0), (-20.0, 60.0), (-10.0, 5.0), (0.0, 5.0), (0.0, 5.0), (0.0, 5.0))
    # Busbridge et al. App. F.1: 5*5*6*4*4*4 = 9600 starts
    grid = {"log_A": (0, 5, 10, 15, 20), "log_B": (0, 5, 10, 15, 20), "log_E": (-1, -0.5, 0, 0.5, 1, 1.5),
            "alpha": (0, 0.5, 1, 1.5), "beta": (0, 0.5, 1, 1.5), "gamma": (0, 0.5, 1, 1.5)}
    delta = 1e-4
    citation = "Busbridge et al. 2025 (arXiv 2502.08606), eq. 1 and App. F.1"

    def _parts(self, theta, z):
        t1 = _col(theta, 0) - _col(theta, 3) * z["log_N"]
        t2 = _col(theta, 1) - _col(theta, 4) * z["log_D"]
        u, (p1, p2) = _softmax(t1, t2)                 # log(A/N^alpha + B/D^beta)
        g = _col(theta, 5)
        lp, (q1, q2) = _softmax(np.broadcast_to(_col(theta, 2), u.shape), g * u)
        return lp, u, p1, p2, q1, q2, g

    def log_predict(self, theta, z):
        theta = np.atleast_2d(theta)
        u = _lse(_col(theta, 0) - _col(theta, 3) * z["log_N"], _col(theta, 1) - _col(theta, 4) * z["log_D"])
        return _lse(np.broadcast_to(_col(theta, 2), u.shape), _col(theta, 5) * u)

    def jacobian(self, theta, z):
        lp, u, p1, p2, q1, q2, g = self._parts(np.atleast_2d(theta), z)
        return lp, np.stack([q2 * g * p1, q2 * g * p2, q1, -q2 * g * p1 * z["log_N"], -q2 * g * p2 * z["log_D"],
                             q2 * u])


@LAWS.register("distillation")
class Distillation(Law):
    """L_S(N_S, D_S, L_T) = L_T + L_T^-c0 (1 + (L_T/(L~_S d1))^(1/f1))^(-c1 f1) (A'/N_S^alpha' + B'/D_S^beta')^gamma'
    (Busbridge et al. 2025, eq. 8), with L~_S = L(N_S, D_S) from a fitted supervised law."""

    name = "distillation"
    inputs = ("N_S", "D_S", "L_T")
    needs = ("supervised",)                 # L~_S: the student's supervised law, fitted first
    compare_with = "busbridge2025-distillation"
    headline_params = (("A", "A'"), ("B", "B'"), ("alpha", "alpha'"), ("beta", "beta'"), ("gamma", "gamma'"),
                       ("c0", "c0"), ("c1", "c1"), ("d1", "d1"), ("f1", "f1"))
    fit_names = ("log_A", "log_B", "alpha", "beta", "gamma", "c0", "c1", "f1", "log_d1")
    param_names = ("A", "B", "alpha", "beta", "gamma", "c0", "c1", "f1", "d1")
    log_params = frozenset({"A", "B", "d1"})
    bounds = ((-20.0, 60.0), (-20.0, 60.0), (0.0, 5.0), (0.0, 5.0), (0.0, 5.0), (0.0, 50.0), (0.0, 1e4),
              (1e-3, 10.0), (-5.0, 5.0))
    # Busbridge et al. App. F.2: 5*5*3*3*3*4*4*4*5 = 216,000 starts (the spec's "432,000"
    # is an arithmetic slip; f1 = 0 is clipped to its bound 1e-3)
    grid = {"log_A": (0, 5, 10, 15, 20), "log_B": (0, 5, 10, 15, 20), "alpha": (0, 0.5, 1), "beta": (0, 0.5, 1),
            "gamma": (0, 0.5, 1), "c0": (0, 0.5, 1, 1.5), "c1": (0, 0.5, 1, 1.5), "f1": (0, 0.5, 1, 1.5),
            "log_d1": (-1, -0.5, 0, 0.5, 1)}
    delta = 1e-4
    citation = "Busbridge et al. 2025 (arXiv 2502.08606), eq. 8 and App. F.2"

    def __init__(self, supervised: Mapping[str, float] | None = None, supervised_law: str = "supervised"):
        """`supervised`: parameters of the student's supervised law (a fit's params, or a published set)."""
        if supervised is None:
            raise ValueError("the distillation law needs the student's supervised law: pass supervised=params "
                             "(a fitted supervised law's parameters, or published('busbridge2025-supervised'))")
        self.supervised_law = LAWS.get(supervised_law)()
        self.supervised = dict(supervised)
        self._sup_theta = self.supervised_law.from_params(self.supervised)

    def derived(self, res):
        """The effective break (the switch's location is identified even where c1 alone is not)."""
        eb = effective_break_summary(res.params, res.samples, self.param_names, res.ci_level)
        return {"effective_break": (eb, f"effective break b = d1 (c1 f1)^-f1 = {eb['value']:.4f}"
                                        + (f"  [{eb['ci'][0]:.4f}, {eb['ci'][1]:.4f}]" if "ci" in eb else ""))}

    def summary(self, res, name, exact_E=None):
        p = res.params
        eb = self.derived(res)["effective_break"][0]
        s = (f"Its teacher-to-student switch: effective break b = d1 (c1 f1)^-f1 = {eb['value']:.4f} (a student "
             f"matches its teacher once L_T > b x its supervised loss), width 1/f1 = {1 / p['f1']:.1f}")
        if "ci" in eb:
            s += f"; b's {res.ci_level:.0%} bootstrap interval [{eb['ci'][0]:.4f}, {eb['ci'][1]:.4f}]"
        if "c1" in res.at_bound:
            s += (". c1 itself is not identified: below the break c1 and d1 act only through b, and past it the "
                  "bracket is ~0 for any c1 f1 >> 1, so the objective is flat in c1 along b (Busbridge et al.'s "
                  "own c1 = 522.6 has the degenerate interval (522.6, 522.6))")
        return [self._coefficients(res, name), s + "."], {"effective_break": eb}

    def prepare(self, data):
        z = super().prepare(data)
        sup = self.supervised_law.prepare({"N": z["N_S"], "D": z["D_S"]})
        z["log_L_sup"] = self.supervised_law.log_predict(self._sup_theta[None, :], sup)[0]
        return z

    def _parts(self, theta, z):
        lt = z["log_L_T"]
        t1 = _col(theta, 0) - _col(theta, 2) * z["log_N_S"]
        t2 = _col(theta, 1) - _col(theta, 3) * z["log_D_S"]
        u, (p1, p2) = _softmax(t1, t2)
        g, c0, c1, f1, ld1 = (_col(theta, k) for k in range(4, 9))
        v = (lt - z["log_L_sup"] - ld1) / f1          # log of (L_T / (L~_S d1))^(1/f1)
        s, (_, sig) = _softmax(np.zeros_like(v), v)   # log(1 + x^(1/f1)) and its slope in v
        k = -c0 * lt - c1 * f1 * s + g * u
        lp, (_, q) = _softmax(np.broadcast_to(lt, k.shape), k)
        return lp, q, u, p1, p2, g, c1, f1, v, s, sig, lt

    def log_predict(self, theta, z):
        theta = np.atleast_2d(theta)
        lt = z["log_L_T"]
        u = _lse(_col(theta, 0) - _col(theta, 2) * z["log_N_S"], _col(theta, 1) - _col(theta, 3) * z["log_D_S"])
        g, c0, c1, f1, ld1 = (_col(theta, k) for k in range(4, 9))
        v = (lt - z["log_L_sup"] - ld1) / f1
        k = -c0 * lt - c1 * f1 * _lse(np.zeros_like(v), v) + g * u
        return _lse(np.broadcast_to(lt, k.shape), k)

    def jacobian(self, theta, z):
        lp, q, u, p1, p2, g, c1, f1, v, s, sig, lt = self._parts(np.atleast_2d(theta), z)
        return lp, np.stack([q * g * p1, q * g * p2, -q * g * p1 * z["log_N_S"], -q * g * p2 * z["log_D_S"], q * u,
                             -q * lt, -q * f1 * s, q * c1 * (sig * v - s), q * c1 * sig])


def get_law(name: str, **context: Any) -> Law:
    """An instance of the registered law `name`; the distillation law takes `supervised=params`."""
    return LAWS.get(name)(**context)


def effective_break(c1, f1, d1):
    """b = d1 (c1 f1)^-f1: where eq. 8's teacher-to-student switch sits. With x = L_T / (L~_S d1) below 1 the
    bracket (1 + x^(1/f1))^(-c1 f1) is exp(-c1 f1 x^(1/f1)) to first order, = exp(-(L_T / (L~_S b))^(1/f1)):
    c1 and d1 enter only through b until x passes 1, where the bracket is already ~0 once c1 f1 >> 1. So when
    the break is sharp, b and f1 are what the runs identify and c1 alone is not."""
    return d1 * (c1 * f1) ** (-f1)


def effective_break_summary(params, samples=None, param_names=(), level: float | None = None) -> dict:
    """{"value": b, "ci": [lo, hi] from the bootstrap draws when there are some} for a distillation fit."""
    out = {"value": float(effective_break(params["c1"], params["f1"], params["d1"]))}
    if samples is not None and len(samples):
        cols = {k: i for i, k in enumerate(param_names)}
        draws = effective_break(samples[:, cols["c1"]], samples[:, cols["f1"]], samples[:, cols["d1"]])
        q = (100 - 100 * (level or 0.9)) / 2
        out["ci"] = [float(v) for v in np.percentile(draws, [q, 100 - q])]
    return out
