"""`suite score` through its own add_parser on a fresh argparse parser (the main CLI hooks it in elsewhere)."""
import argparse
import json

import pandas as pd
import pytest

from suite.eval.vlm import load_dataset, write_predictions, write_vlm_fixture
from suite.eval.vlm.cli import add_parser


def run(argv):
    parser = argparse.ArgumentParser(prog="suite")
    add_parser(parser.add_subparsers(dest="cmd", required=True))
    args = parser.parse_args(argv)
    return args.fn(args)


@pytest.fixture
def fixture_preds(tmp_path):
    write_vlm_fixture(tmp_path / "lmu", "ai2d", n=8)
    write_vlm_fixture(tmp_path / "lmu", "mathvista", n=7)
    df = load_dataset("ai2d", tmp_path / "lmu").drop(columns=["image"])
    df["prediction"] = ["A", "B", "C", "D", "Cannot determine the answer", "?", df["answer"][6], df["answer"][7]]
    path = write_predictions(df, tmp_path / "preds" / "toy_AI2D_TEST.xlsx")
    return tmp_path, path, df


def test_score_json(fixture_preds, capsys):
    tmp, path, df = fixture_preds
    rc = run(["score", "--benchmark", "ai2d", "--predictions", str(path), "--data-root", str(tmp / "lmu"),
              "--out", str(tmp / "scores"), "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out)[:5] == ["benchmark", "judge", "overall", "breakdown", "n"]
    expect = 100 * (sum(p == a for p, a in zip(df["prediction"], df["answer"])) / 8)
    assert out["benchmark"] == "ai2d" and out["judge"] == "exact_matching" and out["n"] == 8
    assert out["overall"] == pytest.approx(expect) and isinstance(out["breakdown"], dict)
    assert (tmp / "scores" / "toy_AI2D_TEST_exact_matching_result.xlsx").exists()
    assert (tmp / "scores" / "toy_AI2D_TEST_acc.csv").exists()


def test_wired_into_the_suite_command(fixture_preds, capsys):
    from suite.cli import main

    tmp, path, _ = fixture_preds
    assert main(["score", "--benchmark", "ai2d", "--predictions", str(path), "--data-root", str(tmp / "lmu"),
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 8


def test_score_text_says_prefetch_only(fixture_preds, capsys):
    tmp, _, _ = fixture_preds
    df = load_dataset("mathvista", tmp / "lmu").drop(columns=["image"]).assign(prediction="3")
    df[["index", "prediction"]].to_csv(tmp / "mv.csv", index=False)  # a minimal file from another tool
    assert run(["score", "--benchmark", "MathVista_MINI", "--predictions", str(tmp / "mv.csv"),
                "--data-root", str(tmp / "lmu"), "--model-name", "other"]) == 0
    text = capsys.readouterr().out
    assert "judge exact_matching" in text and "PREFETCH-ONLY (prefetch rate" in text
    assert (tmp / "other_MathVista_MINI_exact_matching_score.csv").exists()


def test_score_errors_are_clear(fixture_preds, capsys):
    tmp, path, df = fixture_preds
    assert run(["score", "--benchmark", "ai2d", "--predictions", str(tmp / "missing.xlsx")]) == 2
    assert "suite score: error: predictions file " in capsys.readouterr().err
    df.drop(columns=["prediction"]).to_csv(tmp / "nopred.tsv", sep="\t", index=False)
    assert run(["score", "--benchmark", "ai2d", "--predictions", str(tmp / "nopred.tsv"),
                "--data-root", str(tmp / "lmu")]) == 2
    err = capsys.readouterr().err
    assert "nopred.tsv: missing column(s) 'prediction'" in err and "needs 'index', 'prediction'" in err
    assert run(["score", "--benchmark", "ai2dd", "--predictions", str(path)]) == 2
    assert "did you mean 'ai2d'" in capsys.readouterr().err
    df[["index", "prediction"]].to_csv(tmp / "minimal.csv", index=False)
    assert run(["score", "--benchmark", "mmvet", "--predictions", str(tmp / "minimal.csv"),
                "--data-root", str(tmp / "lmu")]) == 2
    err = capsys.readouterr().err
    assert "minimal.csv lacks column(s) 'question', 'answer', 'category'" in err and "MMVet.tsv does not exist" in err
    assert run(["score", "--benchmark", "ai2d", "--predictions", str(path), "--judge", "opneai:x"]) == 2
    assert "did you mean 'openai'" in capsys.readouterr().err
    pd.DataFrame({"index": [1]}).to_json(tmp / "bad.json", orient="records")
    assert run(["score", "--benchmark", "ai2d", "--predictions", str(tmp / "bad.json")]) == 2
    assert "bad.json: missing column(s) 'prediction'" in capsys.readouterr().err
