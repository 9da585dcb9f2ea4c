"""Synthetic visual-instruction data for VLM distillation toys: rendered scenes with question-answer pairs.

    train = instruction_items(2000, seed=1, exclude=eval_items)   # [VisualQA(image, question, answer, kind)]
    batch = [(q.images, q.question, q.answer) for q in train[:16]]   # what VLM.encode_qa takes

The world is the one the benchmark fixtures render (suite.eval.vlm.fixtures: shapes, colours, counts, positions,
bar charts), asked in the benchmarks' own prompt formats, so a model trained here answers in the form the
scorers read: AI2D-style multiple choice answers with the option letter, MathVista-style questions with the
final value (a number, or the option letter of a multiple-choice chart question). Items whose question and
image equal an evaluation item are dropped (`exclude`), so training never sees a test question.

`answers="detailed"` gives each item a worked response instead of the short answer: the evidence read off the
scene, the arithmetic where there is any, then "The answer is X." with X the short answer (the form AI2D's option
matching and the `rule` judge's MathVista extraction read). It is how a large teacher answers (GenRecal App. F);
a tiny teacher trained on these items can elaborate, where one trained on "A" or "32" cannot.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from ..registry import did_you_mean

KINDS = ("ai2d", "mathvista")
ANSWER_FORMS = ("short", "detailed")


@dataclass(frozen=True)
class VisualQA:
    image: Any                 # PIL image
    question: str              # the prompt as the benchmark builds it
    answer: str                # what the model is trained to reply: the short answer, or a detailed response
    kind: str                  # ai2d | mathvista | llava (a LLaVA-format file's item)
    short: str | None = None   # the short answer (option letter or final value) when `answer` is a detailed one

    @property
    def final(self) -> str:
        """The short answer a scorer accepts: option letter or final value."""
        return self.short if self.short is not None else self.answer

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


def _listed(values) -> str:
    values = [str(v) for v in values]
    return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " and " + values[-1]


def _ai2d_evidence(row: dict) -> str:
    q, objects, truth = row["question"], row["scene"]["objects"], str(row[row["answer"]])
    if m := re.fullmatch(r"What shape is (\w+)\?", q):
        return f"The {m.group(1)} shape is a {truth}."
    if m := re.fullmatch(r"What color is the (\w+)\?", q):
        return f"The {m.group(1)} is {truth}."
    if m := re.fullmatch(r"Where is the (\w+)\?", q):
        return f"The {m.group(1)} is at the {truth}."
    if m := re.fullmatch(r"How many (\w+)s are there\?", q):
        n = sum(o["shape"] == m.group(1) for o in objects)
        return (f"There are no {m.group(1)}s in the image." if n == 0 else
                f"There is 1 {m.group(1)} in the image." if n == 1 else f"There are {n} {m.group(1)}s in the image.")
    raise ValueError(f"ai2d: no detailed answer for question {q!r}")


def _mathvista_evidence(row: dict) -> str:
    q, v = row["question"], row["scene"]["values"]
    hi, lo, bars = max(v), min(v), f"The bars are {_listed(v)}."
    if "tallest bar?" in q and "value" in q:
        return f"{bars} The tallest bar is {hi}."
    if "sum of the values" in q:
        return f"{bars} {' + '.join(map(str, v))} = {sum(v)}."
    if "average value" in q:
        return f"{bars} Their sum is {sum(v)} over {len(v)} bars."
    if "ratio of the tallest" in q:
        return f"The tallest bar is {hi} and the shortest is {lo}. {hi} / {lo} = {row['answer']}."
    if "How much taller" in q:
        return f"The tallest bar is {hi} and the shortest is {lo}. {hi} - {lo} = {hi - lo}."
    if "Which color is the tallest bar" in q:
        return f"The tallest bar is {hi} and it is {row['answer']}."
    if "from left to right" in q:
        return f"The bars from left to right are {_listed(v)}."
    raise ValueError(f"mathvista: no detailed answer for question {q!r}")


def detailed_answer(kind: str, row: dict) -> str:
    """A worked response to a fixture row: evidence from its scene, then 'The answer is <short answer>.'"""
    evidence = _ai2d_evidence(row) if kind == "ai2d" else _mathvista_evidence(row)
    return f"{evidence} The answer is {_answer(kind, row)}."


def benchmark_items(kind: str, n: int, seed: int, style: str = "default", image_size: int = 64,
                    answers: str = "short") -> list[VisualQA]:
    """`n` items of one benchmark's fixture world, prompts built in `style`, answers short or detailed."""
    from ..eval.vlm.fixtures import fixture_items
    from ..eval.vlm.prompts import build_prompt

    if answers not in ANSWER_FORMS:
        raise ValueError(f"answers {answers!r}{did_you_mean(answers, ANSWER_FORMS)}; valid: {', '.join(ANSWER_FORMS)}")
    rows = fixture_items(kind, n, seed=seed, image_size=image_size)
    if answers == "short":
        return [VisualQA(r["image"], build_prompt(kind, r, style), _answer(kind, r), kind) for r in rows]
    return [VisualQA(r["image"], build_prompt(kind, r, style), detailed_answer(kind, r), kind, short=_answer(kind, r))
            for r in rows]


def instruction_items(n: int, seed: int = 0, kinds: Sequence[str] = KINDS, style: str = "default",
                      exclude: Iterable[VisualQA] = (), image_size: int = 64, answers: str = "short") -> list[VisualQA]:
    """`n` training items, kinds interleaved round-robin, none equal to an item of `exclude`; `answers` short
    (the benchmark's answer) or detailed (a worked response ending in it). The same seed draws the same
    questions and images either way."""
    for k in kinds:
        if k not in KINDS:
            raise ValueError(f"unknown visual-instruction kind {k!r}{did_you_mean(k, KINDS)}; "
                             f"valid: {', '.join(KINDS)}")
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
                                     image_size=image_size, answers=answers):
                if q.key() not in banned and len(got) < want:
                    got.append(q)
                    banned.add(q.key())  # no duplicates inside the training set either
            round_ += 1
        per_kind[k] = got
    out = []
    for j in range(max((len(v) for v in per_kind.values()), default=0)):
        out.extend(v[j] for v in per_kind.values() if j < len(v))
    return out
