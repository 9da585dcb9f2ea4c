"""Each benchmark end to end on fixture files: without a judge, and with a scripted loopback judge."""
import re

import pandas as pd
import pytest

from suite.eval.judges import JudgeError
from suite.eval.vlm import load_dataset, score, write_predictions, write_vlm_fixture


def _preds(root, bench, fill):
    """Dataset columns minus image, plus `prediction` from `fill(row)`."""
    df = load_dataset(bench, root).drop(columns=["image"])
    df["prediction"] = [fill(r) for _, r in df.iterrows()]
    return df


# ------------------------------------------------------------------------------------------------ AI2D


def _ai2d_reply(r):
    i = r["index"]
    wrong = next(k for k in "ABCD" if k != r["answer"])
    return [r["answer"],                                  # the letter
            f"It is the {r[r['answer']]}",                # option text only
            "Cannot determine the answer",                # refusal -> Z
            f"{wrong}",                                   # a wrong letter
            "hmm, hard to say really"][i % 5]             # unplaceable -> judge or Z


def test_ai2d_exact_matching(tmp_path):
    write_vlm_fixture(tmp_path, "ai2d", n=20)
    path = write_predictions(_preds(tmp_path, "ai2d", _ai2d_reply), tmp_path / "out" / "toy_AI2D_TEST.xlsx",
                             prompt_style="default")
    res = score("ai2d", path, data_root=tmp_path)
    assert res["benchmark"] == "ai2d" and res["judge"] == "exact_matching" and res["status"] == "scored"
    assert res["n"] == 20 and res["model"] == "toy" and res["prompt_style"] == "default"
    assert res["overall"] == pytest.approx(35.0) and res["overall_fraction"] == pytest.approx(0.35)
    assert set(res["breakdown"]) == {"shapeOfColor", "colorOfShape", "countShapes", "shapePosition"}
    assert res["random_choices"] == [] and res["matched_exactly"] == 15
    out = tmp_path / "out"
    result = pd.read_excel(out / "toy_AI2D_TEST_exact_matching_result.xlsx")
    assert list(result.columns) == ["index", "question", "A", "B", "C", "D", "answer", "category", "prediction",
                                    "prompt_style", "hit", "log"]
    # letter / option text / refusal (Z) / wrong letter / unplaceable; "It is the 1" (row 6) is longer than
    # twice the options' text ("1", "2", "4", "3"), so upstream's length guard leaves it unplaced
    assert result["hit"].tolist() == [1, 1, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0]
    assert result["prediction"][6] == "It is the 1" and result["log"][6] == result["log"][4]
    assert result["log"][4] == ("Match Log: Failed in Prefetch, no GPT-based answer matching under "
                                "`exact_matching` policy.. ")
    assert result["log"][2] == "Match Log: Cannot determine the answer. "  # matched Z; the log is the reply
    acc = pd.read_csv(out / "toy_AI2D_TEST_acc.csv")
    assert list(acc.columns) == ["split", "Overall", "colorOfShape", "countShapes", "shapeOfColor",
                                 "shapePosition"]
    assert acc["split"].tolist() == ["none"] and acc["Overall"][0] == pytest.approx(0.35)  # fractions 0-1
    assert res["files"]["acc"] == str(out / "toy_AI2D_TEST_acc.csv")


def test_ai2d_judge_fallback_then_seeded_random_pick(tmp_path, scripted_judge):
    write_vlm_fixture(tmp_path, "ai2d", n=10)

    def reply(body):
        text = body["messages"][-1]["content"]
        if text == "Reply with OK.":
            return "OK"
        return "B" if text.rsplit("Answer: ", 1)[1].startswith("It is the") else "no idea"

    s = scripted_judge(reply)
    preds = _preds(tmp_path, "ai2d", _ai2d_reply)
    res = score("ai2d", preds, data_root=tmp_path, judge=s.judge(tmp_path), out_dir=tmp_path / "o", model_name="m")
    asked = [p for p in s.prompts() if p != "Reply with OK."]
    # rows 4 and 9 ("hmm, ...") and row 6 ("It is the 1": too long for the numeric options) go to the judge
    assert len(asked) == 3 and all(p.startswith("You are an AI assistant who will help me to match") for p in asked)
    assert all("?\nOptions: There are several options: \nA. " in p for p in asked)
    assert res["judge"] == "judge-model" and res["judge_matched"] == 1 and res["matched_exactly"] == 7
    # "no idea" 3 times (tries 2 and 3 are cache hits: the same request at temperature 0), then a seeded pick
    assert [r["index"] for r in res["random_choices"]] == [4, 9]
    result = pd.read_excel(tmp_path / "o" / "m_AI2D_TEST_judge-model_result.xlsx")
    assert result["log"][6] == "Match Log: B. " and result["hit"][6] == int(result["answer"][6] == "B")
    assert result["log"][4] == "Match Log: Failed to predict, thus randomly generate one. . "
    n = len(s.requests)
    again = score("ai2d", preds, data_root=tmp_path, judge=s.judge(tmp_path), out_dir=tmp_path / "o2", seed=0)
    assert again["random_choices"] == res["random_choices"]          # seeded: the same pick every time
    assert len(s.requests) == n                                      # and no new judge calls: all cached
    picks = {r["choice"] for k in range(8)
             for r in score("ai2d", preds, data_root=tmp_path, judge=s.judge(tmp_path), seed=k)["random_choices"]}
    assert len(picks) > 1 and picks <= {"A", "B", "C", "D", "Z"}


# ----------------------------------------------------------------------------------------------- MM-Vet


def test_mmvet_without_judge_is_not_scored(tmp_path):
    write_vlm_fixture(tmp_path, "mmvet", n=8)
    path = write_predictions(_preds(tmp_path, "mmvet", lambda r: r["answer"]), tmp_path / "x_MMVet.tsv")
    res = score("mmvet", path, data_root=tmp_path)
    assert res["overall"] is None and res["status"] == "not_scored" and res["judge"] == "exact_matching"
    assert "requires an LLM judge" in res["reason"] and res["files"] == {}
    assert res["breakdown"] == dict.fromkeys(["rec", "ocr", "know", "gen", "spat", "math"])
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("x_MMVet")) == ["x_MMVet.tsv"]


def test_mmvet_grading_retries_at_rising_temperature(tmp_path, scripted_judge):
    write_vlm_fixture(tmp_path, "mmvet", n=8)
    preds = _preds(tmp_path, "mmvet", lambda r: f"pred-{r['index']}")

    def reply(body):
        text, t = body["messages"][-1]["content"], body["temperature"]
        if text == "Reply with OK.":
            return "OK"
        i = int(re.search(r"\| pred-(\d+) \| $", text).group(1))
        if i == 0:    # garbage, then out of range, then a score
            return {0.0: "the answer is good", 0.5: "1.7"}.get(t, "0.8")
        if i == 1:
            return "never a number"
        if i == 2 and t == 0.0:
            raise RuntimeError("server down")  # HTTP 500 at T=0: a failed try, then fine at 0.5
        return "1.0" if i % 2 else "0.0"

    s = scripted_judge(reply)
    res = score("mmvet", preds, data_root=tmp_path, judge=s.judge(tmp_path), out_dir=tmp_path, model_name="m")
    temps = {}
    for body in s.requests:
        m = re.search(r"\| pred-(\d+) \| $", body["messages"][-1]["content"])
        if m:
            temps.setdefault(int(m.group(1)), []).append(body["temperature"])
    assert temps[0] == [0.0, 0.5, 1.0]
    assert temps[1] == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert temps[2] == [0.0, 0.5] and all(temps[i] == [0.0] for i in range(3, 8))
    out = pd.read_excel(tmp_path / "m_MMVet_judge-model.xlsx")
    assert out["score"].tolist() == [0.8, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0]
    assert out["log"][2].startswith("Try 0: output is Failed to obtain answer via API (judge judge-model: gave up "
                                    "after 1 tries; last: HTTP 500")
    assert out["log"][2].endswith("failed to parse.\nSucceed")
    assert out["log"][0] == ("Try 0: output is the answer is good, failed to parse.\n"
                             "Try 1: output is 1.7, invalid score: 1.7.\nSucceed")
    assert out["log"][1].endswith("Try 4: output is never a number, failed to parse.\nAll 5 retries failed.\n")
    assert res["failed"] == 1 and res["status"] == "scored" and res["judge"] == "judge-model"
    # per-capability aggregation: a sample counts where its category string contains the capability
    cats = out["category"].tolist()
    for cap in ("rec", "ocr", "math", "spat", "know", "gen"):
        sel = [s_ for s_, c in zip(out["score"], cats) if cap in c]
        assert res["breakdown"][cap] == pytest.approx(100 * sum(sel) / len(sel))
    assert res["overall"] == pytest.approx(100 * out["score"].mean())
    table = pd.read_csv(tmp_path / "m_MMVet_judge-model_score.csv")
    assert list(table.columns) == ["Category", "tot", "acc"]
    assert table["Category"].tolist() == ["rec", "ocr", "know", "gen", "spat", "math", "Overall"]
    fine = pd.read_csv(tmp_path / "m_MMVet_judge-model_score_fine.csv")
    assert fine["Category"].tolist()[-1] == "Overall" and "ocr_math" in fine["Category"].tolist()
    # re-scoring resumes from the judge cache: only the call that failed (row 2 at T=0) is asked again
    n = len(s.requests)
    again = score("mmvet", preds, data_root=tmp_path, judge=s.judge(tmp_path), out_dir=tmp_path / "again")
    assert len(s.requests) == n + 1 and again["overall"] == res["overall"]


# -------------------------------------------------------------------------------------------- MathVista


def _mv_reply(r):
    i = r["index"]
    if r["question_type"] == "multi_choice":
        return r["answer_option"] if i % 2 == 0 else "(A)"          # right letter / possibly wrong letter
    if r["answer_type"] == "integer":
        return r["answer"] if i % 2 == 0 else f"The answer is {r['answer']}."
    if r["answer_type"] == "float":
        return f"{float(r['answer']) + 0.004:.3f}"                # right only after rounding to precision
    return r["answer"]                                             # lists: exact


def test_mathvista_prefetch_only_without_judge(tmp_path):
    write_vlm_fixture(tmp_path, "mathvista", n=14)
    preds = _preds(tmp_path, "mathvista", _mv_reply)
    res = score("mathvista", preds, data_root=tmp_path, out_dir=tmp_path, model_name="m")
    assert res["status"] == "prefetch_only" and res["judge"] == "exact_matching" and "prefetch-only" in res["reason"]
    table = pd.read_csv(tmp_path / "m_MathVista_MINI_exact_matching_score.csv")
    assert list(table.columns) == ["Task&Skill", "tot", "prefetch", "hit", "prefetch_rate", "acc"]
    assert table["Task&Skill"].tolist()[0] == "Overall" and "figure question answering" in table["Task&Skill"].tolist()
    data = load_dataset("mathvista", tmp_path)
    mc = data["question_type"] == "multi_choice"
    ints = data["answer_type"] == "integer"
    even = data["index"] % 2 == 0
    expect_prefetch = int(mc.sum() + (ints & even).sum())          # letters always prefetch; ints when exact
    expect_hit = int((mc & (even | (data["answer_option"] == "A"))).sum() + (ints & even).sum())
    assert res["prefetch"] == expect_prefetch and res["hit"] == expect_hit
    assert res["prefetch_rate"] == pytest.approx(100 * expect_prefetch / 14)
    assert res["overall"] == pytest.approx(100 * expect_hit / 14)
    result = pd.read_excel(tmp_path / "m_MathVista_MINI_exact_matching.xlsx")
    assert {"res", "log"} <= set(result.columns)
    assert set(result["log"]) == {"Prefetch succeed",
                                  "Failed in Prefetch, no judge for answer extraction under `exact_matching` policy."}


def test_mathvista_judge_extraction_and_official_scorer(tmp_path, scripted_judge):
    write_vlm_fixture(tmp_path, "mathvista", n=14)
    preds = _preds(tmp_path, "mathvista", _mv_reply)
    seen = []

    def reply(body):
        text = body["messages"][-1]["content"]
        if text == "Reply with OK.":
            return "OK"
        seen.append(body)
        response = text.rsplit("Model respone: ", 1)[1][: -len("Extracted answer:")]
        nums = re.findall(r"\[.*\]|\d+\.\d+|\d+", response)
        return nums[-1] if nums else response

    s = scripted_judge(reply)
    res = score("mathvista", preds, data_root=tmp_path, judge=s.judge(tmp_path), out_dir=tmp_path, model_name="m")
    assert res["status"] == "scored" and res["judge"] == "judge-model"
    assert all(b["max_tokens"] == 128 and b["temperature"] == 0.0 for b in seen)
    assert all(b["messages"][-1]["content"].endswith("Extracted answer:") for b in seen)
    data = load_dataset("mathvista", tmp_path)
    mc, ints = data["question_type"] == "multi_choice", data["answer_type"] == "integer"
    expect = int((mc & ((data["index"] % 2 == 0) | (data["answer_option"] == "A"))).sum() + ints.sum())
    assert res["hit"] == expect      # odd ints extracted by the judge; floats (+0.004) and lists never count
    official = score("mathvista", preds, data_root=tmp_path, judge=s.judge(tmp_path), out_dir=tmp_path,
                     model_name="m", scorer="mathvista_official")
    floats, lists = data["answer_type"] == "float", data["answer_type"] == "list"
    assert official["hit"] == expect + int(floats.sum() + lists.sum())  # rounding to precision; lists compare
    assert official["scorer"] == "mathvista_official" and official["overall"] > res["overall"]
    result = pd.read_excel(tmp_path / "m_MathVista_MINI_judge-model_official.xlsx")
    assert {"res", "log", "normalized", "hit"} <= set(result.columns)
    assert (tmp_path / "m_MathVista_MINI_judge-model_official_score.csv").exists()
    assert (tmp_path / "m_MathVista_MINI_judge-model_score.csv").exists()


def test_official_scorer_without_judge_is_prefetch_only(tmp_path):
    write_vlm_fixture(tmp_path, "mathvista", n=7)
    preds = _preds(tmp_path, "mathvista", _mv_reply)
    res = score("mathvista", preds, data_root=tmp_path, scorer="mathvista_official")
    data = load_dataset("mathvista", tmp_path)
    # the official rules read neither "The answer is 8." nor a list (those need its LLM); floats are rounded
    odd_int = (data["answer_type"] == "integer") & (data["index"] % 2 == 1)
    lists = data["answer_type"] == "list"
    assert res["status"] == "prefetch_only" and res["hit"] == 7 - int(odd_int.sum()) - int(lists.sum())
    assert res["hit"] == res["prefetch"]


# ------------------------------------------------------------------------------------------- plumbing


def test_minimal_predictions_are_merged_with_the_dataset(tmp_path):
    write_vlm_fixture(tmp_path, "ai2d", n=6)
    data = load_dataset("ai2d", tmp_path)
    minimal = pd.DataFrame({"index": data["index"], "prediction": data["answer"]})
    minimal.to_json(tmp_path / "p.jsonl", orient="records", lines=True)
    res = score("ai2d", tmp_path / "p.jsonl", data_root=tmp_path, out_dir=tmp_path / "o")
    assert res["overall"] == 100.0 and res["model"] == "p" and res["n"] == 6
    with pytest.raises(ValueError, match=r"1 index value\(s\) not in .*AI2D_TEST.tsv \(e.g. \[99\]\)"):
        score("ai2d", pd.DataFrame({"index": [99], "prediction": ["A"]}), data_root=tmp_path)
    with pytest.raises(FileNotFoundError, match="lacks column.*'question', 'answer'.*MMVet.tsv does not exist"):
        score("mmvet", minimal, data_root=tmp_path)
    with pytest.raises(Exception, match="unknown scorer 'oficial'.*valid: vlmevalkit"):
        score("ai2d", minimal, data_root=tmp_path, scorer="oficial")


def test_a_broken_judge_is_an_error_not_exact_matching(tmp_path):
    write_vlm_fixture(tmp_path, "ai2d", n=3)
    preds = _preds(tmp_path, "ai2d", lambda r: "?")
    judge = {"kind": "openai", "model": "down", "base_url": "http://127.0.0.1:9/v1", "retries": 0,
             "timeout_s": 2, "cache_dir": str(tmp_path / "c")}
    with pytest.raises(JudgeError, match="judge 'down' is not working.*--judge none"):
        score("ai2d", preds, data_root=tmp_path, judge=judge)


def test_ai2d_acc_table_has_a_row_per_split(tmp_path):
    from suite.eval.vlm.ai2d import report_acc

    df = pd.DataFrame({"split": ["dev", "dev", "test", "test"], "category": ["a", "b", "a", "a"],
                       "hit": [1, 0, 1, 0]})
    acc = report_acc(df)
    assert list(acc.columns) == ["split", "Overall", "a", "b"] and acc["split"].tolist() == ["dev", "test"]
    assert acc["Overall"].tolist() == [0.5, 0.5] and acc["a"].tolist() == [1.0, 0.5]
    assert acc["b"][0] == 0.0 and pd.isna(acc["b"][1])  # no "b" rows in test: NaN, as np.mean([]) upstream
    # a dataset table with predictions added (image bytes and all) scores too, without writing the bytes
    write_vlm_fixture(tmp_path, "ai2d", n=4)
    table = load_dataset("ai2d", tmp_path)
    res = score("ai2d", table.assign(prediction=table["answer"]), data_root=tmp_path, out_dir=tmp_path / "o")
    assert res["overall"] == 100.0 and res["model"] == "model"
    assert "image" not in pd.read_excel(tmp_path / "o" / "model_AI2D_TEST_exact_matching_result.xlsx").columns


def test_xlsx_numeric_predictions_are_not_truncated_to_ints(tmp_path):
    # regression: an xlsx whose predictions all looked numeric came back as floats, and int(9.5) == 9 scored
    # "9.5" as right for the integer answer 9 (upstream: int("9.5") fails, so the row is wrong)
    write_vlm_fixture(tmp_path, "mathvista", n=14)
    data = load_dataset("mathvista", tmp_path).drop(columns=["image"])
    ints = data[data["answer_type"] == "integer"].assign(prediction=lambda d: d["answer"] + ".5")
    path = write_predictions(ints, tmp_path / "m_MathVista_MINI.xlsx")
    res = score("mathvista", path, data_root=tmp_path)
    assert res["n"] == len(ints) > 0 and res["hit"] == 0 and res["prefetch"] == 0


def test_empty_predictions_do_not_divide_by_zero(tmp_path):
    # regression: MathVista's table divided by Overall's count, 0 for an empty predictions table
    for bench in ("ai2d", "mathvista", "mmvet"):
        write_vlm_fixture(tmp_path, bench, n=3)
        res = score(bench, pd.DataFrame({"index": [], "prediction": []}), data_root=tmp_path)
        assert res["n"] == 0 and res["overall"] is None, bench


def test_string_ids_and_missing_dataset_columns(tmp_path):
    # regression: a dataset with string ids, and a predictions subset whose ids all look like integers (cast to
    # int on reading) matched nothing
    write_vlm_fixture(tmp_path, "ai2d", n=4)
    tsv = tmp_path / "AI2D_TEST.tsv"
    raw = pd.read_csv(tsv, sep="\t", dtype=str)
    raw["index"] = ["10", "11", "12", "x13"]
    raw.loc[raw["image"].str.len() <= 64, "image"] = raw["image"][0]  # references named the old ids
    raw.to_csv(tsv, sep="\t", index=False)
    res = score("ai2d", pd.DataFrame({"index": [10, 11], "prediction": [raw["answer"][0], raw["answer"][1]]}),
                data_root=tmp_path)
    assert res["n"] == 2 and res["overall"] == 100.0
    # regression: a benchmark TSV without a column the scorer reads was a bare KeyError; now the file and the
    # expected columns are named
    raw.drop(columns=["answer"]).to_csv(tsv, sep="\t", index=False)
    with pytest.raises(ValueError, match=r"AI2D_TEST.tsv \(merged with predictions DataFrame\): missing column\(s\) "
                                         r"'answer'; expected index, question, answer, prediction"):
        score("ai2d", pd.DataFrame({"index": [10], "prediction": ["A"]}), data_root=tmp_path)


def test_a_judge_that_dies_after_its_check_is_an_error_not_zeros(tmp_path, scripted_judge):
    # working() answers (and is cached), then every grading request fails: no table of 0.0 scores
    write_vlm_fixture(tmp_path, "mmvet", n=4)
    preds = _preds(tmp_path, "mmvet", lambda r: f"pred-{r['index']}")

    def reply(body):
        if body["messages"][-1]["content"] == "Reply with OK.":
            return "OK"
        raise RuntimeError("server gone")

    s = scripted_judge(reply)
    with pytest.raises(JudgeError, match="all 4 requests failed"):
        score("mmvet", preds, data_root=tmp_path, judge=s.judge(tmp_path), out_dir=tmp_path, model_name="m")
