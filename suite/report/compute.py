"""The grid's training compute both ways, where cells shared a teacher-output cache (train/teacher_cache.py):
as run (each teacher's forward over a token stream paid once, by the cell that wrote the cache) and as if every
KD cell had paid its teacher's forward itself. Says nothing for grids without a cache (their two counts agree).
"""
from __future__ import annotations

import pandas as pd

from .registries import HEADLINES, Headline

PAID, PER_CELL = "flops.teacher_logits", "flops.teacher_logits_per_cell"


def compute_lines(df: pd.DataFrame, nums: dict) -> list[str]:
    if PER_CELL not in df or df[PER_CELL].isna().all() or "flops.total" not in df:
        return []
    total = float(df["flops.total"].sum())
    cached = df[PER_CELL].notna()
    extra = float((df.loc[cached, PER_CELL] - df.loc[cached, PAID]).sum())
    modes = df.get("teacher_cache.mode", pd.Series(dtype=object))[cached].value_counts().to_dict()
    nums["compute"] = {"flops_as_run": total, "flops_teacher_per_cell": total + extra,
                       "cached_cells": int(cached.sum()), "cache_modes": {str(k): int(v) for k, v in modes.items()}}
    return [f"Training compute: {total:.3g} FLOPs as run, with each teacher's outputs paid once per token stream "
            f"({int(cached.sum())} cells on a teacher-output cache); {total + extra:.3g} FLOPs if every cell had run "
            f"its teacher's forward itself ({(total + extra) / total:.2f}x)."]


HEADLINES.register("compute", Headline(40, lambda df, fits, nums: compute_lines(df, nums)))
