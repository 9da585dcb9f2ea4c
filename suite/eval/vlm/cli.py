"""`suite score`: score a VLM predictions file on AI2D_TEST, MMVet or MathVista_MINI, as VLMEvalKit would.

    suite score --benchmark ai2d --predictions outputs/m_AI2D_TEST.xlsx
    suite score --benchmark mathvista --predictions preds.jsonl --judge openai:gpt-4o-mini --json
    suite score --benchmark mmvet --predictions preds.tsv --judge hf:Qwen/Qwen2.5-7B-Instruct --out scores/
"""
from __future__ import annotations

import json
import sys
from typing import Any

from ...registry import UnknownNameError
from ..judges import JudgeError
from .score import VLM_BENCHMARKS, score

JSON_KEYS = ("benchmark", "judge", "overall", "breakdown", "n")


def run(a) -> int:
    try:
        res = score(a.benchmark, a.predictions, data_root=a.data_root, judge=a.judge, out_dir=a.out,
                    model_name=a.model_name, scorer=a.scorer, seed=a.seed, allow_empty=a.allow_empty)
    except (FileNotFoundError, ValueError, JudgeError, UnknownNameError) as e:
        print(f"suite score: error: {e}", file=sys.stderr)
        return 2
    if res.get("n_missing"):  # rows without an answer: scored as wrong, said once
        print(f"suite score: warning: {res['predictions']}: {res['n_missing']} of {res['n']} predictions (column "
              f"'prediction') are empty; scored as wrong answers", file=sys.stderr)
    if a.json:
        print(json.dumps({**{k: res[k] for k in JSON_KEYS}, **res}, indent=2, default=str))
    else:
        print(format_result(res))
    return 0


def format_result(res: dict[str, Any]) -> str:
    head = f"{res['benchmark']} ({res['dataset']}, {res['n']} samples, judge {res['judge']}, scorer {res['scorer']})"
    if res["overall"] is None:
        return f"{head}: not scored: {res.get('reason') or 'no predictions to score'}"
    lines = [f"{head}: overall {res['overall']:.2f}%"]
    if res.get("status") == "prefetch_only":
        lines.append(f"  PREFETCH-ONLY (prefetch rate {res['prefetch_rate']:.1f}%): {res.get('reason')}")
    for k, v in res["breakdown"].items():
        lines.append(f"  {k:<28} {'-' if v is None else f'{v:.2f}'}")
    for r in res.get("random_choices") or []:
        lines.append(f"  index {r['index']}: judge could not place the reply; picked {r['choice']} at random "
                     f"(seed {res.get('seed')})")
    for name, path in (res.get("files") or {}).items():
        lines.append(f"  {name}: {path}")
    return "\n".join(lines)


def add_parser(sub, helptext: str = "score VLM predictions (ai2d, mmvet, mathvista) as VLMEvalKit does") -> None:
    import argparse

    p = sub.add_parser(
        "score", help=helptext,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        # RawDescription keeps the examples' layout, so the prose is wrapped by hand
        description="Score a predictions file (xlsx, tsv, csv, json, jsonl; columns 'index' and 'prediction',\n"
                    "plus the dataset's other columns or a --data-root holding the benchmark TSV) with\n"
                    "VLMEvalKit's rules, and write its result files beside the predictions (or in --out).\n\n"
                    "Scores are percent. Without a judge: AI2D by exact matching, MathVista prefetch-only\n"
                    "(labelled, with the prefetch rate), MM-Vet not scored.",
        epilog="judges: none | openai:MODEL[@BASE_URL] | hf:PATH_OR_ID\n"
               "scorers: " + "; ".join(f"{n}: {', '.join(sorted(b.scorers))}" for n, b in VLM_BENCHMARKS.items())
               + "\n\nexamples:\n  suite score --benchmark ai2d --predictions outputs/m_AI2D_TEST.xlsx\n"
                 "  suite score --benchmark mathvista --predictions p.tsv --judge openai:gpt-4o-mini "
                 "--scorer mathvista_official --json")
    p.add_argument("--benchmark", required=True, help=f"one of: {', '.join(VLM_BENCHMARKS.names())}")
    p.add_argument("--predictions", required=True, metavar="FILE", help="predictions file (VLMEvalKit shape)")
    p.add_argument("--data-root", metavar="DIR", default=None,
                   help="folder with the benchmark TSVs (default: $LMUData if it is a directory, else ~/LMUData)")
    p.add_argument("--judge", default="none", metavar="SPEC", help="none (default), openai:MODEL[@URL], hf:PATH")
    p.add_argument("--scorer", default=None, metavar="NAME",
                   help="default: the benchmark's (vlmevalkit); the others are listed below")
    p.add_argument("--out", metavar="DIR", default=None, help="where result files go (default: beside predictions)")
    p.add_argument("--model-name", metavar="NAME", default=None,
                   help="model name in output file names (default: from {model}_{dataset}.xlsx)")
    p.add_argument("--seed", type=int, default=0, help="seeds AI2D's random pick after 3 failed judge tries")
    p.add_argument("--allow-empty", action="store_true",
                   help="score a file whose predictions are all empty (refused by default: the model did not run)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(fn=run)
