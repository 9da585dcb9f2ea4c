"""Scaling laws: forms, robust fitting, uncertainty and compute-optimal allocation.

    suite fit --law supervised --data runs/quickstart --bootstrap 1000 --holdout 0.2
    suite fit --approach isoflop --data runs/scaling_lab     # Hoffmann et al. approach 2: N_opt ∝ C^a

    from suite import laws
    law = laws.get_law("supervised")
    res = laws.fit(law, df)                       # df: columns N, D, loss
    law.predict(res.params, N=1e9, D=2e10)
    laws.compute_optimal_distillation(sup, dist, N_S=1e9, C=1e21, scenario="inference")
    laws.isoflop(df).a                            # approach 2 (laws.envelope: approach 1)

Laws register in `LAWS` (chinchilla, supervised, distillation); published coefficient sets in `PUBLISHED`.
"""
from .approaches import (APPROACHES, CONVENTIONS, DEFAULT_CONVENTION, ApproachResult, Convention, compute_levels,
                         conventions_sentence, envelope, exponent_summary, fit_parabola, get_convention, isoflop,
                         parametric_exponents, parametric_measured)
from .compute import (SCENARIOS, chinchilla_optimal, compute_optimal_distillation, distillation_flops,
                      flops_per_token, optimal_teacher_loss, supervised_optimal)
from .data import (MEASURED_FLOPS, N_PARAMS, approach_points, check_points, exact_irreducible, kd_rows, load_points,
                   points_for, read_table, supervised_rows, total_params)
from .fitting import FitResult, bootstrap, fit, holdout, start_grid
from .forms import LAWS, Law, get_law
from .published import PUBLISHED, PublishedFit, published

__all__ = ["APPROACHES", "ApproachResult", "compute_levels", "envelope", "fit_parabola", "isoflop",
           "parametric_exponents", "CONVENTIONS", "DEFAULT_CONVENTION", "Convention", "get_convention",
           "parametric_measured", "exponent_summary", "conventions_sentence", "MEASURED_FLOPS", "N_PARAMS",
           "approach_points", "total_params", "LAWS", "Law", "get_law", "PUBLISHED", "PublishedFit", "published",
           "fit", "bootstrap", "holdout",
           "start_grid", "FitResult", "check_points", "exact_irreducible", "kd_rows", "supervised_rows",
           "load_points", "points_for", "read_table", "SCENARIOS",
           "chinchilla_optimal", "supervised_optimal", "compute_optimal_distillation", "distillation_flops",
           "flops_per_token", "optimal_teacher_loss"]
