"""Judge plumbing shared by the VLM scorers: many prompts at once, failures kept per item, retry rounds.

    answers = ask_many(judge, prompts, temperature=0.0)                  # str or JudgeError per prompt, in order
    left = ask_rounds(judge, {i: p}, RISING_TEMPERATURES, accept)        # accept(i, try, answer) -> bool
"""
from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ..judges import JudgeError, make_judge

RISING_TEMPERATURES = (0.0, 0.5, 1.0, 1.5, 2.0)  # MM-Vet and MathVista: try i runs at temperature i * 0.5


def resolve_judge(spec: Any):
    """A judge object from a spec ("none", "openai:M", "hf:PATH", mapping, JudgeConfig) or a judge itself."""
    if spec is not None and not isinstance(spec, (str, dict)) and hasattr(spec, "chat") and hasattr(spec, "name"):
        return spec
    return make_judge(spec)


def available(judge: Any) -> bool:
    return bool(getattr(judge, "available", False))


def check_working(judge: Any, benchmark: str) -> None:
    """A configured judge that does not answer is an error, never a silent switch to exact matching."""
    working = getattr(judge, "working", None)
    if working is not None and not working():
        raise JudgeError(f"{benchmark}: judge {judge.name!r} is not working ({judge!r} did not answer a test "
                         f"request); fix it, or pass --judge none to score without one "
                         f"(exact matching / prefetch-only / not scored, labelled as such)")


def user(prompt: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt}]


def ask_many(judge: Any, prompts: Sequence[str], temperature: float | None = None,
             max_tokens: int | None = None) -> list[str | JudgeError]:
    """One answer (or its JudgeError) per prompt, in order; each prompt asked once, with the judge's concurrency."""
    def one(prompt):
        try:
            return judge.chat(user(prompt), temperature=temperature, max_tokens=max_tokens)
        except JudgeError as e:
            return e

    workers = 1 if getattr(judge, "sequential", False) else \
        max(1, int(getattr(getattr(judge, "config", None), "concurrency", 1) or 1))
    if workers == 1 or len(prompts) < 2:
        return [one(p) for p in prompts]
    with ThreadPoolExecutor(max_workers=min(workers, len(prompts))) as pool:
        return list(pool.map(one, prompts))


def ask_rounds(judge: Any, prompts: Mapping[Any, str], temperatures: Sequence[float | None],
               accept: Callable[[Any, int, "str | JudgeError"], bool], max_tokens: int | None = None) -> list:
    """Ask every prompt at temperatures[0]; the ones `accept(key, try, answer)` refuses (the answer may be the
    call's JudgeError) are asked again at the next temperature. The keys never accepted, in order.

    The one retry loop of the three scorers: AI2D (3 tries at the judge's temperature), MM-Vet and MathVista
    (RISING_TEMPERATURES); `accept` records the scorer's own result and log for the key.
    """
    todo = list(prompts)
    for i_try, temperature in enumerate(temperatures):
        if not todo:
            break
        answers = ask_many(judge, [prompts[k] for k in todo], temperature=temperature, max_tokens=max_tokens)
        failed = [a for a in answers if isinstance(a, JudgeError)]
        if i_try == 0 and len(failed) == len(answers) >= 2:
            # a judge that answers nothing (server gone after its working() check was cached): an error, not
            # a table of zeros / random picks labelled with the judge's name
            raise JudgeError(f"judge {getattr(judge, 'name', judge)!r}: all {len(answers)} requests failed; "
                             f"first error: {failed[0]}")
        todo = [k for k, answer in zip(todo, answers) if not accept(k, i_try, answer)]
    return todo


def file_tag(name: str) -> str:
    """A judge name fit for file names: a local path gives its last folder, "owner/model" gives "owner_model"."""
    p = Path(str(name))
    if len(str(name)) > 0 and (p.is_absolute() or str(name).startswith((".", "~")) or p.exists()):
        name = p.name or str(name)
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", str(name)).strip("_") or "judge"
