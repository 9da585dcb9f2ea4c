"""A new VLMEvalKit-format benchmark is one object: defined here, registered, then scored by `suite score`, listed
and run by `suite eval`, prompted and written as a fixture, with no other file edited (issue 29, item 5).

The toy benchmark: TOY_MCQ.tsv, 4 multiple-choice questions about the colour of a square, in VLMEvalKit's TSV
format (base64 PNG images, one row reusing another's image by index, options in columns A-D, letter answers).
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pandas as pd
import pytest

from suite.config import BENCHMARKS, config_from_dict, parse_benchmarks
from suite.eval.vlm import (VLMBenchmark, build_prompt, encode_image, get_benchmark, load_dataset, mcq_prompt,
                            write_predictions, write_vlm_fixture)
from suite.eval.vlm.ai2d import score_ai2d

COLORS = {"red": (220, 40, 40), "green": (40, 160, 70), "blue": (40, 80, 220), "yellow": (230, 200, 30)}
# (index, colour drawn, image reused from index, options A-D, answer)
ROWS = [(1, "red", None, ("red", "green", "blue", "yellow"), "A"),
        (2, "blue", None, ("green", "blue", "red", "yellow"), "B"),
        (3, "blue", 2, ("yellow", "red", "blue", "green"), "C"),   # same picture as index 2, by reference
        (4, "yellow", None, ("blue", "green", "red", "yellow"), "D")]


def write_toy(root, n=None, seed=0, image_size=64) -> Path:
    """<root>/TOY_MCQ.tsv: the fixture writer the entry declares."""
    from PIL import Image

    rows = []
    for index, color, ref, options, answer in ROWS[: n or len(ROWS)]:
        image = str(ref) if ref else encode_image(Image.new("RGB", (image_size, image_size), COLORS[color]))
        rows.append({"index": index, "image": image, "question": "What colour is the square?",
                     **dict(zip("ABCD", options)), "answer": answer, "category": "colour"})
    path = Path(root) / "TOY_MCQ.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, sep="\t", index=False)
    return path


def score_first_letter(data, judge, *, prefix=None, judge_tag=None, seed=0) -> dict:
    """A scorer of its own: the reply's first character is the option letter."""
    hits = [str(p).strip()[:1].upper() == a for p, a in zip(data["prediction"], data["answer"])]
    return {"judge": "first_letter", "overall": 100.0 * sum(hits) / len(hits), "breakdown": {}, "n": len(hits)}


# the one module a new benchmark needs would hold just this object (and its scorer, if VLMEvalKit's do not fit)
TOY = VLMBenchmark("toy-mcq", summary="four colour questions in VLMEvalKit's MCQ format", dataset="TOY_MCQ",
                   max_new_tokens=4, required=("question", "answer"), prompt=mcq_prompt,
                   scorers={"vlmevalkit": score_ai2d, "first_letter": score_first_letter},
                   fixture=write_toy, multiple_choice=True)


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """TOY registered for this test only (the registry's table is restored afterwards); its TSV under lmu/."""
    BENCHMARKS.names()  # the plugins (the built-in entries among them) load before the table is copied
    monkeypatch.setattr(BENCHMARKS, "_items", dict(BENCHMARKS._items))
    BENCHMARKS.register("toy-mcq", TOY)
    root = tmp_path / "lmu"
    assert write_vlm_fixture(root, "toy-mcq") == root / "TOY_MCQ.tsv"
    return root


def test_found_by_name_and_dataset_with_its_prompt_and_fixture(toy):
    assert get_benchmark("toy-mcq") is get_benchmark("TOY_MCQ") is get_benchmark("toymcq") is TOY
    data = load_dataset("TOY_MCQ", toy)
    assert list(data["index"]) == [1, 2, 3, 4] and data["image"][2] == data["image"][1]  # the reference resolved
    row = data.iloc[0].to_dict()
    assert build_prompt("toy-mcq", row) == ("Question: What colour is the square?\nOptions:\nA. red\nB. green\n"
                                            "C. blue\nD. yellow\nPlease select the correct answer from the options "
                                            "above. \n")
    assert build_prompt("toy-mcq", row, "internvl").endswith("Answer with the option's letter from the given "
                                                             "choices directly.")


def test_suite_score_scores_it(toy, tmp_path, capsys):
    from suite.cli import main

    preds = load_dataset("TOY_MCQ", toy).drop(columns=["image"])
    preds["prediction"] = ["A", "The answer is B. blue", "yellow", "Cannot tell"]  # right, right, A: wrong, unplaced
    path = write_predictions(preds, tmp_path / "out" / "m_TOY_MCQ.xlsx")
    argv = ["score", "--benchmark", "toy-mcq", "--predictions", str(path), "--data-root", str(toy), "--json"]
    assert main(argv) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["benchmark"] == "toy-mcq" and res["dataset"] == "TOY_MCQ" and res["judge"] == "exact_matching"
    assert res["overall"] == 50.0 and res["n"] == 4 and res["chance"] == 25.0  # 4 options each
    assert res["answer_counts"] == {"A": 2, "B": 1, "Z": 1} and res["breakdown"] == {"colour": 50.0}
    assert (tmp_path / "out" / "m_TOY_MCQ_acc.csv").exists()
    assert main([*argv, "--scorer", "first_letter"]) == 0
    assert json.loads(capsys.readouterr().out)["overall"] == 25.0  # only "A" starts with its letter
    assert main([*argv, "--scorer", "first"]) == 2
    assert "unknown scorer 'first' for toy-mcq" in capsys.readouterr().err


def test_suite_eval_lists_accepts_and_runs_it(toy, tmp_path, capsys):
    from suite.data.tokenizers import train_bpe
    from suite.eval.run import add_parser, evaluate
    from suite.models.vlm import build_vlm

    parser = argparse.ArgumentParser(prog="suite")
    add_parser(parser.add_subparsers(dest="cmd"))
    with pytest.raises(SystemExit):
        parser.parse_args(["eval", "--help"])
    assert "mmlu,ai2d,mmvet,mathvista,heldout,toy-mcq" in " ".join(capsys.readouterr().out.split())
    assert parse_benchmarks("heldout,toy-mcq") == ("heldout", "toy-mcq")
    cfg = config_from_dict({"name": "c", "student": "tiny-0.1M", "method": "supervised",
                            "eval": {"benchmarks": ["toy-mcq", "ai2d"]}}, "toy.yaml")
    assert cfg.eval.benchmarks == ("toy-mcq", "ai2d")

    rows = load_dataset("TOY_MCQ", toy).to_dict("records")
    vlm = build_vlm("tiny-qwen2vl", tokenizer=train_bpe([TOY.build_prompt(r) for r in rows] * 5, vocab_size=300),
                    seed=0)
    res = evaluate(vlm, ["toy-mcq"], out_dir=tmp_path / "ev", data_root=toy, judge="none", batch_size=2,
                   model_name="tiny", progress=False)["toy-mcq"]
    assert res["n"] == 4 and res["judge"] == "exact_matching" and res["chance"] == 25.0
    assert 0.0 <= res["overall"] <= 100.0 and res["prompt_style"] == "default"
    assert os.path.basename(res["predictions"]) == "tiny_TOY_MCQ.xlsx"
    assert json.loads((tmp_path / "ev" / "eval.json").read_text())["benchmarks"]["toy-mcq"]["n"] == 4


def test_registration_is_checked(toy):
    with pytest.raises(ValueError, match="'toy-mcq' is already registered"):
        BENCHMARKS.register("toy-mcq", VLMBenchmark("toy-mcq", dataset="X", max_new_tokens=1, prompt=mcq_prompt,
                                                    scorers={"vlmevalkit": score_ai2d}))
    with pytest.raises(ValueError, match="default_scorer 'vlmevalkit' is not one of its scorers"):
        VLMBenchmark("bad", dataset="BAD", max_new_tokens=1, prompt=mcq_prompt, scorers={"mine": score_ai2d})
