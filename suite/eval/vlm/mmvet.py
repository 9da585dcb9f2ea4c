"""MM-Vet scoring as VLMEvalKit does it (`MMVet.evaluate` + `utils/mmvet.py`): an LLM grades every answer.

    res = score_mmvet(data, make_judge("openai:gpt-4-turbo"), prefix=Path("outputs/m_MMVet"))
    # -> outputs/m_MMVet_gpt-4-turbo.xlsx (score, log), ..._score.csv (Category, tot, acc), ..._score_fine.csv

The judge sees VLMEvalKit's copy of the official few-shot grading table (verbatim, hard line-wraps included)
followed by `question | ground truth | prediction | `. Its reply must parse as a float in [0, 1]; otherwise it is
asked again at temperature 0.5, 1.0, 1.5, 2.0 (5 tries, then 0.0 with "All 5 retries failed."). One pass only.
Capability accuracy counts a sample for rec/ocr/know/gen/spat/math when its `category` string contains the
name; the fine table has one row per exact category combination. Scores are percent (upstream's x100).
One deliberate difference: upstream tallies capabilities and combinations in one dict, which counts a sample
whose category is exactly one capability ("rec") twice in that capability's row; here it counts once, as in
the official MM-Vet evaluator (Overall is the same either way).

There is no judge-free MM-Vet (VLMEvalKit asserts a working judge): without one the result is "not scored".

Uncertainty over items (percent like `overall`): `stderr` = 100 · sample SD (ddof=1) of the item grades / sqrt(n),
`ci_low` / `ci_high` = overall ± 1.96 · stderr (`ci_method` "normal": grades are not 0/1, so no Wilson interval).
There is no `chance` for open answers graded by a judge (a uniform guess is not defined).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from ..uncertainty import graded_uncertainty
from ._judging import RISING_TEMPERATURES, ask_rounds, available
from .benchmark import VLMEVALKIT_URL, VLMBenchmark
from .fixtures import world_fixture
from .matching import FAIL_MSG
from .prompts import question_prompt
from .tsv import write_table

CAPABILITIES = ("rec", "ocr", "know", "gen", "spat", "math")
TEMPERATURES = RISING_TEMPERATURES  # try i runs at i * 0.5
NOT_SCORED_REASON = ("MM-Vet has no judge-free score: VLMEvalKit requires an LLM judge to grade open answers "
                     "(it asserts a working judge). Pass a judge, e.g. --judge openai:gpt-4-turbo (VLMEvalKit's "
                     "default, = gpt-4-1106-preview), a local OpenAI-compatible server, or hf:PATH_OR_ID.")

GRADING_PROMPT = """
Compare the ground truth and prediction from AI models, to give a correctness score for the prediction.
<AND> in the ground truth means it is totally right
only when all elements in the ground truth are present in the prediction,
and <OR> means it is totally right when any one element in the ground truth is present in the prediction.
The correctness score is 0.0 (totally wrong), 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, or 1.0 (totally right).
Just complete the last space of the correctness score.

Question | Ground truth | Prediction | Correctness
--- | --- | --- | ---
What is x in the equation? | -1 <AND> -5 | x = 3 | 0.0
What is x in the equation? | -1 <AND> -5 | x = -1 | 0.5
What is x in the equation? | -1 <AND> -5 | x = -5 | 0.5
What is x in the equation? | -1 <AND> -5 | x = -5 or 5 | 0.5
What is x in the equation? | -1 <AND> -5 | x = -1 or x = -5 | 1.0
Can you explain this meme? | This meme is poking fun at the fact that the names of the countries
Iceland and Greenland are misleading. Despite its name, Iceland is known for its beautiful green landscapes,
while Greenland is mostly covered in ice and snow. The meme is saying that the person has trust issues
because the names of these countries do not accurately represent their landscapes. |
The meme talks about Iceland and Greenland. It's pointing out that despite their names,
Iceland is not very icy and Greenland isn't very green. | 0.4
Can you explain this meme? | This meme is poking fun at the fact that the names of the countries
Iceland and Greenland are misleading. Despite its name, Iceland is known for its beautiful green landscapes,
while Greenland is mostly covered in ice and snow. The meme is saying that the person has trust issues
because the names of these countries do not accurately represent their landscapes. |
The meme is using humor to point out the misleading nature of Iceland's and Greenland's names.
Iceland, despite its name, has lush green landscapes while Greenland is mostly covered in ice and snow.
The text 'This is why I have trust issues' is a playful way to suggest
that these contradictions can lead to distrust or confusion.
The humor in this meme is derived from the unexpected contrast between the names of the countries
and their actual physical characteristics. | 1.0
"""


def grading_prompt(row: Any) -> str:
    gt = str(row["answer"]).replace("<AND>", " <AND> ").replace("<OR>", " <OR> ")
    return GRADING_PROMPT + "\n" + " | ".join([str(row["question"]), gt, str(row["prediction"]), ""])


def parse_score(output: str) -> float | None:
    """float(output) as upstream; None when it does not parse (NaN is refused too, upstream would keep it)."""
    try:
        value = float(output)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def grade(data: pd.DataFrame, judge: Any) -> tuple[list[float], list[str]]:
    """(score, log) per row: up to 5 tries at rising temperature, a failed parse or range asks again."""
    n = len(data)
    prompts = [grading_prompt(data.iloc[i]) for i in range(n)]
    scores: list[float | None] = [None] * n
    logs = [""] * n

    def accept(i: int, i_try: int, out) -> bool:
        if isinstance(out, Exception):
            logs[i] += f"Try {i_try}: output is {FAIL_MSG} ({out}), failed to parse.\n"
            return False
        value = parse_score(out)
        if value is None:
            logs[i] += f"Try {i_try}: output is {out}, failed to parse.\n"
            return False
        if value < 0 or value > 1:
            logs[i] += f"Try {i_try}: output is {out}, invalid score: {value}.\n"
            return False
        logs[i] += "Succeed"
        scores[i] = value
        return True

    for i in ask_rounds(judge, dict(enumerate(prompts)), TEMPERATURES, accept):
        logs[i] += "All 5 retries failed.\n"
        scores[i] = 0.0
    return scores, logs  # type: ignore[return-value]


def mmvet_acc(data: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(capability table, fine table): Category, tot, acc (percent); `Overall` last in both.

    Each sample counts once for each capability its category string contains, and once for its exact
    combination. (VLMEvalKit keeps both in one dict, so a sample whose category is exactly "rec" is counted
    twice in the "rec" row; the official MM-Vet evaluator counts it once, as here. Overall is unaffected.)
    """
    def tally(pairs):
        tot: dict[str, int] = {}
        total: dict[str, float] = {}
        for key, grade in pairs:
            tot[key] = tot.get(key, 0) + 1
            total[key] = total.get(key, 0.0) + grade
        return tot, total

    cats = data["category"].astype(str).tolist()
    grades = data["score"].astype(float).tolist()
    fine = list(dict.fromkeys(c.replace(",", "_") for c in cats))
    cap_tot, cap_sum = tally([(capa, g) for c, g in zip(cats, grades) for capa in CAPABILITIES if capa in c]
                             + [("Overall", g) for g in grades])
    fine_tot, fine_sum = tally([(c.replace(",", "_"), g) for c, g in zip(cats, grades)]
                               + [("Overall", g) for g in grades])

    def table(keys, tot, total):
        rows = [{"Category": k, "tot": tot.get(k, 0),
                 "acc": total[k] / tot[k] * 100 if tot.get(k) else float("nan")} for k in keys]
        return pd.DataFrame(rows, columns=["Category", "tot", "acc"])

    return (table([*CAPABILITIES, "Overall"], cap_tot, cap_sum), table([*fine, "Overall"], fine_tot, fine_sum))


def score_mmvet(data: pd.DataFrame, judge: Any, *, prefix: Path | None = None, judge_tag: str | None = None,
                seed: int = 0) -> dict[str, Any]:
    df = data.reset_index(drop=True).copy()
    if not available(judge):
        return {"judge": judge.name, "overall": None, "overall_fraction": None,
                "breakdown": {c: None for c in CAPABILITIES}, "n": len(df), "status": "not_scored",
                "reason": NOT_SCORED_REASON, "files": {}, "stderr": None, "ci_low": None, "ci_high": None}
    scores, logs = grade(df, judge)
    df["score"], df["log"] = scores, logs
    cap, fine = mmvet_acc(df)
    files = {}
    if prefix is not None:
        stem = f"{prefix}_{judge_tag or judge.name}"
        files["result"] = str(write_table(df, Path(f"{stem}.xlsx")))
        files["score"] = str(write_table(cap, Path(f"{stem}_score.csv")))
        files["score_fine"] = str(write_table(fine, Path(f"{stem}_score_fine.csv")))
    acc = dict(zip(cap["Category"], cap["acc"]))
    overall = acc["Overall"]
    return {"judge": judge.name, "overall": overall, "overall_fraction": overall / 100,
            "breakdown": {c: acc[c] for c in CAPABILITIES}, "n": len(df), "status": "scored", "files": files,
            "breakdown_fine": dict(zip(fine["Category"], fine["acc"])),
            "failed": sum(1 for m in logs if m.endswith("All 5 retries failed.\n")),
            "score_table": cap.to_dict(orient="records"), **graded_uncertainty(scores, scale=100.0)}


MMVET = VLMBenchmark(
    "mmvet", summary="MM-Vet, VLMEvalKit's TSV; GPT-4-style judge", dataset="MMVet", max_new_tokens=1024,
    required=("question", "answer", "category"), prompt=question_prompt, scorers={"vlmevalkit": score_mmvet},
    fixture=world_fixture("mmvet"), judge="required",
    url=VLMEVALKIT_URL.format("MMVet"), md5="748aa6d4aa9d4de798306a63718455e3")
