"""Prompt strings equal VLMEvalKit's templates (dataset defaults, InternVL, Qwen2-VL) and its judge prompts."""
import pytest

from suite.eval.vlm import PROMPT_STYLES, VLM_BENCHMARKS, build_message, build_prompt
from suite.eval.vlm.ai2d import judge_prompt
from suite.eval.vlm.mathvista import extraction_prompt
from suite.eval.vlm.mmvet import grading_prompt
from suite.registry import UnknownNameError

ROW = {"index": 3, "question": "What shape is red?", "A": "circle", "B": "square", "C": "triangle", "D": "diamond",
       "answer": "A", "category": "shapeOfColor"}
OPTS = "A. circle\nB. square\nC. triangle\nD. diamond\n"


def test_ai2d_default_is_image_mcq_dataset_prompt():
    assert build_prompt("ai2d", ROW) == (
        "Question: What shape is red?\nOptions:\n" + OPTS
        + "Please select the correct answer from the options above. \n")
    assert build_prompt("AI2D_TEST", {**ROW, "hint": "Look closely."}).startswith(
        "Hint: Look closely.\nQuestion: What shape is red?\n")
    assert "D. diamond" not in build_prompt("ai2d", {**ROW, "D": float("nan")})  # NaN options are skipped


def test_ai2d_internvl_and_qwen2vl():
    assert build_prompt("ai2d", ROW, "internvl") == (
        "What shape is red?\n" + OPTS.rstrip("\n")
        + "\nAnswer with the option's letter from the given choices directly.")
    assert build_prompt("ai2d", {**ROW, "hint": "h"}, "internvl").startswith("h\nWhat shape is red?\nA. circle")
    cn = build_prompt("ai2d", {**ROW, "question": "图中红色的是什么形状?"}, "internvl")
    assert cn.endswith("\nD. diamond\n请直接回答选项字母。")
    assert build_prompt("ai2d", ROW, "qwen2vl") == (
        "Question: What shape is red?\nOptions:\n" + OPTS + "Please select the correct answer from the options above.")
    assert build_prompt("ai2d", {**ROW, "question": "红色?"}, "qwen2vl").endswith("D. diamond\n请直接回答选项字母。")


def test_open_benchmarks_use_the_raw_question_except_qwen2vl_on_mathvista():
    q = "Hint: Please answer the question requiring an integer answer and provide the final value, e.g., 1, 2, 3, " \
        "at the end.\nQuestion: What is the value of the tallest bar?"
    for style in PROMPT_STYLES:
        assert build_prompt("mmvet", {"question": "What word is written?"}, style) == "What word is written?"
    assert build_prompt("mathvista", {"question": q}) == q == build_prompt("mathvista", {"question": q}, "internvl")
    assert build_prompt("mathvista", {"question": q}, "qwen2vl") == (
        q + "\nPlease try to answer the question with short words or phrases if possible.")
    assert VLM_BENCHMARKS.get("mathvista").build_prompt({"question": q}, style="qwen2vl").endswith("if possible.")


def test_messages_and_style_errors():
    msg = build_message("ai2d", ROW, images=["/x/3.png"])
    assert msg[0] == {"type": "image", "value": "/x/3.png"} and msg[1]["type"] == "text"
    assert build_message("ai2d", ROW, "internvl", images=["/x/3.png"])[0]["type"] == "text"
    with pytest.raises(UnknownNameError, match="did you mean 'qwen2vl'.*valid: default, internvl, qwen2vl"):
        build_prompt("ai2d", ROW, "qwen2-vl")
    with pytest.raises(UnknownNameError, match="valid: ai2d, mmvet, mathvista"):
        build_prompt("mmbench", ROW)


def test_benchmark_registry():
    assert [VLM_BENCHMARKS.get(n).dataset for n in ("ai2d", "mmvet", "mathvista")] == \
        ["AI2D_TEST", "MMVet", "MathVista_MINI"]
    assert VLM_BENCHMARKS.get("ai2d").max_new_tokens == 16
    assert sorted(VLM_BENCHMARKS.get("mathvista").scorers) == ["mathvista_official", "vlmevalkit"]


def test_mcq_judge_prompt_is_verbatim():
    expected = (
        "You are an AI assistant who will help me to match an answer with several options of a single-choice "
        "question. You are provided with a question, several options, and an answer, and you need to find which "
        "option is most similar to the answer. If the meaning of all options are significantly different from the "
        "answer, output Z. Your should output a single uppercase character in A, B, C, D (if they are valid "
        "options), and Z. \nExample 1: \nQuestion: What is the main object in image?\nOptions: A. teddy bear "
        "B. rabbit C. cat D. dog\nAnswer: a cute teddy bear\nYour output: A\nExample 2: \nQuestion: What is the "
        "main object in image?\nOptions: A. teddy bear B. rabbit C. cat D. dog\nAnswer: Spider\nYour output: Z\n"
        "Example 3: \nQuestion: What shape is red??\nOptions: There are several options: \n" + OPTS +
        "\nAnswer: it is round\nYour output: ")
    assert judge_prompt(ROW["question"], {k: ROW[k] for k in "ABCD"}, "it is round") == expected
    assert judge_prompt("红色的是什么?", {"A": "x"}, "y").startswith(
        "你是一个帮助我匹配答案与单选题中多个选项的 AI 助手。")


MMVET_HEADER = """
Compare the ground truth and prediction from AI models, to give a correctness score for the prediction.
<AND> in the ground truth means it is totally right
only when all elements in the ground truth are present in the prediction,
and <OR> means it is totally right when any one element in the ground truth is present in the prediction.
The correctness score is 0.0 (totally wrong), 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, or 1.0 (totally right).
Just complete the last space of the correctness score.

Question | Ground truth | Prediction | Correctness
--- | --- | --- | ---
What is x in the equation? | -1 <AND> -5 | x = 3 | 0.0
What is x in the equation? | -1 <AND> -5 | x = -1 | 0.5
What is x in the equation? | -1 <AND> -5 | x = -5 | 0.5
What is x in the equation? | -1 <AND> -5 | x = -5 or 5 | 0.5
What is x in the equation? | -1 <AND> -5 | x = -1 or x = -5 | 1.0
"""


MMVET_MEMES = (
    "Can you explain this meme? | This meme is poking fun at the fact that the names of the countries\n"
    "Iceland and Greenland are misleading. Despite its name, Iceland is known for its beautiful green landscapes,\n"
    "while Greenland is mostly covered in ice and snow. The meme is saying that the person has trust issues\n"
    "because the names of these countries do not accurately represent their landscapes. |\n"
    "The meme talks about Iceland and Greenland. It's pointing out that despite their names,\n"
    "Iceland is not very icy and Greenland isn't very green. | 0.4\n"
    "Can you explain this meme? | This meme is poking fun at the fact that the names of the countries\n"
    "Iceland and Greenland are misleading. Despite its name, Iceland is known for its beautiful green landscapes,\n"
    "while Greenland is mostly covered in ice and snow. The meme is saying that the person has trust issues\n"
    "because the names of these countries do not accurately represent their landscapes. |\n"
    "The meme is using humor to point out the misleading nature of Iceland's and Greenland's names.\n"
    "Iceland, despite its name, has lush green landscapes while Greenland is mostly covered in ice and snow.\n"
    "The text 'This is why I have trust issues' is a playful way to suggest\n"
    "that these contradictions can lead to distrust or confusion.\n"
    "The humor in this meme is derived from the unexpected contrast between the names of the countries\n"
    "and their actual physical characteristics. | 1.0\n")


def test_mmvet_grading_prompt_is_verbatim():
    # VLMEvalKit's copy (leading newline, hard line-wraps), then "question | gt | prediction | " with spaced <AND>
    p = grading_prompt({"question": "Which kinds of shapes are in the image?", "answer": "circle<AND>square",
                        "prediction": "a circle and a square"})
    assert p == (MMVET_HEADER + MMVET_MEMES + "\n"
                 "Which kinds of shapes are in the image? | circle <AND> square | a circle and a square | ")


def test_mathvista_extraction_prompt_is_verbatim():
    row = {"question": "Hint: h\nQuestion: What is the value of the tallest bar?", "prediction": "It is 9."}
    p = extraction_prompt(row)
    assert p.startswith(
        "\nPlease read the following example.\nThen extract the answer from the model response and type it at the "
        "end of the prompt.\n\n\nHint: Please answer the question requiring an integer answer and provide the final "
        "value,\ne.g., 1, 2, 3, at the end.\n\nQuestion: Which number is missing?\n\nModel response: The number "
        "missing in the sequence is 14.\n\nExtracted answer: 14\n\n\nHint: Please answer the question requiring a "
        "floating-point number with one decimal place")
    for fragment in ("Model response: The fraction of females facing the camera is 0.6,\nwhich means that six out "
                     "of ten females in the group are facing the camera.\n\nExtracted answer: 0.6\n",
                     "butter-scotch candy? (Unit: $)\n\nModel response: Luca needs $1.45 to buy a sour apple candy "
                     "and a butterscotch candy.\n\nExtracted answer: 1.45\n",
                     "Extracted answer: [2007, 2008]\n",
                     "Choices: (A) 3/11 (B) 8/11 (C) 6/11 (D) 3/5\n\nModel response: The correct answer is (B) "
                     "8/11.\n\nExtracted answer: B\n\n"):
        assert fragment in p
    # the typo "respone" and no newline before "Extracted answer:" are upstream's
    assert p.endswith("Extracted answer: B\n\nHint: h\nQuestion: What is the value of the tallest bar?\n"
                      "Model respone: It is 9.Extracted answer:")
