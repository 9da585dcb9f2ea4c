"""Reports: a sweep's results table -> fitted laws, figures, tables, index.md/html, summary.json.

    suite report analysis/quickstart.yaml [--out reports/quickstart] [--check]
"""
from . import continual, vlm  # noqa: F401  (register the continual-learning and VLM figures and tables)
from .build import build_report
from .figures import FIGURES
from .spec import LawSpec, ReportSpec, load_spec
from .tables import TABLES

__all__ = ["build_report", "load_spec", "ReportSpec", "LawSpec", "FIGURES", "TABLES"]
