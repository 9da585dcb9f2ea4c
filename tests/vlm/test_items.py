"""Synthetic visual-instruction items: benchmark prompt formats, answers the scorers accept, no test leakage."""
import ast

import pytest

from suite.vlm.items import benchmark_items, instruction_items
from suite.eval.vlm.matching import build_choices, can_infer


def test_items_are_deterministic_disjoint_from_eval_and_scoreable():
    eval_items = benchmark_items("ai2d", 24, seed=0) + benchmark_items("mathvista", 20, seed=0)
    train = instruction_items(200, seed=1, exclude=eval_items)
    again = instruction_items(200, seed=1, exclude=eval_items)
    assert [(q.question, q.answer) for q in train] == [(q.question, q.answer) for q in again]
    keys = [q.key() for q in train]
    assert len(set(keys)) == 200 and not set(keys) & {q.key() for q in eval_items}
    assert [q.kind for q in train[:4]] == ["ai2d", "mathvista", "ai2d", "mathvista"]
    for q in train:
        assert q.images and q.images[0].size == (64, 64)
        if q.kind == "ai2d":  # the answer is the letter exact matching reads back
            assert q.question.startswith("Question: ") and "Options:\nA. " in q.question
            assert q.answer in "ABCD"
            options = {line[0]: line[3:] for line in q.question.splitlines() if line[1:3] == ". "}
            assert can_infer(q.answer, build_choices(options)) == q.answer
        else:
            assert q.question.startswith("Hint: ")
            if "Choices:" in q.question:
                assert q.answer in "ABCD"
            else:  # a value: integer, float in the item's precision, or a list literal
                value = ast.literal_eval(q.answer)
                assert isinstance(value, (int, float, list))


def test_unknown_kind():
    with pytest.raises(ValueError, match="did you mean 'ai2d'"):
        instruction_items(4, kinds=["ai2"])
