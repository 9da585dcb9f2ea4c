"""The benchmarks `suite eval` and a cell's `eval.benchmarks` can name, registered in config.BENCHMARKS.

A `suite.plugins` module (pyproject.toml): the schema validates benchmark names through the registry
without importing the evaluation package. A new benchmark adds a line here and its branch in run.evaluate.
"""
from __future__ import annotations

from ..config import BENCHMARKS, Benchmark

BUILTIN = (
    Benchmark("mmlu", "text", "MMLU through lm-eval (local cais/mmlu files or lm-eval's own task)"),
    Benchmark("ai2d", "vlm", "AI2D_TEST, VLMEvalKit's TSV and scoring"),
    Benchmark("mmvet", "vlm", "MM-Vet, VLMEvalKit's TSV; GPT-4-style judge"),
    Benchmark("mathvista", "vlm", "MathVista_MINI, VLMEvalKit's TSV; answer extraction by a judge"),
    Benchmark("heldout", "text", "nats/token on the held-out split of the model's training data"),
)
for _b in BUILTIN:
    BENCHMARKS.register(_b.name, _b)

NAMES = tuple(b.name for b in BUILTIN)
VLM_BENCHMARKS = tuple(b.name for b in BUILTIN if b.modality == "vlm")
