"""Answer matching (VLMEvalKit's can_infer) and MathVista's checks on tricky replies."""
import math

import pytest

from suite.eval.vlm.matching import build_choices, build_option_str, can_infer, can_infer_option, can_infer_text
from suite.eval.vlm.mathvista import levenshtein, normalize_extracted_answer, post_check

CHOICES = {"A": "circle", "B": "square", "C": "triangle", "D": "diamond"}


@pytest.mark.parametrize("reply, expected", [
    ("A", "A"),
    ("(B)", "B"),
    ("B. square", "B"),
    ("The answer is C.", "C"),
    ("**D**", "D"),
    ("Option A seems right", "A"),
    ("A circle", "A"),                                     # a capital article reads as the letter (upstream)
    ("a circle", "A"),                                     # lower-case article: no letter; option text wins
    ("It is a triangle", "C"),                             # option text only
    ("Cannot determine the answer from the image.", "Z"),  # refusal
    ("I'm sorry, but without the image provided I cannot say.", "Z"),
    ("Z", "Z"),
    ("Failed to obtain answer via API", False),            # an API failure is not a refusal
    ("Failed to obtain answer via API. A", False),
    ("A or B", False),                                     # two letters
    ("Between A and B I would pick B", False),
    ("square or circle", False),                           # two option texts
    # last-5-tokens rule: a lone letter early in a long reply does not count ...
    ("A is wrong; the shape in the image has four equal sides so it is a square", False),
    # ... unless the reply says "answer is X" (the #1552 fallback regex, case-insensitive)
    ("I think the answer is A because the shape has no corners at all", "A"),
    ("answer is d, the rotated one drawn near the bottom of the picture", "D"),
    # option text in a reply longer than twice the options' text is ignored
    ("The shape shown in the picture is a triangle with three vertices and three edges", False),
    ("", False),
])
def test_can_infer_table(reply, expected):
    assert can_infer(reply, dict(CHOICES)) == expected


def test_last_five_tokens_boundary():
    # a letter at position > len(tokens) - 5 counts: the last four tokens (VLMEvalKit's splits.index rule)
    assert can_infer_option("so I pick B then", CHOICES) == "B"          # index 3 of 5 > 0
    assert can_infer_option("B is it for sure", CHOICES) is False       # index 0 of 5, not > 0
    assert can_infer_option("x B is it for sure", CHOICES) is False      # index 1 of 6, not > 1
    assert can_infer_option("x y B is it for", CHOICES) == "B"          # index 2 of 6 > 1


def test_option_letters_only_from_the_choices():
    three = {"A": "red", "B": "green", "C": "blue"}
    assert can_infer("D", three) is False
    assert can_infer("The answer is D", three) is False        # regex letter must be a valid option
    assert can_infer_text("GREEN!", three) == "B"              # case-insensitive
    assert can_infer_text("x" * 25, three) is False            # 25 > 2 * 12: too long to trust a text match


def test_choices_and_option_string():
    row = {"question": "q", "A": "cat", "B": "dog", "C": float("nan"), "answer": "A", "hint": "h"}
    assert build_choices(row) == {"A": "cat", "B": "dog"}
    assert build_option_str(build_choices(row)) == "There are several options: \nA. cat\nB. dog\n"


def _mv(answer, answer_type, question_type="free_form", **kw):
    return {"answer": answer, "answer_type": answer_type, "question_type": question_type, **kw}


def test_mathvista_post_check_integers_floats_lists():
    assert post_check(_mv("14", "integer"), "14", prefetch=True) == 14
    assert post_check(_mv("14", "integer"), " 14\n", prefetch=True) == 14       # int() strips whitespace
    assert post_check(_mv("14", "integer"), "14.0", prefetch=True) is False     # int("14.0") fails
    assert post_check(_mv("14", "integer"), "The answer is 14", prefetch=True) is False
    assert post_check(_mv("0", "integer"), "0", prefetch=True) == 0             # falsy: goes to the judge
    assert post_check(_mv("1.45", "float"), "1.450", prefetch=True) == 1.45
    assert post_check(_mv("0.6", "float"), "0.60001", prefetch=False) is False  # exact equality, no precision
    assert post_check(_mv("[2007, 2008]", "list"), "[2007, 2008]", prefetch=False) is False  # upstream quirk
    mc = _mv("8/11", "text", "multi_choice", choices="['3/11', '8/11', '6/11', '3/5']", answer_option="B")
    assert post_check(mc, "The correct answer is (B) 8/11.", prefetch=True) == "B"
    assert post_check(mc, "(C)", prefetch=True) == "C"                          # prefetched even when wrong
    assert post_check(mc, "C", prefetch=False) is False
    assert post_check(mc, "B", prefetch=False) is True


def test_official_normalization_rounds_and_keeps_lists():
    assert normalize_extracted_answer("1.4499", [], "free_form", "float", 2) == "1.45"
    assert normalize_extracted_answer("6.04", [], "free_form", "float", 1) == "6.0"
    assert normalize_extracted_answer("14.0", [], "free_form", "integer", None) == "14"
    assert normalize_extracted_answer("fourteen", [], "free_form", "integer", None) is None
    assert normalize_extracted_answer("[2007, 2008]", [], "free_form", "list", None) == "[2007, 2008]"
    ch = ["3/11", "8/11", "6/11", "3/5"]
    assert normalize_extracted_answer("(B) 8/11", ch, "multi_choice", "text", None) == "8/11"
    assert normalize_extracted_answer(" B ", ch, "multi_choice", "text", None) == "8/11"
    assert normalize_extracted_answer("8/12", ch, "multi_choice", "text", None) == "8/11"   # Levenshtein
    assert levenshtein("kitten", "sitting") == 3 and levenshtein("", "abc") == 3 and levenshtein("a", "a") == 0
    assert not math.isnan(float(normalize_extracted_answer("3", [], "free_form", "float", None)))
