"""Law-fit input: a CSV/parquet of points, or a sweep's results.parquet, checked before any fitting.

Columns: `N, D, loss` for the supervised laws and `N_S, D_S, L_T, loss` for the distillation law
(raw parameter and token counts, loss in nats/token). A sweep's results table (runs/NAME/results.parquet,
or the sweep directory) is read directly: the supervised laws take its `method == supervised` rows
(teachers included) as N = N_S, D = D_S; the distillation law takes its rows that have a teacher (L_T).
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..registry import did_you_mean
from .forms import Law

SWEEP_COLUMNS = ("N_S", "D_S", "method")


def is_sweep_results(df: pd.DataFrame) -> bool:
    return all(c in df.columns for c in SWEEP_COLUMNS)


def read_table(path: str | Path) -> pd.DataFrame:
    p = Path(path)
    if p.is_dir():
        if not (p / "results.parquet").exists():
            raise FileNotFoundError(f"{p} is a directory without results.parquet "
                                    f"(run `suite sweep collect {p}` first)")
        p = p / "results.parquet"
    if not p.exists():
        raise FileNotFoundError(f"no such data file: {p}")
    readers = {".parquet": pd.read_parquet, ".pq": pd.read_parquet,
               ".csv": pd.read_csv, ".txt": pd.read_csv, ".tsv": lambda f: pd.read_csv(f, sep="\t"),
               ".json": pd.read_json, ".jsonl": lambda f: pd.read_json(f, lines=True)}
    if p.suffix not in readers:
        raise ValueError(f"{p}: unknown data format {p.suffix!r}; use .csv, .tsv, .parquet, .json or .jsonl")
    try:
        return readers[p.suffix](p)
    except Exception as e:  # empty, truncated or not the format its name says: name the file
        raise ValueError(f"{p}: cannot be read as {p.suffix[1:]} ({type(e).__name__}: {str(e)[:200]})") from None


def supervised_rows(df: pd.DataFrame) -> pd.DataFrame:
    """A sweep's supervised runs (teachers included)."""
    return df[df["method"] == "supervised"] if "method" in df else df


def kd_rows(df: pd.DataFrame) -> pd.DataFrame:
    """A sweep's distilled students: runs with a teacher loss L_T that are not supervised."""
    if "L_T" not in df:
        return df.iloc[:0]
    return df[df["L_T"].notna() & (df["method"] != "supervised")] if "method" in df else df[df["L_T"].notna()]


def exact_irreducible(df: pd.DataFrame) -> float | None:
    """The data's exact irreducible loss when the runs carry it (synthetic language: column bayes_loss)."""
    if "bayes_loss" in df and df["bayes_loss"].notna().any():
        return float(df["bayes_loss"].dropna().iloc[0])
    return None


# Busbridge et al.'s eq. 8 describes pure distillation: forward KL on the full vocabulary, T = 1, lambda = 1
EQ8_SETTING = {"divergence": "forward_kl", "temperature": 1.0, "kd_weight": 1.0, "top_k": None}


def eq8_rows(rows: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """The KD runs in eq. 8's setting, and {reason: count} for those left out (another method or setting)."""
    keep = pd.Series(True, index=rows.index)
    out: dict[str, int] = {}
    if "method" in rows:
        other = rows["method"] != "kd"
        if other.any():
            out["method is not kd"] = int(other.sum())
        keep &= ~other
    for key, want in EQ8_SETTING.items():
        col = f"method_params.{key}"
        if col not in rows:
            continue
        vals = rows[col]
        bad = vals.notna() if want is None else ~(vals.isna() | (vals == want))
        bad &= keep
        if bad.any():
            out[f"{key} != {want}"] = int(bad.sum())
        keep &= ~bad
    return rows[keep], out


def points_for(law: Law, df: pd.DataFrame, all_kd: bool = False) -> pd.DataFrame:
    """The rows and columns of `df` that `law` fits, mapping a sweep's results table to law columns.
    Sweep rows whose loss is not finite (a diverged cell) are dropped with a warning naming the cells.
    The distillation law takes the KD runs in its own setting (EQ8_SETTING) unless `all_kd`, warns how many
    it left out and why, and leaves {reason: count} in the result's `attrs["left_out"]`."""
    if not is_sweep_results(df):
        return df
    if law.inputs == ("N", "D"):
        rows = supervised_rows(df).rename(columns={"N_S": "N", "D_S": "D"})
    elif law.inputs == ("N_S", "D_S", "L_T"):
        rows, left = kd_rows(df), {}
        if not all_kd:
            rows, left = eq8_rows(rows)
            if left:
                warnings.warn(f"{law.name} law: left out {sum(left.values())} distilled run(s) outside eq. 8's "
                              f"setting ({'; '.join(f'{k}: {n}' for k, n in left.items())}); pass --all-kd to "
                              f"fit them too", stacklevel=2)
    else:
        return df
    if "loss" in rows:
        bad = ~np.isfinite(pd.to_numeric(rows["loss"], errors="coerce"))
        if bad.any():
            ids = rows.loc[bad, "name" if "name" in rows else "cell_id" if "cell_id" in rows else "loss"]
            warnings.warn(f"{law.name} law: dropping {int(bad.sum())} run(s) without a finite loss: "
                          f"{', '.join(map(str, ids[:10]))}", stacklevel=2)
            rows = rows[~bad]
    rows = rows.reset_index(drop=True)
    if law.inputs == ("N_S", "D_S", "L_T") and left:
        rows.attrs["left_out"] = left
    return rows


def load_points(path: str | Path, law: Law) -> pd.DataFrame:
    return points_for(law, read_table(path))


def check_points(law: Law, data: Mapping[str, Any] | pd.DataFrame, loss: Any = None,
                 source: str = "data") -> dict[str, np.ndarray]:
    """Float arrays for the law's inputs and "loss", or a ValueError that says what is wrong and where."""
    need = (*law.inputs, "loss")
    have = list(data.columns) if isinstance(data, pd.DataFrame) else list(data.keys())
    cols: dict[str, Any] = {k: data[k] for k in law.inputs if k in have}
    if loss is not None:
        cols["loss"] = loss
    elif "loss" in have:
        cols["loss"] = data["loss"]
    missing = [k for k in need if k not in cols]
    if missing:
        hints = "".join(did_you_mean(m, have) for m in missing)
        raise ValueError(f"{source}: the {law.name} law needs columns {', '.join(need)}; missing "
                         f"{', '.join(missing)}{hints} (columns present: {', '.join(map(str, have)) or 'none'})")
    out: dict[str, np.ndarray] = {}
    for k in need:
        try:
            v = np.asarray(cols[k], dtype=float).reshape(-1)
        except (TypeError, ValueError):
            raise ValueError(f"{source}: column {k!r} is not numeric") from None
        bad = np.flatnonzero(~np.isfinite(v))
        if bad.size:
            raise ValueError(f"{source}: column {k!r} has {bad.size} NaN or infinite value(s), at row(s) "
                             f"{', '.join(map(str, bad[:10]))}{' ...' if bad.size > 10 else ''}")
        neg = np.flatnonzero(v <= 0)
        if neg.size:
            raise ValueError(f"{source}: column {k!r} must be positive (the law is fitted in log space); "
                             f"row {neg[0]} is {v[neg[0]]}" + (f" and {neg.size - 1} more" if neg.size > 1 else ""))
        out[k] = v
    n = {len(v) for v in out.values()}
    if len(n) != 1:
        raise ValueError(f"{source}: columns have different lengths {sorted(n)}")
    p = len(law.fit_names)
    if len(out["loss"]) <= p:
        raise ValueError(f"{source}: the {law.name} law has {p} parameters and needs at least {p + 1} points; "
                         f"got {len(out['loss'])}")
    return out
