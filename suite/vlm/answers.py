"""GenRecal App. F: very short answers replaced by the teacher's own detailed responses, once, cached.

    train, held, info = teacher_answers(train + held split..., teacher="runs/s/<id>/model",
                                        cache=runs/s/.teacher_answers)

The paper replaces answers such as "A" or "32" with a correct, more detailed response written by the teacher,
in every experiment. Here: each item whose answer has fewer than SHORT_WORDS words is put to the teacher (its
question, plus `vlm.detail_prompt` when set), greedy, up to `vlm.detail_tokens` tokens; the response replaces
the answer only when the final answer it states ("... the answer is X", matching.final_answer) is the item's
answer, so a wrong teacher never teaches a wrong label, and the item keeps its short answer as `short`. Longer
answers stay as they are.

Generated once per (teacher, items, settings): a JSONL file under the sweep's `.teacher_answers/`, keyed by a
hash of the teacher's files, the prompts and the short answers. A file lock makes the first cell write it while
concurrent cells (the seeds of one sweep, the ranks of one job) wait and then read it; later cells (GenRecal's
next stages, SFT beside it) only read. Cells that train without a teacher (SFT, stage 3) load it just for this.
"""
from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Sequence

from .._io import atomic_write_text, locked
from ..eval.vlm.matching import final_answer, same_answer
from ..refs import model_identity
from .items import VisualQA

SHORT_WORDS = 4     # answers with fewer words are "very short" (the paper's "A", "32"); a sentence is not
CACHE_DIR = ".teacher_answers"
_BATCH = 32


def is_short(answer: str) -> bool:
    return len(str(answer).split()) < SHORT_WORDS


def cache_key(teacher: str, items: Sequence[VisualQA], max_new_tokens: int, prompt: str) -> str:
    h = hashlib.sha256(json.dumps([model_identity(teacher), max_new_tokens, prompt]).encode())
    for q in items:
        h.update(q.key().encode())
        h.update(q.answer.encode())
    return h.hexdigest()[:20]


def generate(teacher, items: Sequence[VisualQA], max_new_tokens: int, prompt: str = "",
             progress: bool = True) -> list[str]:
    """The teacher's greedy responses to the items' questions (+ `prompt`), batched."""
    from tqdm.auto import tqdm

    out: list[str] = []
    bar = tqdm(total=len(items), desc="teacher answers (App. F)", unit="item", disable=not progress)
    for i in range(0, len(items), _BATCH):
        chunk = items[i:i + _BATCH]
        out += teacher.generate([(q.images, f"{q.question}\n{prompt}" if prompt else q.question) for q in chunk],
                                max_new_tokens=max_new_tokens)
        bar.update(len(chunk))
    bar.close()
    return out


def load_or_generate(teacher_spec: str, items: Sequence[VisualQA], cache_dir: Path, *, max_new_tokens: int,
                     prompt: str = "", load=None, progress: bool = True) -> tuple[list[str], Path, bool]:
    """(responses in item order, the cache file, whether this call generated them). `load(spec)` opens the
    teacher (suite.models.vlm.load_vlm), only when the file is missing."""
    key = cache_key(teacher_spec, items, max_new_tokens, prompt)
    path = Path(cache_dir) / f"{key}.jsonl"
    with locked(Path(cache_dir) / f"{key}.lock"):
        if path.exists():
            rows = [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]
            if [r["item"] for r in rows] == [q.key() for q in items]:
                return [r["response"] for r in rows], path, False
        if load is None:
            from ..models.vlm import load_vlm as load
        teacher = load(teacher_spec)
        teacher.model.eval()
        responses = generate(teacher, items, max_new_tokens, prompt, progress)
        del teacher
        atomic_write_text(path, "".join(json.dumps({"item": q.key(), "answer": q.answer, "response": r}) + "\n"
                                        for q, r in zip(items, responses)))
    return responses, path, True


def teacher_answers(splits: Sequence[Sequence[VisualQA]], teacher_spec: str, cache_dir: Path, *,
                    max_new_tokens: int = 64, prompt: str = "", load=None,
                    progress: bool = True) -> tuple[list[list[VisualQA]], dict]:
    """Each split with its very short answers replaced by the teacher's correct detailed responses, and what
    happened: {"answers": "teacher", "short_items", "stated_final" (responses that state a final answer),
    "replaced", "teacher_correct" (fraction of short items), "mean_words" of the replaced answers, "cache" file,
    "generated" (this call wrote it)}."""
    flat = [q for split in splits for q in split]
    short = [q for q in flat if is_short(q.answer)]
    responses, path, generated = (load_or_generate(teacher_spec, short, cache_dir, max_new_tokens=max_new_tokens,
                                                   prompt=prompt, load=load, progress=progress)
                                  if short else ([], Path(cache_dir), False))
    written = {q.key(): (r, final_answer(r)) for q, r in zip(short, responses)}  # response, its final answer
    replaced, words = 0, 0
    stated = sum(got is not None for _, got in written.values())
    if short and stated < len(short) / 2:  # the check reads "... the answer is X": a teacher that never says it
        warnings.warn(f"vlm.answers: teacher: only {stated} of {len(short)} teacher responses state a final answer "
                      f"('... the answer is X'), so at most those can replace a short answer; a pretrained teacher "
                      f"needs telling (vlm.detail_prompt, e.g. \"Explain briefly, then end with: The answer is X.\")",
                      stacklevel=2)
    out = []
    for split in splits:
        new = []
        for q in split:
            r, got = written.get(q.key(), (None, None)) if is_short(q.answer) else (None, None)
            if got is not None and same_answer(got, q.answer):
                new.append(VisualQA(q.image, q.question, r, q.kind, short=q.final))
                replaced += 1
                words += len(r.split())
            else:
                new.append(q)
        out.append(new)
    info = {"answers": "teacher", "short_items": len(short), "stated_final": stated, "replaced": replaced,
            "teacher_correct": replaced / len(short) if short else None,
            "mean_words": words / replaced if replaced else None, "cache": str(path), "generated": generated}
    return out, info


__all__ = ["teacher_answers", "load_or_generate", "generate", "is_short", "cache_key", "SHORT_WORDS", "CACHE_DIR"]
