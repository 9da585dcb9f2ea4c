"""The benchmarks `suite eval` and a cell's `eval.benchmarks` can name: one registry, config.BENCHMARKS.

    BENCHMARKS.get("ai2d")           # imports suite.eval.vlm.ai2d on first use: its VLMBenchmark entry
    BENCHMARKS.get("ai2d").run(name, model, ctx)     # what run.evaluate calls for each benchmark

A `suite.plugins` module (pyproject.toml): the schema validates benchmark names through the registry
without importing the evaluation package. `BUILTIN` below is the one table of names; an entry is an object or a
lazy "module:object" string, imported the first time the benchmark is used, so that `suite --help`, config
checks and name listings import no benchmark module (pandas, lm-eval, torch).

An entry is a config.Benchmark (name, modality, summary, run); `EvalBenchmark` adds what scoring and the report
read (scale, chance, answer letters, judge), and `suite.eval.vlm.benchmark.VLMBenchmark` what a VLMEvalKit
benchmark is made of (dataset, prompt, scorers, fixture). A new benchmark is one module holding its entry (for a
VLMEvalKit format: `NAME = VLMBenchmark(...)`, see suite/eval/vlm/ai2d.py) and one line in BUILTIN, or, from a
test or another package, `BENCHMARKS.register(name, entry)` (a package: in a module of its `suite.plugins`
entry point); `suite eval --benchmarks NAME`, `suite score --benchmark NAME` and `eval.benchmarks: [NAME]` then
find it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..config import BENCHMARKS, Benchmark

# what result.json keeps of each benchmark (the full tables stay in the eval directory); the second line: the
# score's uncertainty over items and the facts that flag a degenerate score (issue 27; see suite.eval.uncertainty)
SUMMARY_KEYS = ("overall", "judge", "n", "status", "scorer", "prefetch_rate", "num_fewshot", "prompt_style",
                "groups", "breakdown", "loss", "reason",
                "stderr", "ci_low", "ci_high", "ci_method", "stderr_by_group", "n_blocks", "chance", "tied_fraction",
                "answer_entropy", "top_answer", "top_answer_share", "answer_counts", "n_missing", "n_multiple_choice")


@dataclass(frozen=True)
class EvalBenchmark(Benchmark):
    """A benchmark entry with what its scores mean: read by scoring, `suite eval`'s printout and the report."""
    scale: float = 1.0                 # `overall` is out of: 1 (fractions, as lm-eval) | 100 (percent, as VLMEvalKit)
    chance: float | None = None        # fraction 0-1 a uniform guess scores, when fixed (MMLU's 4 options: 0.25);
                                       # None: per item (the result's `chance`) or undefined (open answers)
    multiple_choice: bool = False      # answers are option letters (A, B, ...): one letter everywhere is a flag
    judge: str = "none"                # none | optional (scored without one, by rules) | required (else not scored)


@dataclass(frozen=True)
class EvalContext:
    """Everything a runner may need beside the model: one `suite eval` call's options."""
    out: Path                          # the call's output directory; a runner writes under out / name
    tokenizer: Any = None              # a causal LM's tokenizer (a VLM brings its own)
    data_root: str | os.PathLike | None = None
    judge: Any = None                  # a made judge (judges.make_judge), set when a VLM benchmark is asked for
    num_fewshot: int = 5
    limit: int | None = None
    batch_size: int = 16
    prompt_style: str = "default"
    heldout_source: Any = None         # the token source of the model's training data (heldout)
    device: str | None = None
    model_name: str | None = None
    mmlu_task: str = "local"
    max_new_tokens: int | None = None
    progress: bool = True


def summary(res: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a benchmark's full result that result.json keeps."""
    return {k: res[k] for k in SUMMARY_KEYS if k in res}


def mmlu_dir(data_root: str | os.PathLike | None) -> Path:
    """DATA_ROOT/mmlu when it exists, else DATA_ROOT itself (a directory of cais/mmlu subject folders)."""
    if data_root is None:
        raise FileNotFoundError("mmlu needs --data-root (a directory holding mmlu/<subject>/test-*.parquet, "
                                "the cais/mmlu layout; suite.eval.mmlu.write_mmlu_fixture writes a small one)")
    root = Path(os.path.expanduser(str(data_root)))
    return root / "mmlu" if (root / "mmlu").is_dir() else root


def is_vlm_model(model) -> bool:
    """A `suite.models.vlm.VLM` (image + text), as opposed to a causal LM."""
    from ..models.vlm import VLM  # transformers' VLM classes: only when a benchmark runs

    return isinstance(model, VLM)


def run_heldout(name: str, model, ctx: EvalContext) -> dict:
    """Nats/token on the held-out split of the model's training data, with its standard error over blocks."""
    import torch

    from ..models import HiddenStatesLM
    from .heldout import heldout_stats

    source = ctx.heldout_source
    if source is None:
        raise ValueError("heldout needs the model's data: pass a run's model directory (runs/<sweep>/<cell>/model, "
                         "whose cell.json names the data) or evaluate inside a cell")
    if is_vlm_model(model):
        raise ValueError("heldout is a text benchmark of the language-model cells; VLMs are scored on "
                         "ai2d / mmvet / mathvista")
    lm = model if isinstance(model, HiddenStatesLM) else HiddenStatesLM(model)
    dev = torch.device(ctx.device) if ctx.device else next(lm.parameters()).device
    stats = heldout_stats(lm, source, batch_size=ctx.batch_size, device=dev)
    return {"loss": stats["loss"], "stderr": stats["stderr"], "n_blocks": stats["n_blocks"],
            "n": source.num_examples("heldout")}


def run_mmlu(name: str, model, ctx: EvalContext) -> dict:
    """MMLU through lm-eval: our task configs over local cais/mmlu files, or lm-eval's own `mmlu` (the hub)."""
    from .mmlu import evaluate_mmlu

    lm, tok = (model.model, model.tokenizer) if is_vlm_model(model) else (model, ctx.tokenizer)
    if tok is None:
        raise ValueError("mmlu needs the model's tokenizer")
    local = ctx.mmlu_task == "local"  # upstream: lm-eval's own `mmlu`, from the hub
    res = evaluate_mmlu(lm, tok, mmlu_dir(ctx.data_root) if local else None, num_fewshot=ctx.num_fewshot,
                        batch_size=ctx.batch_size, limit=ctx.limit, device=ctx.device, out_dir=ctx.out / "mmlu",
                        task=ctx.mmlu_task, progress=ctx.progress, model_name=ctx.model_name)
    return {**summary(res), "judge": "loglikelihood"}


# name -> entry, or "module:object" imported on first use (registration order: `suite eval --help` lists it)
BUILTIN: dict[str, EvalBenchmark | str] = {
    "mmlu": EvalBenchmark("mmlu", "text", "MMLU through lm-eval (local cais/mmlu files or lm-eval's own task)",
                          run_mmlu, chance=0.25, multiple_choice=True),
    "ai2d": "suite.eval.vlm.ai2d:AI2D",
    "mmvet": "suite.eval.vlm.mmvet:MMVET",
    "mathvista": "suite.eval.vlm.mathvista:MATHVISTA",
    "heldout": EvalBenchmark("heldout", "text", "nats/token on the held-out split of the model's training data",
                             run_heldout),
}
for _name, _entry in BUILTIN.items():
    if isinstance(_entry, str):
        BENCHMARKS.register(_name, lazy=_entry)
    else:
        BENCHMARKS.register(_name, _entry)

NAMES = tuple(BUILTIN)
