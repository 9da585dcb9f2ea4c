"""The benchmarks `suite eval` and a cell's `eval.benchmarks` can name: each registers its runner in
config.BENCHMARKS, and run.evaluate calls them in turn.

A `suite.plugins` module (pyproject.toml): the schema validates benchmark names through the registry
without importing the evaluation package. A new benchmark is a runner here (or in its own module, listed in
BUILTIN) and its tests; `suite eval --benchmarks NAME` and `eval.benchmarks: [NAME]` then find it.
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


def _is_vlm(model) -> bool:
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
    if _is_vlm(model):
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

    lm, tok = (model.model, model.tokenizer) if _is_vlm(model) else (model, ctx.tokenizer)
    if tok is None:
        raise ValueError("mmlu needs the model's tokenizer")
    local = ctx.mmlu_task == "local"  # upstream: lm-eval's own `mmlu`, from the hub
    res = evaluate_mmlu(lm, tok, mmlu_dir(ctx.data_root) if local else None, num_fewshot=ctx.num_fewshot,
                        batch_size=ctx.batch_size, limit=ctx.limit, device=ctx.device, out_dir=ctx.out / "mmlu",
                        task=ctx.mmlu_task, progress=ctx.progress)
    return {**summary(res), "judge": "loglikelihood"}


def run_vlm(name: str, model, ctx: EvalContext) -> dict:
    """A VLMEvalKit benchmark: generate the predictions file, then score it as VLMEvalKit would."""
    from .vlm.generate import predict
    from .vlm.score import score

    if not _is_vlm(model):
        raise ValueError(f"{name} is a vision-language benchmark; model "
                         f"{ctx.model_name or type(model).__name__} is a text-only language model")
    info = predict(model, name, out_dir=ctx.out / name, data_root=ctx.data_root, model_name=ctx.model_name,
                   prompt_style=ctx.prompt_style, batch_size=ctx.batch_size, limit=ctx.limit,
                   max_new_tokens=ctx.max_new_tokens, progress=ctx.progress)
    res = score(name, info["predictions"], data_root=ctx.data_root, judge=ctx.judge, out_dir=ctx.out / name,
                model_name=info["model"])
    return {**summary(res), "prompt_style": ctx.prompt_style, "predictions": info["predictions"]}


BUILTIN = (
    Benchmark("mmlu", "text", "MMLU through lm-eval (local cais/mmlu files or lm-eval's own task)", run_mmlu),
    Benchmark("ai2d", "vlm", "AI2D_TEST, VLMEvalKit's TSV and scoring", run_vlm),
    Benchmark("mmvet", "vlm", "MM-Vet, VLMEvalKit's TSV; GPT-4-style judge", run_vlm),
    Benchmark("mathvista", "vlm", "MathVista_MINI, VLMEvalKit's TSV; answer extraction by a judge", run_vlm),
    Benchmark("heldout", "text", "nats/token on the held-out split of the model's training data", run_heldout),
)
for _b in BUILTIN:
    BENCHMARKS.register(_b.name, _b)

NAMES = tuple(b.name for b in BUILTIN)
