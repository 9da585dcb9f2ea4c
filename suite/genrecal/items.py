"""Synthetic visual-instruction data for VLM distillation toys: rendered scenes with question-answer pairs.

    train = instruction_items(2000, seed=1, exclude=eval_items)   # [VisualQA(image, question, answer, kind)]
    batch = [(q.images, q.question, q.answer) for q in train[:16]]   # what VLM.encode_qa takes

The world is the one the benchmark fixtures render (suite.eval.vlm.fixtures: shapes, colours, counts, positions,
bar charts), asked in the benchmarks' own prompt formats, so a model trained here answers in the form the
scorers read: AI2D-style multiple choice answers with the option letter, MathVista-style questions with the
final value (a number, or the option letter of a multiple-choice chart question). Items whose question and
image equal an evaluation item are dropped (`exclude`), so training never sees a test question.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from ..registry import did_you_mean

KINDS = ("ai2d", "mathvista")


@dataclass(frozen=True)
class VisualQA:
    image: Any                 # PIL image
    question: str              # the prompt as the benchmark builds it
    answer: str                # the short answer a scorer accepts: option letter or final value
    kind: str                  # ai2d | mathvista

    @property
    def images(self) -> list:
        return [self.image]

    def key(self) -> str:
        """Identity of (question, image pixels): equal items from two seeds are the same item."""
        h = hashlib.sha256(self.question.encode())
        h.update(self.image.tobytes())
        return h.hexdigest()[:20]


def _answer(kind: str, row: dict) -> str:
    if kind == "ai2d":
        return str(row["answer"])                    # the option letter
    if row.get("question_type") == "multi_choice":
        return str(row["answer_option"])             # MathVista multiple choice: the letter, as prefetch reads it
    return str(row["answer"])                        # integer / float: the value in the item's precision


def benchmark_items(kind: str, n: int, seed: int, style: str = "default", image_size: int = 64) -> list[VisualQA]:
    """`n` items of one benchmark's fixture world, prompts built in `style`."""
    from ..eval.vlm.fixtures import fixture_items
    from ..eval.vlm.prompts import build_prompt

    rows = fixture_items(kind, n, seed=seed, image_size=image_size)
    return [VisualQA(r["image"], build_prompt(kind, r, style), _answer(kind, r), kind) for r in rows]


def instruction_items(n: int, seed: int = 0, kinds: Sequence[str] = KINDS, style: str = "default",
                      exclude: Iterable[VisualQA] = (), image_size: int = 64) -> list[VisualQA]:
    """`n` training items, kinds interleaved round-robin, none equal to an item of `exclude`."""
    for k in kinds:
        if k not in KINDS:
            raise ValueError(f"unknown visual-instruction kind {k!r}{did_you_mean(k, KINDS)}; valid: {', '.join(KINDS)}")
    banned = {q.key() for q in exclude}
    per_kind: dict[str, list[VisualQA]] = {}
    for i, k in enumerate(kinds):
        want = n // len(kinds) + (1 if i < n % len(kinds) else 0)
        got: list[VisualQA] = []
        round_ = 0
        while len(got) < want:
            if round_ > 20:
                raise ValueError(f"cannot draw {want} {k} items that avoid the excluded ones; the world is too small")
            for q in benchmark_items(k, 2 * (want - len(got)) + 8, seed=seed * 1000 + round_, style=style,
                                     image_size=image_size):
                if q.key() not in banned and len(got) < want:
                    got.append(q)
                    banned.add(q.key())  # no duplicates inside the training set either
            round_ += 1
        per_kind[k] = got
    out = []
    for j in range(max((len(v) for v in per_kind.values()), default=0)):
        out.extend(v[j] for v in per_kind.values() if j < len(v))
    return out
