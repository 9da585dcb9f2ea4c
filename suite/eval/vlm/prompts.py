"""Benchmark prompts, as VLMEvalKit builds them, in three styles a model may ask for.

    build_prompt("ai2d", row)                      # ImageMCQDataset.build_prompt (Hint/Question/Options/...)
    build_prompt("ai2d", row, style="internvl")    # InternVL's build_multi_choice_prompt
    build_prompt("mathvista", row, style="qwen2vl")  # Qwen2-VL mixin: question + short-answer instruction
    build_message("mmvet", row, images=[path])     # VLMEvalKit message: [{"type": "image", ...}, {"type": "text", ...}]

Each benchmark's entry names its prompt builder (`VLMBenchmark.prompt`, a function of (row, style)); this
module holds the builders of VLMEvalKit's prompt families, which a new benchmark picks from:

| builder         | default                        | internvl                    | qwen2vl                       |
|-----------------|--------------------------------|-----------------------------|-------------------------------|
| mcq_prompt      | `ImageMCQDataset.build_prompt` | `build_multi_choice_prompt` | `_build_mcq_prompt`, stripped |
| question_prompt | question                       | question                    | question                      |
| vqa_prompt      | question                       | question                    | question + VQA_PROMPT         |

AI2D_TEST uses mcq_prompt, MMVet question_prompt, MathVista_MINI vqa_prompt. InternVL's builder is in its
`internvl/utils.py`, Qwen2-VL's in `qwen2_vl/prompt.py`. Styles follow VLMEvalKit `inference.py`: a model's
`use_custom_prompt` / `build_prompt` win over the dataset's (the Qwen2-VL mixin leaves MMVet to the dataset
prompt).

Questions with CJK characters get the upstream Chinese instructions (InternVL, Qwen2-VL).
"""
from __future__ import annotations

import string
from typing import Any, Iterable, Mapping

from ...registry import UnknownNameError, did_you_mean
from .matching import _isna, cn_string
from .tsv import get_benchmark

PROMPT_STYLES = ("default", "internvl", "qwen2vl")

MCQ_SUFFIX = "Please select the correct answer from the options above. \n"            # ImageMCQDataset
INTERNVL_MCQ_EN = "\nAnswer with the option's letter from the given choices directly."  # build_multi_choice_prompt
INTERNVL_MCQ_CN = "\n请直接回答选项字母。"
INTERNVL_OPEN_EN = "\nAnswer the question directly."
INTERNVL_OPEN_CN = "\n请直接回答问题。"
QWEN2VL_MCQ_EN = "Please select the correct answer from the options above."            # Qwen2VLPromptMixin
QWEN2VL_MCQ_CN = "请直接回答选项字母。"
QWEN2VL_VQA = "\nPlease try to answer the question with short words or phrases if possible."


def check_style(style: str) -> str:
    if style not in PROMPT_STYLES:
        raise UnknownNameError(f"unknown prompt style {style!r}{did_you_mean(style, PROMPT_STYLES)}; "
                               f"valid: {', '.join(PROMPT_STYLES)}")
    return style


def _hint(row: Mapping[str, Any]) -> Any:
    return row["hint"] if ("hint" in row and not _isna(row["hint"])) else None


def _options(row: Mapping[str, Any]) -> dict[str, Any]:
    return {c: row[c] for c in string.ascii_uppercase if c in row and not _isna(row[c])}


def mcq_prompt_default(row: Mapping[str, Any]) -> str:
    options, hint = _options(row), _hint(row)
    prompt = f"Hint: {hint}\n" if hint is not None else ""
    prompt += f"Question: {row['question']}\n"
    if options:
        prompt += "Options:\n" + "".join(f"{k}. {v}\n" for k, v in options.items())
        prompt += MCQ_SUFFIX
    return prompt


def mcq_prompt_internvl(row: Mapping[str, Any]) -> str:
    question, hint, options = row["question"], _hint(row), _options(row)
    if hint is not None:
        question = f"{hint}\n{question}"
    prompt = question + "".join(f"\n{k}. {v}" for k, v in options.items())
    if options:
        prompt += INTERNVL_MCQ_CN if cn_string(prompt) else INTERNVL_MCQ_EN
    else:
        prompt += INTERNVL_OPEN_CN if cn_string(prompt) else INTERNVL_OPEN_EN
    return prompt


def mcq_prompt_qwen2vl(row: Mapping[str, Any]) -> str:
    options, hint = _options(row), _hint(row)
    prompt = f"Hint: {hint}\n" if hint is not None else ""
    prompt += f"Question: {row['question']}\n"
    if options:
        prompt += "Options:\n" + "".join(f"{k}. {v}\n" for k, v in options.items())
        prompt += QWEN2VL_MCQ_CN if cn_string(prompt) else QWEN2VL_MCQ_EN
    return prompt.rstrip()


MCQ_STYLES = {"default": mcq_prompt_default, "internvl": mcq_prompt_internvl, "qwen2vl": mcq_prompt_qwen2vl}


def mcq_prompt(row: Mapping[str, Any], style: str = "default") -> str:
    """A multiple-choice question with options in columns A, B, ... (VLMEvalKit's ImageMCQDataset)."""
    return MCQ_STYLES[check_style(style)](row)


def question_prompt(row: Mapping[str, Any], style: str = "default") -> str:
    """The question as it is, in every style (VLMEvalKit's MMVet)."""
    check_style(style)
    return str(row["question"])


def vqa_prompt(row: Mapping[str, Any], style: str = "default") -> str:
    """The question; Qwen2-VL asks for a short answer (its VQA mixin, as VLMEvalKit's MathVista under qwen2vl)."""
    question = str(row["question"])
    return question + QWEN2VL_VQA if check_style(style) == "qwen2vl" else question


def build_prompt(benchmark: Any, row: Mapping[str, Any], style: str = "default") -> str:
    """The text a model sees for `row` of `benchmark` ("ai2d" | "mmvet" | "mathvista" | an entry) in `style`."""
    bench = get_benchmark(benchmark)
    return bench.prompt(row, check_style(style))


def message(text: str, style: str = "default", images: Iterable[Any] = ()) -> list[dict[str, Any]]:
    """VLMEvalKit's message list: images then the text (InternVL puts its text first, as upstream)."""
    t = {"type": "text", "value": text}
    imgs = [{"type": "image", "value": str(p)} for p in images]
    return [t, *imgs] if style == "internvl" else [*imgs, t]


def build_message(benchmark: Any, row: Mapping[str, Any], style: str = "default",
                  images: Iterable[Any] = ()) -> list[dict[str, Any]]:
    """VLMEvalKit's message list for `row`: images then the text (InternVL puts its text first, as upstream)."""
    return message(build_prompt(benchmark, row, style), style, images)


__all__ = ["PROMPT_STYLES", "build_prompt", "build_message", "message", "mcq_prompt", "question_prompt",
           "vqa_prompt"]
