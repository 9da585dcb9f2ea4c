"""AI2D_TEST scoring as VLMEvalKit does it (`ImageMCQDataset.evaluate` + `utils/multiple_choice.py`).

    res = score_ai2d(data, make_judge("none"), prefix=Path("outputs/m_AI2D_TEST"))
    # -> outputs/m_AI2D_TEST_exact_matching_result.xlsx (hit, log) and outputs/m_AI2D_TEST_acc.csv
    AI2D                  # the benchmark's registry entry (config.BENCHMARKS "ai2d"): dataset, prompt, scorer

Vanilla (not circular) evaluation, one row one hit. The reply's option is found by `can_infer` (letter, then
option text). Rows it cannot place go to the judge with the verbatim MCQ matching prompt, parsed again with
`can_infer`, up to 3 tries; after 3 failures upstream picks at random from the options and Z — here the pick is
seeded (seed, index) and logged. Without a judge an unplaced reply is Z (wrong), as under VLMEvalKit's
`exact_matching` policy. The accuracy table has one row per `split` (`none` when absent), `Overall` and one
column per `l2-category` / `category` value, as fractions 0-1 (the returned dict reports percent).
The returned dict also carries the score's uncertainty over items and the facts that flag a degenerate score
(`choice_uncertainty`: binomial stderr, 95% Wilson interval, the extracted answers' entropy and top share,
chance), all percent like `overall` except the entropy (bits) and the share (0-1).
"""
from __future__ import annotations

import logging
import random
import string
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..uncertainty import accuracy_uncertainty, answer_distribution, chance_accuracy
from ._judging import ask_rounds, available
from .benchmark import VLMEVALKIT_URL, VLMBenchmark
from .fixtures import world_fixture
from .matching import FAIL_MSG, build_choices, build_option_str, can_infer, cn_string
from .prompts import mcq_prompt
from .tsv import write_table

log = logging.getLogger(__name__)

JUDGE_TRIES = 3
EXACT_MATCHING_LOG = "Failed in Prefetch, no GPT-based answer matching under `exact_matching` policy."
RANDOM_LOG = "Failed to predict, thus randomly generate one. "
# MMBench ability abbreviations that report_acc applies to category names (none occur in AI2D)
MMB_ABBRS = {
    "coarse_perception": "CP", "finegrained_perception (instance-level)": "FP-S",
    "finegrained_perception (cross-instance)": "FP-C", "logic_reasoning": "LR", "relation_reasoning": "RR",
    "attribute_reasoning": "AR",
}

MATCH_PROMPT = (
    "You are an AI assistant who will help me to match "
    "an answer with several options of a single-choice question. "
    "You are provided with a question, several options, and an answer, "
    "and you need to find which option is most similar to the answer. "
    "If the meaning of all options are significantly different from the answer, output Z. "
    "Your should output a single uppercase character in A, B, C, D (if they are valid options), and Z. \n"
    "Example 1: \n"
    "Question: What is the main object in image?\nOptions: A. teddy bear B. rabbit C. cat D. dog\n"
    "Answer: a cute teddy bear\nYour output: A\n"
    "Example 2: \n"
    "Question: What is the main object in image?\nOptions: A. teddy bear B. rabbit C. cat D. dog\n"
    "Answer: Spider\nYour output: Z\n"
    "Example 3: \n"
    "Question: {}?\nOptions: {}\nAnswer: {}\nYour output: "
)
MATCH_PROMPT_CN = (
    "你是一个帮助我匹配答案与单选题中多个选项的 AI 助手。"
    "你会被提供：一个问题，多个选项，一个答案。你的任务是找到与答案意义最相近的选项。"
    "如果所有选项的意义都与答案显著不同，则输出 Z。"
    "你应该输出一个单个的大写字母，例如 A, B, C, D（如果它们是有效选项），或 Z。"
    "例 1:"
    "问题: 图中最主要的物体是什么?\n选项: A. 泰迪熊 B. 兔子 C. 猫 D. 狗\n答案: 一只可爱的泰迪熊\n输出: A\n"
    "例 2: \n"
    "问题: 图中最主要的物体是什么?\n选项: A. 泰迪熊 B. 兔子 C. 猫 D. 狗\n答案: 蜘蛛\n输出: Z\n"
    "例 3: \n"
    "问题: {}?\n选项: {}\n答案: {}\n输出: "
)


def judge_prompt(question: Any, choices: dict, prediction: str) -> str:
    """The verbatim MCQ matching prompt (the Chinese one for questions with CJK characters)."""
    tmpl = MATCH_PROMPT_CN if cn_string(question) else MATCH_PROMPT
    return tmpl.format(question, build_option_str(choices), prediction)


def prepare(data: pd.DataFrame) -> pd.DataFrame:
    """Upstream's preprocessing: sorted by index, predictions as str, non-option column names lower-cased."""
    df = data.sort_values(by="index", kind="stable").reset_index(drop=True)
    df["prediction"] = df["prediction"].astype(str)
    return df.rename(columns={c: (c if c in string.ascii_uppercase else str(c).lower()) for c in df.columns})


def extract(data: pd.DataFrame, judge: Any, seed: int = 0) -> tuple[list[str], list[str], dict[str, Any]]:
    """(option per row, match log per row, stats): can_infer, then the judge (3 tries), then a seeded pick."""
    n = len(data)
    opts: list[str | None] = [None] * n
    logs: list[str] = [""] * n
    choices = [build_choices(data.iloc[i]) for i in range(n)]
    preds = data["prediction"].tolist()
    for i in range(n):
        ret = can_infer(preds[i], choices[i])
        if ret:
            opts[i], logs[i] = ret, preds[i]
    todo = [i for i in range(n) if opts[i] is None]
    stats: dict[str, Any] = {"matched_exactly": n - len(todo), "judge_matched": 0, "random_choices": []}
    if not available(judge):
        for i in todo:
            opts[i], logs[i] = "Z", EXACT_MATCHING_LOG
        return opts, logs, stats  # type: ignore[return-value]
    prompts = {i: judge_prompt(data.iloc[i]["question"], choices[i], preds[i]) for i in todo}

    def accept(i: int, _try: int, ans) -> bool:
        if isinstance(ans, Exception) or FAIL_MSG in ans:
            log.warning("AI2D judge %s failed to answer for index %s: %s", judge.name, data.iloc[i]["index"], ans)
            return False
        ret = can_infer(ans, choices[i])
        if not ret:
            log.warning("AI2D judge %s: cannot infer an option from %r (choices %s)", judge.name, ans,
                        sorted(choices[i]))
            return False
        opts[i], logs[i] = ret, ans
        stats["judge_matched"] += 1
        return True

    todo = ask_rounds(judge, prompts, [None] * JUDGE_TRIES, accept)  # upstream: 3 tries, default temperature
    for i in todo:
        idx = data.iloc[i]["index"]
        pool = list(choices[i]) + (["Z"] if "Z" not in choices[i] else [])
        pick = random.Random(f"{seed}:{idx}").choice(pool)  # upstream: rd.choice, unseeded
        opts[i], logs[i] = pick, RANDOM_LOG
        stats["random_choices"].append({"index": idx, "choice": pick})
        log.warning("AI2D: judge %s could not place index %s in %d tries; picked %s at random (seed %s)",
                    judge.name, idx, JUDGE_TRIES, pick, seed)
    return opts, logs, stats  # type: ignore[return-value]


def report_acc(df: pd.DataFrame) -> pd.DataFrame:
    """One row per split: Overall and per-(l2-)category mean hit, fractions 0-1 (VLMEvalKit's report_acc)."""
    split = df["split"].astype(str) if "split" in df else pd.Series(["none"] * len(df), index=df.index)
    splits = sorted(set(split))
    res: dict[str, list] = {"split": splits, "Overall": [_mean(df["hit"][split == sp]) for sp in splits]}
    for group in ("l2-category", "category"):
        if group not in df:
            continue
        values = df[group].astype(str)
        for ab in sorted(set(values)):
            sub = values == ab
            res[MMB_ABBRS.get(ab, ab)] = [_mean(df["hit"][sub & (split == sp)]) for sp in splits]
    return pd.DataFrame(res)


def _mean(s: pd.Series) -> float:
    return float(np.mean(s)) if len(s) else float("nan")


def choice_uncertainty(hits: list, answers: list, n_options: list[int]) -> dict[str, Any]:
    """Uncertainty and degeneracy facts of a multiple-choice accuracy, percent like `overall`.

    `stderr` binomial, 100·sqrt(p(1-p)/n); `ci_low` / `ci_high` the 95% Wilson interval (`ci_method` "wilson");
    over the extracted `answers` (option letters, "Z" for unplaced: a category of its own): `answer_entropy`
    (bits), `top_answer`, `top_answer_share` (fraction 0-1), `answer_counts`; `chance` the expected accuracy of
    a uniform random guess, 100 · mean over items of 1/(number of options).
    """
    dist = answer_distribution(answers)
    chance = chance_accuracy(n_options)
    return {**accuracy_uncertainty(hits, scale=100.0), "answer_entropy": dist["entropy_bits"],
            "top_answer": dist["top"], "top_answer_share": dist["top_share"], "answer_counts": dist["counts"],
            "chance": 100.0 * chance if chance == chance else None}


def score_ai2d(data: pd.DataFrame, judge: Any, *, prefix: Path | None = None, judge_tag: str | None = None,
               seed: int = 0) -> dict[str, Any]:
    """Score merged predictions (dataset columns + `prediction`); write the result and acc files under `prefix`."""
    df = prepare(data)
    opts, logs, stats = extract(df, judge, seed=seed)
    gt = df["answer"].astype(str).tolist()
    df["hit"] = [int(o == g) for o, g in zip(opts, gt)]
    df["log"] = [f"Match Log: {m}. " for m in logs]
    acc = report_acc(df)
    name = judge.name  # NoJudge is named "exact_matching"
    tag = judge_tag or name
    files = {}
    if prefix is not None:
        files["result"] = str(write_table(df, Path(f"{prefix}_{tag}_result.xlsx")))
        files["acc"] = str(write_table(acc, Path(f"{prefix}_acc.csv")))
    overall = float(np.mean(df["hit"])) if len(df) else float("nan")
    breakdown: dict[str, float] = {}
    for group in ("l2-category", "category"):
        if group in df:
            for ab, sub in df.groupby(df[group].astype(str), sort=True):
                breakdown[MMB_ABBRS.get(ab, ab)] = 100.0 * float(sub["hit"].mean())
    out = {"judge": name, "overall": 100.0 * overall, "overall_fraction": overall, "breakdown": breakdown,
           "n": len(df), "status": "scored", "files": files, "seed": seed, **stats,
           "acc_table": acc.to_dict(orient="records"),
           **choice_uncertainty(df["hit"].tolist(), opts, [len(build_choices(df.iloc[i])) for i in range(len(df))])}
    if len(acc) > 1:
        out["splits"] = {str(r["split"]): 100.0 * float(r["Overall"]) for r in acc.to_dict(orient="records")}
    return out


AI2D = VLMBenchmark(
    "ai2d", summary="AI2D_TEST, VLMEvalKit's TSV and scoring", dataset="AI2D_TEST",
    max_new_tokens=16,  # a letter or a short option text
    required=("question", "answer"), prompt=mcq_prompt, scorers={"vlmevalkit": score_ai2d},
    fixture=world_fixture("ai2d"), multiple_choice=True,
    url=VLMEVALKIT_URL.format("AI2D_TEST"), md5="0f593e0d1c7df9a3d69bf1f947e71975")
