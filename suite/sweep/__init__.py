"""Sweeps: grids of cells, executors over submitit (slurm | local | inline), state on disk, results table."""
from .api import Sweep, cancel, collect, format_status, open_sweep, plan, status, submit
from .executors import EXECUTORS
from .grid import Cell, Grid, Resources, expand, load_grid
from .runner import CellJob, run_cell

__all__ = ["Sweep", "open_sweep", "plan", "submit", "status", "format_status", "cancel", "collect", "EXECUTORS",
           "Cell", "Grid", "Resources", "expand", "load_grid", "CellJob", "run_cell"]
