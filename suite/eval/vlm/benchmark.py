"""One VLMEvalKit-format benchmark as one registry entry: its dataset, prompt, scorers and fixture together.

    AI2D = VLMBenchmark("ai2d", summary="AI2D_TEST, VLMEvalKit's TSV and scoring", dataset="AI2D_TEST",
                        max_new_tokens=16, required=("question", "answer"), prompt=mcq_prompt,
                        scorers={"vlmevalkit": score_ai2d}, fixture=world_fixture("ai2d"), multiple_choice=True)
    BENCHMARKS.get("ai2d").build_prompt(row, "qwen2vl")       # the entry is what `BENCHMARKS.get` returns
    BENCHMARKS.get("ai2d").score("outputs/m_AI2D_TEST.xlsx")  # = suite.eval.vlm.score("ai2d", ...)

A benchmark module defines its entry (suite/eval/vlm/ai2d.py, mmvet.py, mathvista.py) and
suite/eval/benchmarks.py:BUILTIN names it lazily ("suite.eval.vlm.ai2d:AI2D"); a test or another package
registers one with `BENCHMARKS.register(name, entry)`. Everything else finds it there: `suite eval` runs it
(`run`: generate, then score), `suite score` scores it, `load_dataset` / `dataset_file` map its key to its TSV,
`build_prompt` asks its `prompt`, `write_vlm_fixture` calls its `fixture`, the report reads `multiple_choice`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import pandas as pd

from ...registry import UnknownNameError, did_you_mean
from ..benchmarks import EvalBenchmark, EvalContext, is_vlm_model, summary
from .generate import predict
from .prompts import check_style, message
from .score import score
from .tsv import load_dataset

Scorer = Callable[..., dict]  # (data, judge, *, prefix, judge_tag, seed) -> {"judge", "overall", "breakdown", "n", ...}
VLMEVALKIT_URL = "https://opencompass.openxlab.space/utils/VLMEval/{}.tsv"


def run_vlm(name: str, model, ctx: EvalContext) -> dict:
    """A VLMEvalKit benchmark in `suite eval`: generate the predictions file, then score it as VLMEvalKit would."""
    if not is_vlm_model(model):
        raise ValueError(f"{name} is a vision-language benchmark; model "
                         f"{ctx.model_name or type(model).__name__} is a text-only language model")
    info = predict(model, name, out_dir=ctx.out / name, data_root=ctx.data_root, model_name=ctx.model_name,
                   prompt_style=ctx.prompt_style, batch_size=ctx.batch_size, limit=ctx.limit,
                   max_new_tokens=ctx.max_new_tokens, progress=ctx.progress)
    res = score(name, info["predictions"], data_root=ctx.data_root, judge=ctx.judge, out_dir=ctx.out / name,
                model_name=info["model"])
    return {**summary(res), "prompt_style": ctx.prompt_style, "predictions": info["predictions"]}


@dataclass(frozen=True, kw_only=True)
class VLMBenchmark(EvalBenchmark):
    """A benchmark in VLMEvalKit's formats: <root>/<dataset>.tsv in, a predictions file scored by `scorers`."""

    dataset: str                                    # VLMEvalKit's dataset name: the TSV is <root>/<dataset>.tsv
    max_new_tokens: int                             # default answer budget (lmms-eval's task default)
    prompt: Callable[[Mapping[str, Any], str], str]  # (row, style) -> text; suite.eval.vlm.prompts has VLMEvalKit's
    scorers: Mapping[str, Scorer]                   # name -> scorer; `suite score --scorer NAME`
    required: tuple[str, ...] = ()                  # columns the scorers read (besides index, prediction)
    default_scorer: str = "vlmevalkit"
    fixture: Callable[..., Any] | None = None      # (root, n=None, seed=0, image_size=64) -> <root>/<dataset>.tsv
    url: str | None = None                          # where the published TSV is downloaded from
    md5: str | None = None                          # of the published TSV
    modality: str = "vlm"
    run: Callable[..., dict] | None = field(default=run_vlm)
    scale: float = 100.0                            # percent, as VLMEvalKit's leaderboards
    judge: str = "optional"

    def __post_init__(self) -> None:
        if self.default_scorer not in self.scorers:
            raise ValueError(f"benchmark {self.name!r}: default_scorer {self.default_scorer!r} is not one of its "
                             f"scorers ({', '.join(self.scorers)})")

    def build_prompt(self, row: Mapping[str, Any], style: str = "default") -> str:
        return self.prompt(row, check_style(style))

    def build_message(self, row: Mapping[str, Any], style: str = "default", images=()) -> list[dict]:
        return message(self.build_prompt(row, style), style, images)

    def load(self, data_root: str | os.PathLike | None = None) -> pd.DataFrame:
        return load_dataset(self.dataset, data_root)

    def scorer(self, name: str | None = None) -> Scorer:
        key = name or self.default_scorer
        if key not in self.scorers:
            raise UnknownNameError(f"unknown scorer {key!r} for {self.name}{did_you_mean(key, self.scorers)}; "
                                   f"valid: {', '.join(sorted(self.scorers))}")
        return self.scorers[key]

    def score(self, predictions: Any, **kw: Any) -> dict[str, Any]:
        return score(self, predictions, **kw)

    def write_fixture(self, root: str | os.PathLike, n: int | None = None, seed: int = 0, image_size: int = 64):
        """A small <root>/<dataset>.tsv in the benchmark's exact format, for tests and smoke runs."""
        if self.fixture is None:
            raise ValueError(f"benchmark {self.name!r} has no fixture writer")
        return self.fixture(root, n=n, seed=seed, image_size=image_size)


__all__ = ["VLMBenchmark", "VLMEVALKIT_URL", "run_vlm", "Scorer"]
