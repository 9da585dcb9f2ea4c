"""Answer matching as VLMEvalKit does it (`vlmeval/utils/matching_util.py`): which option does a reply choose?

    can_infer("The answer is (B).", {"A": "cat", "B": "dog"})   # -> "B"
    can_infer("a dog", {"A": "cat", "B": "dog"})                # -> "B" (option text, step 2)
    can_infer("Cannot determine the answer", choices)          # -> "Z" (a refusal)
    can_infer("Failed to obtain answer via API", choices)      # -> False

Return values follow upstream: a letter, "Z", or False (callers rely on truthiness). The rules, in order:

1. `can_infer_option`: a failed API call is False; a known refusal is "Z". Otherwise `.()[],:;!*#{}` become
   spaces and the reply is split on whitespace. When exactly one option letter occurs as a token and its first
   occurrence is at position > len(tokens) - 5 (the last four tokens: upstream's "near the end" rule, #1175),
   that letter; when no letter occurs and "Z" does, "Z". Then the fallback regex
   `(?i)(?:correct\\s+)?answer\\s+is\\s+\\**([ABCD])\\**` (#1552) on the raw reply.
2. `can_infer_text`: False when the reply is longer than twice the options' total text; else the one option
   whose text occurs (case-insensitive) in the reply.

Upstream's `VERBOSE`-only "A might be a quantifier" check is not reproduced (it is off by default).
"""
from __future__ import annotations

import re
import string
from typing import Any, Mapping

import pandas as pd

FAIL_MSG = "Failed to obtain answer via API"
REFUSALS = (
    "Sorry, I can't help with images of people yet.",
    "I can't process this file.",
    "I'm sorry, but without the image provided",
    "Cannot determine the answer",
)
_PUNCT = ".()[],:;!*#{}"
_ANSWER_IS = re.compile(r"(?i)(?:correct\s+)?answer\s+is\s+\**([ABCD])\**")
_CJK = re.compile("[\u4e00-\u9fff]")


def _tokens(answer: str) -> list[str]:
    for ch in _PUNCT:
        answer = answer.replace(ch, " ")
    return answer.split()


def can_infer_option(answer: str, choices: Mapping[str, Any]) -> str | bool:
    """The option letter named in `answer`, "Z" for a refusal, else False."""
    if FAIL_MSG in answer:
        return False
    if any(r in answer for r in REFUSALS):
        return "Z"
    tokens = _tokens(answer)
    present = [c for c in choices if c in tokens]
    if len(present) == 1:
        letter = present[0]
        if tokens.index(letter) > len(tokens) - 5:
            return letter
    elif not present and "Z" in tokens:
        return "Z"
    m = _ANSWER_IS.search(answer or "")
    if m and m.group(1).upper() in choices:
        return m.group(1).upper()
    return False


def can_infer_text(answer: str, choices: Mapping[str, Any]) -> str | bool:
    """The one option whose text occurs in `answer` (case-insensitive), unless `answer` is much longer."""
    low = answer.lower()
    if len(low) > 2 * sum(len(str(v)) for v in choices.values()):
        return False
    hits = [k for k, v in choices.items() if str(v).lower() in low]
    return hits[0] if len(hits) == 1 else False


def can_infer(answer: Any, choices: Mapping[str, Any]) -> str | bool:
    answer = str(answer)
    return can_infer_option(answer, choices) or can_infer_text(answer, choices)


def build_choices(row: Mapping[str, Any]) -> dict[str, Any]:
    """{"A": text, ...} from a row's single-uppercase-letter columns that are not NaN."""
    return {c: row[c] for c in string.ascii_uppercase if c in row and not _isna(row[c])}


def build_option_str(choices: Mapping[str, Any]) -> str:
    """The option list of the MCQ judge prompt: "There are several options: \\nA. x\\nB. y\\n"."""
    return "There are several options: \n" + "".join(f"{c}. {v}\n" for c, v in choices.items())


def cn_string(s: Any) -> bool:
    return bool(_CJK.search(str(s)))


def _isna(v: Any) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


_FINAL = re.compile(r"(?i)answer\s+is\s*:?\s*")


def final_answer(response: Any) -> str | None:
    """The final answer a worked response states: the text after its last "answer is" on that line, without
    the closing period, bold marks or brackets around an option letter ("The answer is (B)." -> "B"); None
    when the response states none. What the `rule` judge extracts and what App. F's correctness check reads."""
    text = str(response or "")
    hits = list(_FINAL.finditer(text))
    if not hits:
        return None
    tail = text[hits[-1].end():].split("\n")[0].strip()
    tail = tail[:-1] if tail.endswith(".") else tail
    tail = tail.strip().strip("*").strip()
    m = re.fullmatch(r"\(([A-Z])\)(?:\s.*)?", tail)
    return m.group(1) if m else (tail or None)


def same_answer(got: Any, want: Any) -> bool:
    """Two final answers are the same: equal text (case and outer spaces ignored) or equal numbers."""
    a, b = str(got).strip().lower(), str(want).strip().lower()
    if a == b:
        return True
    try:
        return float(a) == float(b)
    except ValueError:
        return False
