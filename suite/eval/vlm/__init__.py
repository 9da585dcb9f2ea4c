"""VLM benchmarks in VLMEvalKit's formats: AI2D_TEST, MMVet, MathVista_MINI (data, prompts, scoring, fixtures).

    suite score --benchmark ai2d --predictions outputs/m_AI2D_TEST.xlsx --json
    from suite.eval.vlm import score, get_benchmark, load_dataset, write_vlm_fixture

Each benchmark is one entry of config.BENCHMARKS, a `VLMBenchmark` (benchmark.py) defined in its own module
(ai2d.py, mmvet.py, mathvista.py) with its dataset, prompt, scorers and fixture writer.
"""
from .benchmark import VLMEVALKIT_URL, VLMBenchmark, run_vlm
from .fixtures import (draw_scene, fixture_items, render_scene, sample_scene, world_fixture, write_ai2d_fixture,
                       write_mathvista_fixture, write_mmvet_fixture, write_vlm_fixture)
from .matching import build_choices, can_infer, can_infer_option, can_infer_text
from .prompts import PROMPT_STYLES, build_message, build_prompt, mcq_prompt, question_prompt, vqa_prompt
from .score import VLM_BENCHMARKS, score
from .tsv import (benchmark_key, data_root, dataset_file, dataset_name, decode_image, dump_image, encode_image,
                  get_benchmark, load_dataset, read_predictions, vlm_benchmarks, write_predictions)

__all__ = [
    "VLMBenchmark", "VLMEVALKIT_URL", "run_vlm", "get_benchmark", "vlm_benchmarks", "benchmark_key",
    "dataset_name", "VLM_BENCHMARKS", "score",
    "PROMPT_STYLES", "build_prompt", "build_message", "mcq_prompt", "question_prompt", "vqa_prompt",
    "can_infer", "can_infer_option", "can_infer_text", "build_choices",
    "DATASETS", "data_root", "dataset_file", "load_dataset", "dump_image", "decode_image", "encode_image",
    "read_predictions", "write_predictions",
    "write_vlm_fixture", "write_ai2d_fixture", "write_mmvet_fixture", "write_mathvista_fixture", "world_fixture",
    "fixture_items", "render_scene", "sample_scene", "draw_scene",
]


def __getattr__(name: str):
    if name == "DATASETS":  # {key: dataset} of the registered benchmarks (was a table in tsv.py)
        from . import tsv

        return tsv.DATASETS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
