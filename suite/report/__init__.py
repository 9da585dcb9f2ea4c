"""Reports: a sweep's results table -> fitted laws, figures, tables, index.md/html, summary.json.

    suite report analysis/quickstart.yaml [--out reports/quickstart] [--check]

Modules, lowest first (each imports only those before it): registries (FIGURES, TABLES), spec (the analysis
YAML), analysis (results and fits), tables, figures, then continual / vlm / questions (study-specific
tables, figures and verdicts), and build (the report), which this package imports so that every figure and
table is registered.
"""
from .build import build_report
from .registries import FIGURES, TABLES
from .spec import LawSpec, ReportSpec, load_spec

__all__ = ["build_report", "load_spec", "ReportSpec", "LawSpec", "FIGURES", "TABLES"]
