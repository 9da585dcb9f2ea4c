"""MathVista_MINI scoring: VLMEvalKit's (`MathVista` + `utils/mathvista.py`) and the official normalization.

    res = score_mathvista(data, judge, prefix=Path("outputs/m_MathVista_MINI"))
    # -> outputs/m_MathVista_MINI_<judge>.xlsx (res, log) and ..._<judge>_score.csv
    res = score_mathvista_official(data, judge, prefix=...)   # -> ..._<judge>_official.xlsx / _official_score.csv

VLMEvalKit (scorer "vlmevalkit"):
- Prefetch, no LLM (`post_check(prefetch=True)`): multi_choice takes whatever option `can_infer` finds (right or
  wrong: the letter becomes `res`); integer / float succeed only when int(pred) == int(answer) /
  float(pred) == float(answer). A prefetched value of 0 is falsy, so it goes to the judge (upstream quirk).
- Otherwise the judge extracts the answer with the verbatim in-context prompt (5 examples; "Model respone: "
  typo; no newline before "Extracted answer:"), max_tokens 128, retried at temperature 0.5, 1.0, ... only when
  the call fails; after 5 failures `res` is "".
- Correct (`post_check(prefetch=False)` on `res`): multi_choice `can_infer(res) == answer_option`; integer
  `int(res) == int(answer)`; float exact equality (no rounding to `precision`); text/list never (upstream
  compares str(None)). Table: Overall, then each task and skill in order of appearance; Task&Skill, tot, prefetch,
  hit, prefetch_rate, acc (percent).
- Without a judge only the prefetch runs: the result is labelled "prefetch_only" with its prefetch rate.

Official (scorer "mathvista_official", lupantech/MathVista evaluation/calculate_score.py):
- Extraction: the official rule-based step (a reply equal to a choice; int(reply); float(reply)), then the
  VLMEvalKit prefetch / judge extraction above.
- Normalization: multi_choice takes the letter from "(X)", maps letters to option text, else the option nearest
  in Levenshtein distance; integer `str(int(float(x)))`; float `str(round(float(x), precision))`; list `str(x)`;
  then string equality with `answer`. Same table shape as above.
- Without a judge, a reply neither rule reads is wrong (the official pipeline would have asked its LLM; the
  nearest option to an empty extraction would be a free guess), and the result is labelled "prefetch_only".

Both summaries carry the accuracy's uncertainty over items and the degeneracy facts (`uncertainty`): binomial
stderr and 95% Wilson interval over all items, chance (free-form items count 0), and the distribution of the
option letters the multiple-choice replies were read as.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from ..uncertainty import accuracy_uncertainty, answer_distribution, chance_accuracy
from ._judging import RISING_TEMPERATURES, ask_rounds, available
from .benchmark import VLMEVALKIT_URL, VLMBenchmark
from .fixtures import world_fixture
from .matching import FAIL_MSG, _isna, can_infer
from .prompts import vqa_prompt
from .tsv import write_table

JUDGE_MAX_TOKENS = 128
TEMPERATURES = RISING_TEMPERATURES
PREFETCH_LOG = "Prefetch succeed"
NO_JUDGE_LOG = "Failed in Prefetch, no judge for answer extraction under `exact_matching` policy."
PREFETCH_ONLY_NOTE = ("prefetch-only: no judge, so only the rule-based prefetch scored; replies it could not "
                      "read count as wrong (VLMEvalKit requires an LLM judge for MathVista)")

ICE_EXAMPLES = (
    """
Hint: Please answer the question requiring an integer answer and provide the final value,
e.g., 1, 2, 3, at the end.\n
Question: Which number is missing?\n
Model response: The number missing in the sequence is 14.\n
Extracted answer: 14
""",
    """
Hint: Please answer the question requiring a floating-point number with one decimal place and provide the final value,
e.g., 1.2, 1.3, 1.4, at the end.\n
Question: What is the fraction of females facing the camera?\n
Model response: The fraction of females facing the camera is 0.6,
which means that six out of ten females in the group are facing the camera.\n
Extracted answer: 0.6
""",
    """
Hint: Please answer the question requiring a floating-point number with two decimal places and provide the final value,
e.g., 1.23, 1.34, 1.45, at the end.\n
Question: How much money does Luca need to buy a sour apple candy and a butter-scotch candy? (Unit: $)\n
Model response: Luca needs $1.45 to buy a sour apple candy and a butterscotch candy.\n
Extracted answer: 1.45
""",
    """
Hint: Please answer the question requiring a Python list as an answer and provide the final list,
e.g., [1, 2, 3], [1.2, 1.3, 1.4], at the end.\n
Question: Between which two years does the line graph saw its maximum peak?\n
Model response: The line graph saw its maximum peak between 2007 and 2008.\n
Extracted answer: [2007, 2008]
""",
    """
Hint: Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end.\n
Question: What fraction of the shape is blue?\n
Choices: (A) 3/11 (B) 8/11 (C) 6/11 (D) 3/5\n
Model response: The correct answer is (B) 8/11.\n
Extracted answer: B
""",
)
TASK_DESCRIPTION = """
Please read the following example.
Then extract the answer from the model response and type it at the end of the prompt.\n
"""


def extraction_prompt(row: Mapping[str, Any]) -> str:
    prompt = TASK_DESCRIPTION + "".join(ex + "\n" for ex in ICE_EXAMPLES)
    return prompt + str(row["question"]) + "\n" + "Model respone: " + str(row["prediction"]) + "Extracted answer:"


def choices_of(row: Mapping[str, Any]) -> list:
    """The `choices` column, a Python list literal (upstream eval()s it; literal_eval is the safe equivalent)."""
    value = row.get("choices")
    if isinstance(value, (list, tuple)):
        return list(value)
    return list(ast.literal_eval(str(value)))


def _letters(choices: list) -> dict[str, Any]:
    return {chr(65 + i): v for i, v in enumerate(choices)}


def post_check(row: Mapping[str, Any], response: Any, prefetch: bool = False) -> Any:
    """VLMEvalKit's post_check: with prefetch, the value read from the reply (falsy when none); else a bool."""
    res: Any = None
    ans: Any = row["answer"]
    try:
        if row["question_type"] == "multi_choice":
            ans = row["answer_option"]
            res = can_infer(response, _letters(choices_of(row)))
            if prefetch:
                return res
        elif row["answer_type"] == "integer":
            res, ans = int(response), int(row["answer"])
        elif row["answer_type"] == "float":
            res, ans = float(response), float(row["answer"])
        else:
            res, ans = str(res), str(ans)  # upstream quirk: text / list answers compare str(None)
    except (ValueError, TypeError, SyntaxError):
        pass
    if res == ans:
        return res if prefetch else True
    return False


def extract(data: pd.DataFrame, judge: Any) -> tuple[list[Any], list[str], list[bool]]:
    """(res, log, prefetched) per row: prefetch, then judge extraction (retried only when a call fails)."""
    n = len(data)
    res: list[Any] = [""] * n
    logs = [""] * n
    pre = [False] * n
    todo = []
    for i in range(n):
        row = data.iloc[i]
        got = post_check(row, row["prediction"], prefetch=True)
        if got:
            res[i], logs[i], pre[i] = got, PREFETCH_LOG, True
        else:
            todo.append(i)
    if not available(judge):
        for i in todo:
            logs[i] = NO_JUDGE_LOG
        return res, logs, pre
    prompts = {i: extraction_prompt(data.iloc[i]) for i in todo}

    def accept(i: int, i_try: int, out) -> bool:  # any answer is the extraction; only a failed call retries
        if isinstance(out, Exception) or FAIL_MSG in out:
            logs[i] += f"Try {i_try}: output is {data.iloc[i]['prediction']}, failed to parse.\n"
            return False
        res[i] = out
        logs[i] += "Succeed"
        return True

    for i in ask_rounds(judge, prompts, TEMPERATURES, accept, max_tokens=JUDGE_MAX_TOKENS):
        logs[i] += "All 5 retries failed.\n"
        res[i] = ""
    return res, logs, pre


def _skills(value: Any) -> list:
    if isinstance(value, (list, tuple)):
        return list(value)
    if _isna(value):
        return []
    try:
        out = ast.literal_eval(str(value))
    except (ValueError, SyntaxError):
        return [value]
    return list(out) if isinstance(out, (list, tuple)) else [out]


def acc_table(data: pd.DataFrame, hits: list[bool], prefetched: list[bool]) -> pd.DataFrame:
    """MathVista_acc: Overall, then tasks and skills in order of first appearance."""
    tot: dict[str, int] = {"Overall": 0}
    fetch: dict[str, int] = {}
    hit: dict[str, int] = {}
    for i in range(len(data)):
        row = data.iloc[i]
        cate, skills = row["task"], _skills(row["skills"])
        keys = ["Overall", *skills, cate]
        for k in keys:
            tot[k] = tot.get(k, 0) + 1
        for k in keys:
            if prefetched[i]:
                fetch[k] = fetch.get(k, 0) + 1
            if hits[i]:
                hit[k] = hit.get(k, 0) + 1
    def pct(count: int, t: int) -> float:
        return count / t * 100 if t else float("nan")  # an empty predictions table: Overall has no rows

    rows = [{"Task&Skill": k, "tot": t, "prefetch": fetch.get(k, 0), "hit": hit.get(k, 0),
             "prefetch_rate": pct(fetch.get(k, 0), t), "acc": pct(hit.get(k, 0), t)} for k, t in tot.items()]
    return pd.DataFrame(rows, columns=["Task&Skill", "tot", "prefetch", "hit", "prefetch_rate", "acc"])


def _summary(table: pd.DataFrame, name: str, n: int, prefetch_only: bool, files: dict) -> dict[str, Any]:
    overall = table.iloc[0] if n else None
    acc = float(overall["acc"]) if overall is not None else float("nan")
    out = {"judge": name, "overall": acc, "overall_fraction": acc / 100,
           "breakdown": {str(r["Task&Skill"]): float(r["acc"]) for r in table.to_dict(orient="records")[1:]},
           "n": n, "status": "prefetch_only" if prefetch_only else "scored",
           "prefetch": int(overall["prefetch"]) if overall is not None else 0,
           "hit": int(overall["hit"]) if overall is not None else 0,
           "prefetch_rate": float(overall["prefetch_rate"]) if overall is not None else float("nan"),
           "files": files, "score_table": table.to_dict(orient="records")}
    if prefetch_only:
        out["reason"] = PREFETCH_ONLY_NOTE
    return out


def score_mathvista(data: pd.DataFrame, judge: Any, *, prefix: Path | None = None, judge_tag: str | None = None,
                    seed: int = 0) -> dict[str, Any]:
    df = data.reset_index(drop=True).copy()
    res, logs, pre = extract(df, judge)
    df["res"], df["log"] = res, logs
    hits = [bool(post_check(df.iloc[i], res[i], prefetch=False)) for i in range(len(df))]
    # the option letter each multiple-choice reply was read as (what post_check grades); "Z" when none
    letters = [(can_infer(res[i], _letters(choices_of(df.iloc[i]))) or "Z")
               if df.iloc[i]["question_type"] == "multi_choice" else None for i in range(len(df))]
    return _finish(df, acc_table(df, hits, pre), judge, prefix, judge_tag, extra=uncertainty(df, hits, letters))


def uncertainty(df: pd.DataFrame, hits: list[bool], letters: list[str | None]) -> dict[str, Any]:
    """The accuracy's uncertainty over items and the facts that flag a degenerate score, percent like `overall`.

    Over all items: `stderr` binomial, 100·sqrt(p(1-p)/n); `ci_low` / `ci_high` the 95% Wilson interval
    (`ci_method` "wilson"); `chance` the expected accuracy of a uniform random guess, 100 · mean over items of
    1/(number of choices), free-form items counting 0. Over the multiple-choice items only (`letters[i]` None
    for the others; "Z" for a reply read as no option, a category of its own): `answer_entropy` (bits),
    `top_answer`, `top_answer_share` (fraction 0-1), `answer_counts`, `n_multiple_choice`.
    """
    mc = [i for i, letter in enumerate(letters) if letter is not None]
    dist = answer_distribution([letters[i] for i in mc])
    chance = chance_accuracy([len(choices_of(df.iloc[i])) if letters[i] is not None else 0 for i in range(len(df))])
    return {**accuracy_uncertainty(hits, scale=100.0), "chance": 100.0 * chance if chance == chance else None,
            "answer_entropy": dist["entropy_bits"], "top_answer": dist["top"], "top_answer_share": dist["top_share"],
            "answer_counts": dist["counts"], "n_multiple_choice": len(mc)}


def _finish(df: pd.DataFrame, table: pd.DataFrame, judge: Any, prefix: Path | None, judge_tag: str | None,
            suffix: str = "", extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write `{prefix}_{judge}{suffix}.xlsx` and `..._score.csv` (when prefix is given); the summary."""
    files = {}
    if prefix is not None:
        stem = f"{prefix}_{judge_tag or judge.name}{suffix}"
        files["result"] = str(write_table(df, Path(f"{stem}.xlsx")))
        files["score"] = str(write_table(table, Path(f"{stem}_score.csv")))
    return {**_summary(table, judge.name, len(df), not available(judge), files), **(extra or {})}


# ----------------------------------------------------------------------------- official normalization


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions of one character each cost 1)."""
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def _precision(value: Any) -> int | None:
    if value is None or _isna(value):
        return None
    return int(float(value))


def normalize_extracted_answer(extraction: Any, choices: list, question_type: str, answer_type: str,
                               precision: int | None) -> str | None:
    """The official MathVista normalization of an extracted answer to the answer's type (a string, or None)."""
    if question_type == "multi_choice":
        text = extraction.strip() if isinstance(extraction, str) else ("" if extraction is None else str(extraction))
        letter = re.findall(r"\(([a-zA-Z])\)", text)
        if letter:
            text = letter[0].upper()
        options = [chr(ord("A") + i) for i in range(len(choices))]
        if text in options:
            return str(choices[options.index(text)])
        dists = [levenshtein(text, str(c)) for c in choices]
        return str(choices[dists.index(min(dists))])
    try:
        if answer_type == "integer":
            return str(int(float(extraction)))
        if answer_type == "float":
            return str(round(float(extraction), precision))
        if answer_type == "list":
            return str(extraction)
    except (ValueError, TypeError, OverflowError):
        return None
    return extraction


def official_quick_extract(row: Mapping[str, Any]) -> str | None:
    """The rule-based part of the official extract_answer (no LLM): None when the rules do not apply."""
    response = row["prediction"]
    if _isna(response):
        return None
    response = str(response)
    if response == "":
        return ""
    if row["question_type"] == "multi_choice" and response in [str(c) for c in choices_of(row)]:
        return response
    if row["answer_type"] == "integer":
        try:
            return str(int(response))
        except ValueError:
            pass
    if row["answer_type"] == "float":
        try:
            return str(float(response))
        except ValueError:
            pass
    return None


def _answer_str(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def score_mathvista_official(data: pd.DataFrame, judge: Any, *, prefix: Path | None = None,
                             judge_tag: str | None = None, seed: int = 0) -> dict[str, Any]:
    df = data.reset_index(drop=True).copy()
    quick = [official_quick_extract(df.iloc[i]) for i in range(len(df))]
    need = [i for i, q in enumerate(quick) if q is None]
    res, logs, pre = extract(df.iloc[need].reset_index(drop=True), judge) if need else ([], [], [])
    extraction: list[Any] = list(quick)
    log_col = ["Official quick extract"] * len(df)
    prefetched = [q is not None for q in quick]
    for k, i in enumerate(need):
        extraction[i], log_col[i], prefetched[i] = res[k], logs[k], pre[k]
    normalized, hits = [], []
    for i in range(len(df)):
        row = df.iloc[i]
        if log_col[i] == NO_JUDGE_LOG:  # never extracted: wrong (not the option nearest to "")
            normalized.append(None)
            hits.append(False)
            continue
        choices = choices_of(row) if row["question_type"] == "multi_choice" else []
        norm = normalize_extracted_answer(extraction[i], choices, row["question_type"], row["answer_type"],
                                          _precision(row.get("precision")))
        normalized.append(norm)
        hits.append(norm == _answer_str(row["answer"]))
    df["res"], df["log"], df["normalized"], df["hit"] = extraction, log_col, normalized, [int(h) for h in hits]
    letters = [_option_letter(normalized[i], choices_of(df.iloc[i]))
               if df.iloc[i]["question_type"] == "multi_choice" else None for i in range(len(df))]
    return _finish(df, acc_table(df, hits, prefetched), judge, prefix, judge_tag, suffix="_official",
                   extra=uncertainty(df, hits, letters))


def _option_letter(normalized: str | None, choices: list) -> str:
    """The letter of the (first) choice whose text the official normalization returned; "Z" for none."""
    texts = [str(c) for c in choices]
    return chr(65 + texts.index(normalized)) if normalized in texts else "Z"


MATHVISTA = VLMBenchmark(
    "mathvista", summary="MathVista_MINI, VLMEvalKit's TSV; answer extraction by a judge",
    dataset="MathVista_MINI", max_new_tokens=1024,
    required=("question", "answer", "question_type", "answer_type", "choices", "answer_option", "task", "skills"),
    prompt=vqa_prompt, scorers={"vlmevalkit": score_mathvista, "mathvista_official": score_mathvista_official},
    fixture=world_fixture("mathvista"),
    url=VLMEVALKIT_URL.format("MathVista_MINI"), md5="f199b98e178e5a2a20e7048f5dcb0464")


__all__ = ["MATHVISTA", "score_mathvista", "score_mathvista_official", "post_check", "normalize_extracted_answer",
           "extraction_prompt", "levenshtein"]
