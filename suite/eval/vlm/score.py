"""Score a predictions file on AI2D_TEST, MMVet or MathVista_MINI, as VLMEvalKit would, from any tool's output.

    from suite.eval.vlm import score
    res = score("ai2d", "outputs/m_AI2D_TEST.xlsx")                        # exact matching, no judge
    res = score("mathvista", "outputs/m_MathVista_MINI.xlsx", judge="openai:gpt-4o-mini")
    res = score("mathvista", preds_df, judge="hf:Qwen/Qwen2.5-7B-Instruct", scorer="mathvista_official",
                out_dir="outputs", model_name="m")
    get_benchmark("mmvet").build_prompt(row, style="qwen2vl")             # the prompt a model should see

A benchmark is its entry in config.BENCHMARKS (suite/eval/vlm/benchmark.py: VLMBenchmark): its dataset, the
columns its scorers read and the scorers; this module merges predictions with the dataset and calls them.

The returned dict is `{"benchmark", "judge", "overall", "breakdown", "n", ...}`. **Scale: percent 0-100 for all
three benchmarks** (leaderboard convention; VLMEvalKit's AI2D table itself holds fractions 0-1, kept in its
`_acc.csv`), with the raw fraction in `overall_fraction`. Extra keys: `status` ("scored" | "prefetch_only" |
"not_scored"), `reason` (why a score is partial or missing), `scorer`, `dataset`, `model`, `prompt_style`
(from a `prompt_style` column, when the predictions carry one), `files` (what was written), and per benchmark:
AI2D `random_choices`, `judge_matched`, `matched_exactly`, `seed`; MathVista `prefetch`, `hit`, `prefetch_rate`
(percent); MM-Vet `breakdown_fine`, `failed`.

Uncertainty over items and the facts that flag a degenerate score (issue 27), beside `overall`:
- all three: `stderr` (percent, like `overall`), `ci_low` / `ci_high` (95%, percent) and `ci_method`: "wilson"
  (the Wilson score interval) for AI2D and MathVista, whose items score 0/1, with the binomial stderr
  100·sqrt(p(1-p)/n); "normal" (overall ± 1.96·stderr) for MM-Vet's graded items, whose stderr is
  100 · sample SD of the grades / sqrt(n). `n_missing`: predictions that are missing or empty (still scored,
  as wrong answers or whatever the judge makes of them).
- AI2D and MathVista: `chance` (percent: the expected accuracy of a uniform random guess, mean over items of
  1/number of options; MathVista's free-form items count 0) and, over the *extracted* answers of the
  multiple-choice items (option letters; "Z" for a reply read as no option, its own category),
  `answer_entropy` (bits), `top_answer`, `top_answer_share` (fraction 0-1) and `answer_counts`; MathVista also
  `n_multiple_choice`. A model that answers the same letter everywhere has entropy 0 and share 1.

A predictions file needs `index` and `prediction`; other columns the scorer needs (answer, options, question
type, ...) are taken from the benchmark TSV under the data root when the file lacks them, and every index must
exist there. Output files go to `out_dir` (default: the predictions file's folder; none for a DataFrame without
`out_dir`), named as VLMEvalKit names them from `{model}_{dataset}`.

Without a judge, never a silent substitute: AI2D is scored by exact matching (judge "exact_matching", unplaced
replies are Z); MathVista reports the prefetch-only score, labelled so, with its prefetch rate; MM-Vet is not
scored (overall None, with the reason). A configured judge that does not answer is an error.

`max_new_tokens` per benchmark (VLMEvalKit leaves it to each model: InternVL 1024, Qwen2-VL 2048; these are
lmms-eval's task defaults): AI2D 16 (a letter or a short option text), MMVet 1024, MathVista 1024.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pandas as pd

from ..uncertainty import is_missing
from ._judging import available, check_working, file_tag, resolve_judge
from .tsv import (data_root, dataset_file, get_benchmark, load_dataset, read_predictions, require_columns,
                  vlm_benchmarks)


class _VLMBenchmarks:
    """The VLMEvalKit entries of config.BENCHMARKS, read-only, by key or dataset name (a view, not a registry:
    this name was a second registry until issue 29; register a benchmark in config.BENCHMARKS)."""

    def get(self, name: str) -> Any:
        return get_benchmark(name)

    def names(self) -> list[str]:
        return sorted(vlm_benchmarks(complete=False))

    def items(self) -> list[tuple[str, Any]]:
        return sorted(vlm_benchmarks(complete=False).items())

    def __contains__(self, name: object) -> bool:
        try:
            get_benchmark(name)
        except KeyError:
            return False
        return True

    def __iter__(self):
        return iter(self.names())


VLM_BENCHMARKS = _VLMBenchmarks()


def score(benchmark: Any, predictions: str | os.PathLike | pd.DataFrame, *, data_root: str | os.PathLike | None = None,
          judge: Any = "none", out_dir: str | os.PathLike | None = None, model_name: str | None = None,
          scorer: str | None = None, seed: int = 0, allow_empty: bool = True) -> dict[str, Any]:
    """Score `predictions` (a file in any supported format, or a DataFrame) on `benchmark` (a name or an
    entry); see the module doc.
    `allow_empty=False` refuses a file whose predictions are all empty (a model that never ran scores 0, not
    an error, otherwise); `suite score` passes it unless --allow-empty."""
    bench = get_benchmark(benchmark)
    fn = bench.scorer(scorer)
    preds = read_predictions(predictions)
    source = None if isinstance(predictions, pd.DataFrame) else Path(os.path.expanduser(str(predictions)))
    if not allow_empty and len(preds) and all(is_missing(v) for v in preds["prediction"]):
        raise ValueError(f"{source or 'predictions DataFrame'}: all {len(preds)} predictions (column 'prediction') "
                         f"are empty; was the model run? (--allow-empty scores them, as wrong answers)")
    data = _merge_with_dataset(bench, preds, data_root, source)
    j = resolve_judge(judge)
    if available(j):
        check_working(j, bench.name)
    model = model_name or _model_from_file(source, bench.dataset)
    folder = Path(out_dir) if out_dir is not None else (source.parent if source is not None else None)
    prefix = folder / f"{model}_{bench.dataset}" if folder is not None else None
    tag = file_tag(j.name)  # NoJudge: "exact_matching"
    result = fn(data, j, prefix=prefix, judge_tag=tag, seed=seed)
    out = {"benchmark": bench.name, "dataset": bench.dataset, "judge": result.pop("judge"),
           "scorer": scorer or bench.default_scorer, "overall": result.pop("overall"),
           "breakdown": result.pop("breakdown"), "n": result.pop("n"), "model": model,
           "prompt_style": _prompt_style(preds), "predictions": str(source) if source else None,
           "n_missing": sum(is_missing(v) for v in data["prediction"]), **result}
    return _clean(out)


def _merge_with_dataset(bench: Any, preds: pd.DataFrame, root: Any, source: Path | None) -> pd.DataFrame:
    label = str(source) if source is not None else "predictions DataFrame"
    preds = preds.drop(columns=["image"], errors="ignore")  # a dataset table with predictions added: no bytes
    missing = [c for c in bench.required if c not in preds.columns]
    path = dataset_file(bench.dataset, root)
    if not path.is_file():
        if missing:
            raise FileNotFoundError(
                f"{label} lacks column(s) {', '.join(map(repr, missing))} and the benchmark file {path} does not "
                f"exist to supply them; pass --data-root (a folder with {bench.dataset}.tsv) or write predictions "
                f"with the dataset's columns ({', '.join(('index', *bench.required, 'prediction'))})")
        return preds
    meta = load_dataset(bench.dataset, root).drop(columns=["image", "image_path"], errors="ignore")
    if len(meta) and not pd.api.types.is_integer_dtype(meta["index"]):
        # the dataset keeps string ids (not all integers); a subset whose ids all look like integers was cast
        # to int by read_predictions, and 10 would never match "10"
        preds = preds.assign(index=[str(i) for i in preds["index"]])
    known = set(meta["index"])
    unknown = [i for i in preds["index"] if i not in known]
    if unknown:
        raise ValueError(f"{label}: {len(unknown)} index value(s) not in {path} (e.g. {unknown[:5]}); the "
                         f"predictions must be the dataset or a subset of it")
    extra = [c for c in meta.columns if c not in preds.columns and c != "index"]
    # the dataset's answers win over a predictions file's copy (VLMEvalKit takes GT from its own table)
    data = preds.merge(meta[["index", *extra]], on="index", how="left") if extra else preds.copy()
    if "answer" in meta.columns and "answer" in preds.columns:
        data["answer"] = data["index"].map(dict(zip(meta["index"], meta["answer"])))
    require_columns(data, bench.required, f"{path} (merged with {label})",
                    ("index", *bench.required, "prediction"))
    return data


def _model_from_file(source: Path | None, dataset: str) -> str:
    if source is None:
        return "model"
    stem = source.stem
    suffix = f"_{dataset}"
    return stem[: -len(suffix)] if stem.endswith(suffix) and len(stem) > len(suffix) else stem


def _prompt_style(preds: pd.DataFrame) -> str | None:
    if "prompt_style" not in preds.columns:
        return None
    styles = sorted({str(s) for s in preds["prompt_style"].dropna()})
    return styles[0] if len(styles) == 1 else (",".join(styles) or None)


def _clean(obj: Any) -> Any:
    """JSON-ready: NaN -> None, numpy scalars -> Python numbers."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        try:
            obj = obj.item()
        except (ValueError, AttributeError):
            return obj
    if isinstance(obj, float) and (math.isnan(obj) or math.isinf(obj)):
        return None
    return obj


__all__ = ["VLM_BENCHMARKS", "get_benchmark", "score", "data_root"]
