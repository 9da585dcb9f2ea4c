"""GenRecal App. F: detailed answers in the synthetic world, the teacher-written replacement of very short answers
(genrecal/answers.py), the rule judge that reads final answers, and the config and grid switches."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from suite.config import ConfigError, config_from_dict
from suite.eval.judges import JudgeError, make_judge
from suite.eval.vlm.ai2d import judge_prompt
from suite.eval.vlm.fixtures import fixture_items
from suite.eval.vlm.matching import build_choices, can_infer, final_answer, same_answer
from suite.eval.vlm.mathvista import extraction_prompt, score_mathvista
from suite.vlm.answers import SHORT_WORDS, is_short, teacher_answers
from suite.vlm.items import _answer, detailed_answer, instruction_items


# ---------------------------------------------------------------------------------------- detailed answers


def test_detailed_items_are_the_short_items_with_worked_answers_that_state_them():
    short = instruction_items(60, seed=4)
    detailed = instruction_items(60, seed=4, answers="detailed")
    assert [q.key() for q in short] == [q.key() for q in detailed]  # same questions and images
    for s, d in zip(short, detailed):
        assert s.short is None and s.final == s.answer
        assert d.short == s.answer and d.final == s.answer
        assert len(d.answer.split()) >= SHORT_WORDS and not is_short(d.answer)
        assert d.answer.endswith(f"The answer is {s.answer}.")
        assert final_answer(d.answer) == s.answer


def test_the_evidence_is_read_off_the_scene():
    rows = fixture_items("mathvista", 14, seed=2)
    for r in rows:
        v = r["scene"]["values"]
        text = detailed_answer("mathvista", r)
        if "sum of the values" in r["question"]:
            assert f"{' + '.join(map(str, v))} = {sum(v)}." in text
        if "How much taller" in r["question"]:
            assert f"{max(v)} - {min(v)} = {max(v) - min(v)}." in text
    for r in fixture_items("ai2d", 16, seed=2):
        text = detailed_answer("ai2d", r)
        if r["category"] == "countShapes":
            shape = r["question"].split()[2][:-1]
            n = sum(o["shape"] == shape for o in r["scene"]["objects"])
            assert (f" {n} {shape}" in text) if n else "no " in text
        elif r["category"] == "colorOfShape":
            assert f"is {r[r['answer']]}." in text


def test_the_scorers_read_detailed_replies_as_they_read_short_ones():
    ai2d = fixture_items("ai2d", 24, seed=1)
    for r in ai2d:
        assert can_infer(detailed_answer("ai2d", r), build_choices(r)) == r["answer"]
    rows = fixture_items("mathvista", 21, seed=1)
    df = pd.DataFrame([{k: v for k, v in r.items() if k not in ("image", "scene", "image_ref")} for r in rows])
    short = score_mathvista(df.assign(prediction=[_answer("mathvista", r) for r in rows]), make_judge("none"))
    long = df.assign(prediction=[detailed_answer("mathvista", r) for r in rows])
    assert score_mathvista(long, make_judge("none"))["overall"] < short["overall"]  # prefetch cannot read them
    ruled = score_mathvista(long, make_judge("rule"))
    assert ruled["judge"] == "rule_answer_is" and ruled["overall"] == short["overall"] > 0


@pytest.mark.parametrize("text, want", [
    ("The answer is D.", "D"), ("bars. The answer is 5.", "5"), ("The answer is 5.0.", "5.0"),
    ("The correct answer is (B) 8/11.", "B"), ("answer is **C**.", "C"), ("The answer is [1, 2].", "[1, 2]"),
    ("It is red.", None), ("", None),
])
def test_final_answer(text, want):
    assert final_answer(text) == want


def test_same_answer():
    assert same_answer("5.0", "5") and same_answer(" b", "B") and not same_answer("8/11", "B")


def test_rule_judge_answers_the_extraction_prompts_only():
    judge = make_judge("rule")
    row = {"question": "Question: How tall?", "prediction": "The bars are 3 and 4. The answer is 4."}
    assert judge.chat([{"role": "user", "content": extraction_prompt(row)}]) == "4"
    row["prediction"] = "4"  # no final-answer sentence: nothing extracted, as a judge that finds none
    assert judge.chat([{"role": "user", "content": extraction_prompt(row)}]) == ""
    choices = {"A": "red", "B": "blue"}
    assert judge.chat([{"role": "user", "content": judge_prompt("Colour?", choices, "Hm. The answer is B.")}]) == "B"
    assert judge.chat([{"role": "user", "content": judge_prompt("Colour?", choices, "blue-ish")}]) == "Z"
    with pytest.raises(JudgeError, match="grading"):
        judge.chat([{"role": "user", "content": "Compare the ground truth and prediction ... score"}])


# ---------------------------------------------------------------------------------------- teacher answers


class _Teacher:
    """A stand-in teacher: right and detailed, wrong, or terse, by item; counts its calls."""

    calls = 0

    def __init__(self, replies):
        self.replies, self.model = replies, type("M", (), {"eval": lambda self: None})()

    def generate(self, batch, max_new_tokens=32):
        _Teacher.calls += 1
        return [self.replies[q] for _, q in batch]


def _items():
    items = instruction_items(9, seed=7)
    long = type(items[0])(items[0].image, "Describe it.", "A red circle at the top left of the image.", "llava")
    return items[:6], items[6:] + [long]


def test_teacher_answers_replace_only_short_answers_the_teacher_gets_right(tmp_path):
    train, held = _items()
    short = [q for q in train + held if is_short(q.answer)]
    assert len(short) == 9
    replies = {}
    for i, q in enumerate(short):
        replies[q.question] = (f"I looked closely. The answer is {q.answer}." if i % 3 == 0 else
                               "I looked closely. The answer is nothing." if i % 3 == 1 else q.answer)
    _Teacher.calls = 0
    (new_train, new_held), info = teacher_answers([train, held], "t", tmp_path, load=lambda s: _Teacher(replies),
                                                  progress=False)
    assert _Teacher.calls == 1 and info["generated"] and info["short_items"] == 9 and info["replaced"] == 3
    assert info["stated_final"] == 6  # the right and the wrong final answers; the terse replies state none
    assert info["teacher_correct"] == pytest.approx(1 / 3) and info["mean_words"] == 7
    for old, new in zip(train + held, new_train + new_held):
        assert new.key() == old.key() and new.final == old.answer
        right = is_short(old.answer) and replies[old.question].startswith("I looked") and \
            replies[old.question].endswith(f"{old.answer}.")
        assert new.answer == (replies[old.question] if right else old.answer)
        assert (new.short == old.answer) if right else new.short is None
    assert new_held[-1].answer == held[-1].answer  # a long answer is never put to the teacher
    rows = [json.loads(x) for x in open(info["cache"])]
    assert [r["item"] for r in rows] == [q.key() for q in short]

    def never(spec):
        raise AssertionError("the cache was not read")

    again, info2 = teacher_answers([train, held], "t", tmp_path, load=never, progress=False)
    assert not info2["generated"] and info2["cache"] == info["cache"]
    assert [q.answer for q in again[0] + again[1]] == [q.answer for q in new_train + new_held]
    # another teacher, or other items, is another file; a teacher that states no final answer is warned about
    with pytest.warns(UserWarning, match="only 0 of 9 teacher responses state a final answer.*detail_prompt"):
        teacher_answers([train, held], "t3", tmp_path, load=lambda s: _Teacher({q: "B" for q in replies}),
                        progress=False)
    _, info3 = teacher_answers([train[:3]], "t", tmp_path, load=lambda s: _Teacher(replies), progress=False)
    _, info4 = teacher_answers([train, held], "t2", tmp_path, load=lambda s: _Teacher(replies), progress=False)
    assert len({info["cache"], info3["cache"], info4["cache"]}) == 3 and info3["generated"] and info4["generated"]


# ---------------------------------------------------------------------------------------- config and grid


def _vlm_cell(method="supervised", teacher=None, **vlm):
    raw = {"student": "tiny-qwen2vl", "method": method, "vlm": {"train_items": 8, **vlm}}
    if teacher:
        raw["teacher"] = teacher
    return raw


def test_answers_switch_is_checked_and_auto_is_the_papers_default_for_genrecal():
    from suite.vlm.config import answer_source

    with pytest.raises(ConfigError, match="vlm.answers: .*did you mean 'teacher'"):
        config_from_dict(_vlm_cell(answers="teachr"))
    with pytest.raises(ConfigError, match="vlm.answers: 'teacher' needs the cell's teacher"):
        config_from_dict(_vlm_cell(answers="teacher"))
    with pytest.raises(ConfigError, match="vlm.answers: 'detailed' is the synthetic world's"):
        config_from_dict(_vlm_cell(answers="detailed", path="x.json"))
    assert answer_source(config_from_dict(_vlm_cell())) == "short"
    assert answer_source(config_from_dict(_vlm_cell({"name": "genrecal", "stage": 3}, teacher="t"))) == "teacher"
    assert answer_source(config_from_dict(_vlm_cell("supervised", teacher="t", answers="teacher"))) == "teacher"


def test_short_answers_keep_the_cell_ids_cells_had_before_the_switch():
    """The committed GenRecal toy study (run before vlm.answers existed) pins `answers: short`: every cell it
    ran keeps its id, so resubmitting the grid resumes it instead of rerunning 41 cells."""
    from pathlib import Path

    from suite.sweep.grid import load_grid

    root = Path(__file__).resolve().parents[2]
    ran = set(pd.read_parquet(root / "reports/genrecal_toy/results.parquet")["cell_id"])
    grid = load_grid(root / "sweeps/genrecal_toy.yaml")
    assert len(ran) >= 41 and ran <= {c.id for c in grid.cells}
    # `auto` that means short answers (every method but genrecal) keeps the id short answers had; genrecal's
    # `auto` is App. F, a new behaviour, so a new id
    assert config_from_dict(_vlm_cell(answers="short")).cell_id == config_from_dict(_vlm_cell()).cell_id
    gen = {"name": "genrecal", "stage": 3}
    assert config_from_dict(_vlm_cell(gen, teacher="t", answers="short")).cell_id != \
        config_from_dict(_vlm_cell(gen, teacher="t")).cell_id


def test_a_grid_keeps_the_teacher_of_an_sft_cell_that_reads_its_answers():
    from suite.sweep.grid import expand

    cells = {
        "teacher": {"set": {"student": "tiny-llava-m", "method": "supervised", "vlm": {"answers": "detailed"}}},
        "sft": {"set": {"student": "tiny-qwen2vl", "teacher": "@teacher", "method": "supervised",
                        "vlm": {"answers": "teacher"}}},
        "sft_short": {"set": {"student": "tiny-qwen2vl", "teacher": "@teacher", "method": "supervised",
                              "vlm": {"answers": "short"}}},
    }
    grid = expand({"name": "g", "defaults": {"vlm": {"train_items": 8}}, "cells": cells})
    by = {c.group: c for c in grid.cells}
    assert by["sft"].config.teacher == f"cell:{by['teacher'].id}" and by["sft"].teacher_id == by["teacher"].id
    assert [c.group for c in grid.cells].index("teacher") < [c.group for c in grid.cells].index("sft")
    assert by["sft_short"].config.teacher is None and by["sft_short"].teacher_id is None
    assert "ateacher" in by["sft"].name and "adetailed" in by["teacher"].name
