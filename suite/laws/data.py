"""Law-fit input: a CSV/parquet of points, or a sweep's results.parquet, checked before any fitting.

Columns: `N, D, loss` for the supervised laws and `N_S, D_S, L_T, loss` for the distillation law
(raw parameter and token counts, loss in nats/token). A sweep's results table (runs/NAME/results.parquet,
or the sweep directory) is read directly: the supervised laws take its `method == supervised` rows
(teachers included) as N = N_S, D = D_S; the distillation law takes its rows that have a teacher (L_T).

Which N: `N_S` counts non-embedding parameters (Kaplan; Busbridge et al.), the default. `n_params="total"`
counts every parameter instead (Hoffmann et al.'s convention): the results column `N_S_total`, which the
training loop records, or, for results that predate it, `total_params(df)` from the shape columns.
"""
from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..registry import did_you_mean
from .forms import Law, get_law

SWEEP_COLUMNS = ("N_S", "D_S", "method")
N_PARAMS = ("non_embedding", "total")   # which parameters N counts (see the module docstring)
# tiny names (suite.models.tiny): llama/qwen2 shapes with RoPE (no learned positions) and untied embeddings;
# tests/laws/test_total_params.py checks the derivation below against every built family
_TINY_NAME = re.compile(r"(?:tiny|qwen2)-[0-9.]+[kM]")
_ROPE_FAMILIES = ("llama", "qwen2")


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


def total_params(df: pd.DataFrame, role: str = "S") -> pd.Series:
    """Total parameters (embeddings and LM head included) of each run's student (`role="S"`) or teacher ("T").

    The recorded column `N_S_total` / `N_T_total` where a row has it. Otherwise, for a tiny model (a `tiny-*`
    or `qwen2-*` name of suite.models.tiny: RoPE, so no position embeddings), N + V·d for the input embedding
    plus V·d for an untied LM head (`model_shape.tie_embeddings`, where recorded, says whether they are
    tied; the tiny configs are untied), from `model_shape.vocab_size` and `model_shape.d_model`. A teacher
    without a recorded count takes its own cell's (column `teacher_id`). NaN where neither is known."""
    if role not in ("S", "T"):
        raise ValueError(f"role must be 'S' (student) or 'T' (teacher), got {role!r}")
    stored = f"N_{role}_total"
    out = (pd.to_numeric(df[stored], errors="coerce").astype(float) if stored in df
           else pd.Series(np.nan, index=df.index, dtype=float))
    if role == "T":
        if "teacher_id" in df and "cell_id" in df:
            own = total_params(df, "S")
            by_id = dict(zip(df["cell_id"], own))
            out = out.fillna(df["teacher_id"].map(by_id).astype(float))
        return out
    need = out.isna()
    cols = ("N_S", "student", "model_shape.family", "model_shape.vocab_size", "model_shape.d_model")
    if not need.any() or not all(c in df for c in cols):
        return out
    tiny = (df["student"].astype(str).map(lambda s: bool(_TINY_NAME.fullmatch(s)))
            & df["model_shape.family"].isin(_ROPE_FAMILIES))
    tied = (df["model_shape.tie_embeddings"].fillna(False).astype(bool) if "model_shape.tie_embeddings" in df
            else pd.Series(False, index=df.index))
    emb = pd.to_numeric(df["model_shape.vocab_size"], errors="coerce") * pd.to_numeric(df["model_shape.d_model"],
                                                                                       errors="coerce")
    derived = pd.to_numeric(df["N_S"], errors="coerce") + emb * np.where(tied, 1, 2)
    return out.where(~(need & tiny), derived)


def _with_n(rows: pd.DataFrame, n_params: str, column: str, law: Law) -> pd.DataFrame:
    """`rows` with their N `column` (N_S, or N once renamed) replaced by the total count where n_params is
    "total", the non-embedding count kept as `N_S_non_embedding`; an error names the runs without one."""
    if n_params not in N_PARAMS:
        raise ValueError(f"n_params: {n_params!r}{did_you_mean(n_params, N_PARAMS)}; valid: {', '.join(N_PARAMS)}")
    if n_params == "non_embedding":
        return rows
    tot = total_params(rows.rename(columns={column: "N_S"}) if column != "N_S" else rows, "S")
    bad = tot.isna()
    if bad.any():
        ids = rows.loc[bad, "name" if "name" in rows else "cell_id" if "cell_id" in rows else column]
        raise ValueError(f"{law.name} law with total parameters: {int(bad.sum())} run(s) have no total parameter "
                         f"count (no N_S_total recorded, and not a tiny model whose shape columns give it): "
                         f"{', '.join(map(str, ids[:10]))}")
    return rows.assign(**{"N_S_non_embedding": rows[column], column: tot})


def points_for(law: Law, df: pd.DataFrame, all_kd: bool = False, n_params: str = "non_embedding") -> pd.DataFrame:
    """The rows and columns of `df` that `law` fits, mapping a sweep's results table to law columns.
    Sweep rows whose loss is not finite (a diverged cell) are dropped with a warning naming the cells.
    The distillation law takes the KD runs in its own setting (EQ8_SETTING) unless `all_kd`, warns how many
    it left out and why, and leaves {reason: count} in the result's `attrs["left_out"]`.
    `n_params="total"` makes N (N_S) count every parameter (`total_params`); the non-embedding count stays
    beside it as `N_S_non_embedding`. Plain points (not a sweep's table) are returned as they are."""
    if n_params not in N_PARAMS:
        raise ValueError(f"n_params: {n_params!r}{did_you_mean(n_params, N_PARAMS)}; valid: {', '.join(N_PARAMS)}")
    if not is_sweep_results(df):
        return df
    if set(law.inputs) <= {"N", "D"}:   # a law of supervised training (chinchilla, supervised, a user's L(N))
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
    rows = _with_n(rows, n_params, law.inputs[0], law).reset_index(drop=True)
    if law.inputs == ("N_S", "D_S", "L_T") and left:
        rows.attrs["left_out"] = left
    return rows


def load_points(path: str | Path, law: Law, n_params: str = "non_embedding") -> pd.DataFrame:
    return points_for(law, read_table(path), n_params=n_params)


# the loop's own count of the student's training FLOPs (Kaplan: 3 x (2N + attention + LM head) per token)
MEASURED_FLOPS = "flops.student_train"


def approach_points(df: pd.DataFrame) -> pd.DataFrame:
    """A sweep's supervised runs with a finite loss as the compute-optimal approaches take them: N (non-embedding),
    D, loss, and, where the table gives them, N_total (`total_params`) and C_measured (column flops.student_train).
    Plain points (N, D, loss[, N_total, C_measured]) are returned as they are."""
    if not is_sweep_results(df):
        return df
    pts = points_for(get_law("supervised"), df)
    extra = {"N_total": total_params(pts.rename(columns={"N": "N_S"}), "S")}
    if MEASURED_FLOPS in pts:
        extra["C_measured"] = pd.to_numeric(pts[MEASURED_FLOPS], errors="coerce").astype(float)
    return pts.assign(**extra)


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
            raise ValueError(f"{source}: column {k!r} is not numeric{_first_non_number(cols[k])}") from None
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


def _first_non_number(values) -> str:
    """'; row 3 is 'n/a'' for the first value that does not read as a number (rows count from 0, as pandas)."""
    for i, v in enumerate(np.asarray(values, dtype=object).reshape(-1)):
        try:
            float(v)
        except (TypeError, ValueError):
            return f"; row {i} is {v!r}"
    return ""
