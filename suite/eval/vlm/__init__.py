"""VLM benchmarks in VLMEvalKit's formats: AI2D_TEST, MMVet, MathVista_MINI (data, prompts, scoring, fixtures).

    suite score --benchmark ai2d --predictions outputs/m_AI2D_TEST.xlsx --json
    from suite.eval.vlm import score, VLM_BENCHMARKS, load_dataset, write_vlm_fixture
"""
from .fixtures import (draw_scene, fixture_items, render_scene, sample_scene, write_ai2d_fixture,
                       write_mathvista_fixture, write_mmvet_fixture, write_vlm_fixture)
from .matching import build_choices, can_infer, can_infer_option, can_infer_text
from .prompts import PROMPT_STYLES, build_message, build_prompt
from .score import VLM_BENCHMARKS, VLMBenchmark, get_benchmark, score
from .tsv import (DATASETS, data_root, dataset_file, decode_image, dump_image, encode_image, load_dataset,
                  read_predictions, write_predictions)

__all__ = [
    "VLM_BENCHMARKS", "VLMBenchmark", "get_benchmark", "score",
    "PROMPT_STYLES", "build_prompt", "build_message",
    "can_infer", "can_infer_option", "can_infer_text", "build_choices",
    "DATASETS", "data_root", "dataset_file", "load_dataset", "dump_image", "decode_image", "encode_image",
    "read_predictions", "write_predictions",
    "write_vlm_fixture", "write_ai2d_fixture", "write_mmvet_fixture", "write_mathvista_fixture",
    "fixture_items", "render_scene", "sample_scene", "draw_scene",
]
