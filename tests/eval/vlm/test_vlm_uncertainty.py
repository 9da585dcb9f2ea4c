"""Uncertainty and degeneracy facts in the VLM score summaries (issue 27): stderr, 95% interval, answer
distribution of the extracted answers, chance, missing predictions; and that result.json keeps them."""
import math
import re

import numpy as np
import pandas as pd
import pytest

from suite.eval.benchmarks import summary
from suite.eval.uncertainty import wilson_interval
from suite.eval.vlm import load_dataset, score, write_predictions, write_vlm_fixture
from suite.eval.vlm.mathvista import choices_of


def _preds(root, bench, fill):
    df = load_dataset(bench, root).drop(columns=["image"])
    df["prediction"] = [fill(r) for _, r in df.iterrows()]
    return df


def _check_binomial(res, hits: int, n: int):
    p = hits / n
    assert res["overall"] == pytest.approx(100 * p)
    assert res["stderr"] == pytest.approx(100 * math.sqrt(p * (1 - p) / n))
    low, high = wilson_interval(hits, n)
    assert res["ci_low"] == pytest.approx(100 * low) and res["ci_high"] == pytest.approx(100 * high)
    assert res["ci_method"] == "wilson" and res["ci_low"] <= res["overall"] <= res["ci_high"]


def test_ai2d_constant_answers_have_zero_entropy(tmp_path):
    write_vlm_fixture(tmp_path, "ai2d", n=20)
    path = write_predictions(_preds(tmp_path, "ai2d", lambda r: "B"), tmp_path / "const_AI2D_TEST.xlsx")
    res = score("ai2d", path, data_root=tmp_path)
    data = load_dataset("ai2d", tmp_path)
    right = int((data["answer"] == "B").sum())
    assert 0 < right < 20                                   # the fixture's answers vary: the score is not 0
    _check_binomial(res, right, 20)
    assert res["answer_entropy"] == 0.0 and res["top_answer"] == "B" and res["top_answer_share"] == 1.0
    assert res["answer_counts"] == {"B": 20}
    assert res["chance"] == pytest.approx(25.0)             # four options on every fixture item
    assert res["n_missing"] == 0
    # what result.json keeps (benchmarks.summary): the new keys travel with the score
    kept = summary(res)
    for key in ("overall", "stderr", "ci_low", "ci_high", "ci_method", "answer_entropy", "top_answer",
                "top_answer_share", "chance", "n_missing", "answer_counts"):
        assert kept[key] == res[key], key


def test_ai2d_uniform_answers_and_unplaced_and_missing_ones(tmp_path):
    write_vlm_fixture(tmp_path, "ai2d", n=20)
    res = score("ai2d", _preds(tmp_path, "ai2d", lambda r: "ABCD"[r["index"] % 4]), data_root=tmp_path)
    assert res["answer_entropy"] == pytest.approx(2.0) and res["top_answer_share"] == 0.25
    assert res["top_answer"] == "A"                          # ties: the first letter
    # unplaceable replies are Z, a category of their own; empty and missing predictions are counted
    replies = ["A", "B", "hmm, hard to say really", "", None] * 4
    preds = _preds(tmp_path, "ai2d", lambda r: replies[r["index"]])
    res = score("ai2d", preds, data_root=tmp_path)
    assert res["n_missing"] == 8
    assert res["answer_counts"] == {"A": 4, "B": 4, "Z": 12}
    assert res["top_answer"] == "Z" and res["top_answer_share"] == pytest.approx(0.6)
    p = np.array([0.2, 0.2, 0.6])
    assert res["answer_entropy"] == pytest.approx(float(-(p * np.log2(p)).sum()))


def test_ai2d_chance_follows_the_number_of_options(tmp_path):
    write_vlm_fixture(tmp_path, "ai2d", n=8)
    tsv = tmp_path / "AI2D_TEST.tsv"
    raw = pd.read_csv(tsv, sep="\t")
    # items 0-3 keep two options (A, B): their chance is 1/2; the answer must stay among them
    two = raw["index"] < 4
    raw.loc[two, ["C", "D"]] = np.nan
    raw.loc[two, "answer"] = "A"
    raw.to_csv(tsv, sep="\t", index=False)
    res = score("ai2d", _preds(tmp_path, "ai2d", lambda r: "A"), data_root=tmp_path)
    assert res["chance"] == pytest.approx(100 * (4 * 0.5 + 4 * 0.25) / 8)


def test_mathvista_letters_chance_and_stderr_both_scorers(tmp_path):
    write_vlm_fixture(tmp_path, "mathvista", n=14)
    data = load_dataset("mathvista", tmp_path)
    mc = (data["question_type"] == "multi_choice").to_numpy()
    assert 0 < mc.sum() < 14

    def reply(r):  # every multiple-choice reply is "(A)"; free-form ones exact (prefetched without a judge)
        return "(A)" if r["question_type"] == "multi_choice" else r["answer"]

    expect_chance = 100 * np.mean([1 / len(choices_of(r)) if m else 0.0 for (_, r), m in zip(data.iterrows(), mc)])
    for scorer in ("vlmevalkit", "mathvista_official"):
        res = score("mathvista", _preds(tmp_path, "mathvista", reply), data_root=tmp_path, scorer=scorer)
        assert res["n_multiple_choice"] == int(mc.sum()), scorer
        assert res["answer_counts"] == {"A": int(mc.sum())}, scorer
        assert res["answer_entropy"] == 0.0 and res["top_answer"] == "A" and res["top_answer_share"] == 1.0
        assert res["chance"] == pytest.approx(expect_chance), scorer
        _check_binomial(res, res["hit"], 14)
        assert res["n_missing"] == 0


def test_mathvista_unread_multiple_choice_replies_are_z(tmp_path):
    write_vlm_fixture(tmp_path, "mathvista", n=14)
    data = load_dataset("mathvista", tmp_path)
    n_mc = int((data["question_type"] == "multi_choice").sum())
    res = score("mathvista", _preds(tmp_path, "mathvista", lambda r: ""), data_root=tmp_path)
    assert res["n_missing"] == 14 and res["answer_counts"] == {"Z": n_mc} and res["overall"] == 0.0
    assert res["stderr"] == 0.0 and res["ci_low"] == 0.0 and res["ci_high"] > 0.0
    # the official rules read an empty reply as "" and normalize it to the nearest option (what it grades)
    official = score("mathvista", _preds(tmp_path, "mathvista", lambda r: ""), data_root=tmp_path,
                     scorer="mathvista_official")
    assert official["n_missing"] == 14 and sum(official["answer_counts"].values()) == n_mc
    assert "Z" not in official["answer_counts"]


def test_mmvet_graded_stderr_and_normal_interval(tmp_path, scripted_judge):
    write_vlm_fixture(tmp_path, "mmvet", n=8)
    preds = _preds(tmp_path, "mmvet", lambda r: f"pred-{r['index']}" if r["index"] != 3 else "")
    grades = [0.0, 0.3, 1.0, 0.5, 0.8, 1.0, 0.0, 0.6]

    def reply(body):
        text = body["messages"][-1]["content"]
        if text == "Reply with OK.":
            return "OK"
        m = re.search(r"\| pred-(\d+) \| $", text)
        return str(grades[int(m.group(1))] if m else grades[3])

    s = scripted_judge(reply)
    res = score("mmvet", preds, data_root=tmp_path, judge=s.judge(tmp_path))
    assert res["overall"] == pytest.approx(100 * np.mean(grades))
    se = 100 * np.std(grades, ddof=1) / math.sqrt(8)
    assert res["stderr"] == pytest.approx(se) and res["ci_method"] == "normal"
    assert res["ci_low"] == pytest.approx(res["overall"] - 1.959963984540054 * se)
    assert res["ci_high"] == pytest.approx(res["overall"] + 1.959963984540054 * se)
    assert res["n_missing"] == 1
    assert "chance" not in res and "answer_entropy" not in res   # open answers: no letters, no uniform guess
    # without a judge: not scored, and no uncertainty either
    bare = score("mmvet", preds, data_root=tmp_path)
    assert bare["stderr"] is None and bare["ci_low"] is None and bare["n_missing"] == 1
