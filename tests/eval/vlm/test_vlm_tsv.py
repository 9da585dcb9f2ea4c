"""VLMEvalKit TSV io: data root, image references, images on disk, predictions round trips, fixtures."""
import hashlib

import numpy as np
import pandas as pd
import pytest

from suite.eval.vlm import (data_root, decode_image, dump_image, encode_image, fixture_items, load_dataset,
                            read_predictions, render_scene, write_predictions, write_vlm_fixture)
from suite.eval.vlm.fixtures import COLORS, POSITIONS
from suite.eval.vlm.tsv import dataset_file


def test_data_root_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LMUData", raising=False)
    assert data_root() == tmp_path / "home" / "LMUData"
    monkeypatch.setenv("LMUData", str(tmp_path / "missing"))            # not a directory: ignored
    assert data_root() == tmp_path / "home" / "LMUData"
    (tmp_path / "lmu").mkdir()
    monkeypatch.setenv("LMUData", str(tmp_path / "lmu"))
    assert data_root() == tmp_path / "lmu"
    assert data_root(tmp_path / "explicit") == tmp_path / "explicit"    # an explicit root wins
    assert dataset_file("mathvista") == tmp_path / "lmu" / "MathVista_MINI.tsv"
    assert dataset_file("AI2D_TEST_NO_MASK", tmp_path) == tmp_path / "AI2D_TEST_NO_MASK.tsv"


def _img(color):
    from PIL import Image

    return encode_image(Image.new("RGB", (8, 8), color))


def test_image_references_nan_rows_and_index_cast(tmp_path):
    red, blue = _img((255, 0, 0)), _img((0, 0, 255))
    pd.DataFrame({"index": ["10", "11", "12", "13"], "image": [red, "10", None, blue],
                  "question": ["q0", "q1", "q2", "q3"], "answer": ["A", "B", "C", "D"]}).to_csv(
        tmp_path / "AI2D_TEST.tsv", sep="\t", index=False)
    df = load_dataset("ai2d", tmp_path)
    assert df["index"].tolist() == [10, 11, 13]                          # NaN image dropped, ints cast
    assert df["image"].tolist() == [red, red, blue]                      # 11 reuses 10's image
    p11 = dump_image(df.iloc[1], "ai2d", tmp_path)
    assert p11 == [tmp_path / "images" / "AI2D_TEST" / "11.png"]
    assert decode_image(red).getpixel((0, 0)) == (255, 0, 0)
    from PIL import Image

    assert Image.open(p11[0]).getpixel((3, 3)) == (255, 0, 0)
    mtime = p11[0].stat().st_mtime_ns
    assert dump_image(df.iloc[1], "ai2d", tmp_path) == p11 and p11[0].stat().st_mtime_ns == mtime  # decoded once
    # string ids stay strings; a reference to a missing row names it; list literals hold several images
    pd.DataFrame({"index": ["a", "b"], "image": [red, "zz"], "question": ["q", "q"]}).to_csv(
        tmp_path / "MMVet.tsv", sep="\t", index=False)
    with pytest.raises(ValueError, match="row index b refers to image of index 'zz', which is missing"):
        load_dataset("mmvet", tmp_path)
    pd.DataFrame({"index": ["a", "b"], "image": [red, str([red, blue])], "question": ["q", "q"]}).to_csv(
        tmp_path / "MMVet.tsv", sep="\t", index=False)
    df = load_dataset("MMVet", tmp_path)
    assert df["index"].tolist() == ["a", "b"] and df["image"].iloc[1] == [red, blue]
    assert [p.name for p in dump_image(df.iloc[1], "mmvet", tmp_path)] == ["b_0.png", "b_1.png"]
    with pytest.raises(FileNotFoundError, match="MathVista_MINI.tsv does not exist.*openxlab"):
        load_dataset("mathvista", tmp_path)


@pytest.mark.parametrize("fmt", ["xlsx", "tsv", "csv", "json", "jsonl"])
def test_predictions_roundtrip(tmp_path, fmt):
    df = pd.DataFrame({"index": [3, 1, 2], "image": ["x" * 100] * 3, "question": ["q3", "q1", "q2"],
                       "answer": ["B", "A", "12"], "prediction": ["B", "0.50", "bad\x07char 12"]})
    path = write_predictions(df, tmp_path / f"m_AI2D_TEST.{fmt}", prompt_style="internvl")
    back = read_predictions(path)
    assert "image" not in back.columns and back["index"].tolist() == [3, 1, 2]
    assert back["prompt_style"].tolist() == ["internvl"] * 3
    expect = ["B", "0.50", "badchar 12" if fmt == "xlsx" else "bad\x07char 12"]  # Excel cannot hold \x07
    assert back["prediction"].astype(str).tolist() == expect
    assert back["answer"].astype(str).tolist() == ["B", "A", "12"]


def test_prediction_errors_name_the_file_and_columns(tmp_path):
    with pytest.raises(FileNotFoundError, match="predictions file .*nope.xlsx does not exist"):
        read_predictions(tmp_path / "nope.xlsx")
    pd.DataFrame({"index": [1], "answer": ["A"]}).to_csv(tmp_path / "p.tsv", sep="\t", index=False)
    with pytest.raises(ValueError, match=r"p.tsv: missing column\(s\) 'prediction'; a predictions file needs "
                                         r"'index', 'prediction'.*it has: index, answer"):
        read_predictions(tmp_path / "p.tsv")
    (tmp_path / "p.parquet").write_text("x")
    with pytest.raises(ValueError, match="unsupported format 'parquet'; valid: xlsx, tsv, csv, json, jsonl"):
        read_predictions(tmp_path / "p.parquet")
    pd.DataFrame({"index": [1, 1], "prediction": ["A", "B"]}).to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(ValueError, match="duplicate index values \\[1\\]"):
        read_predictions(tmp_path / "d.csv")


@pytest.mark.parametrize("bench, n", [("ai2d", 12), ("mmvet", 16), ("mathvista", 14)])
def test_fixtures_are_deterministic_with_references(tmp_path, bench, n):
    a = write_vlm_fixture(tmp_path / "a", bench, n=n, seed=1)
    b = write_vlm_fixture(tmp_path / "b", bench, n=n, seed=1)
    c = write_vlm_fixture(tmp_path / "c", bench, n=n, seed=2)
    digest = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (a, b, c)]
    assert digest[0] == digest[1] != digest[2]
    raw = pd.read_csv(a, sep="\t", dtype=str)
    refs = raw[raw["image"].str.len() <= 64]
    assert len(raw) == n and len(refs) >= 1
    df = load_dataset(bench, tmp_path / "a")
    for _, r in refs.iterrows():  # a reference row shows the same picture as its target
        assert df.loc[df["index"] == int(r["index"]), "image"].item() == \
            df.loc[df["index"] == int(r["image"]), "image"].item()


def test_fixture_questions_are_answerable_from_the_pixels():
    for it in fixture_items("ai2d", n=24, seed=0):
        img, truth = np.asarray(it["image"]), it[it["answer"]]
        s = img.shape[0]
        for ob in it["scene"]["objects"]:  # every object's color is at its cell's center
            col, row = ob["cell"] % 2, ob["cell"] // 2
            assert tuple(img[int(row * s / 2 + s / 4), int(col * s / 2 + s / 4)]) == COLORS[ob["color"]]
        q = it["question"]
        objs = it["scene"]["objects"]
        if q.startswith("What shape is"):
            assert [o["shape"] for o in objs if o["color"] == q.split()[-1][:-1]] == [truth]
        elif q.startswith("How many"):
            assert sum(o["shape"] + "s" == q.split()[2] for o in objs) == int(truth)
        elif q.startswith("Where is"):
            assert truth in POSITIONS and [o["position"] for o in objs if o["shape"] == q.split()[-1][:-1]] == [truth]
    for it in fixture_items("mathvista", n=14, seed=0):
        v = it["scene"]["values"]
        if it["answer_type"] == "integer" and "tallest bar?" in it["question"]:
            assert int(it["answer"]) == max(v)
        if it["question_type"] == "multi_choice":
            assert it["answer"] == it["scene"]["colors"][v.index(max(v))] and it["answer_option"] in "ABCD"
            assert it["question"].startswith("Hint: Please answer the question and provide the correct option")
            assert f"\n({it['answer_option']}) {it['answer']}" in it["question"]
    img, scene = render_scene("text", seed=5)
    assert img.size == (64, 64) and scene["kind"] == "text"
    assert render_scene(scene=scene, image_size=96)[0].size == (96, 96)


def test_xlsx_keeps_numeric_looking_strings(tmp_path):
    # regression: read_excel parsed a column whose cells all look numeric into floats ("14" -> 14.0, "" -> NaN,
    # "0.50" -> 0.5); the TSV readers keep strings, and so must xlsx
    df = pd.DataFrame({"index": [1, 2, 3], "answer": ["14", "1.45", "6.0"], "prediction": ["14", "14.5", "0.50"]})
    back = read_predictions(write_predictions(df, tmp_path / "m_MathVista_MINI.xlsx"))
    assert back["index"].tolist() == [1, 2, 3]
    assert back["answer"].tolist() == ["14", "1.45", "6.0"] and back["prediction"].tolist() == ["14", "14.5", "0.50"]
