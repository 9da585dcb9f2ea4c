"""Small benchmark files in VLMEvalKit's exact formats, from a synthetic world of shapes, words and bar charts.

    write_vlm_fixture(root, "ai2d", n=24, seed=0)    # -> <root>/AI2D_TEST.tsv: diagram MCQs, options A-D
    write_vlm_fixture(root, "mmvet", n=16)           # -> <root>/MMVet.tsv: open questions, capability tags, <AND>/<OR>
    write_vlm_fixture(root, "mathvista", n=20)       # -> <root>/MathVista_MINI.tsv: bar-chart questions, full queries
    img, scene = render_scene("bars", seed=3)        # the world, for training-data generators
    items = fixture_items("ai2d", n=100, seed=1)     # rows with PIL images (no base64), same generator as the files

`write_vlm_fixture` calls the benchmark entry's own `fixture` writer (VLMBenchmark.fixture), so a new benchmark
brings its own; the three built-in ones use this synthetic world (`world_fixture(key)`, question templates and
columns below).

Every question is answerable from its image: shapes (circle, square, triangle, diamond) in the cells of a 2x2
grid, words and digits drawn with PIL's bitmap font, bar charts with each bar's value printed above it. Some
rows reuse the previous row's image by reference (an `image` cell holding that row's index), as the real
TSVs do. Everything is a function of `seed` (and `image_size`); images are PNG, base64 in the `image` column.
"""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from .tsv import benchmark_key, dataset_name, encode_image, get_benchmark

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40), "green": (40, 160, 70), "blue": (40, 80, 220),
    "yellow": (230, 200, 30), "purple": (140, 60, 180), "orange": (240, 140, 30),
}
SHAPES = ("circle", "square", "triangle", "diamond")
SIDES = {"square": 4, "triangle": 3, "diamond": 4}
POSITIONS = ("top left", "top right", "bottom left", "bottom right")  # cell 0..3 of the 2x2 grid
WORDS = ("CAT", "DOG", "SUN", "MAP", "BOX", "CUP", "HAT", "KEY", "PEN", "BUS")
SCENE_KINDS = ("shapes", "text", "bars")
DEFAULT_N = {"ai2d": 24, "mmvet": 16, "mathvista": 20}

MATHVISTA_HINTS = {
    "integer": "Please answer the question requiring an integer answer and provide the final value, "
               "e.g., 1, 2, 3, at the end.",
    "float1": "Please answer the question requiring a floating-point number with one decimal place and provide "
              "the final value, e.g., 1.2, 1.3, 1.4, at the end.",
    "float2": "Please answer the question requiring a floating-point number with two decimal places and provide "
              "the final value, e.g., 1.23, 1.34, 1.45, at the end.",
    "list": "Please answer the question requiring a Python list as an answer and provide the final list, "
            "e.g., [1, 2, 3], [1.2, 1.3, 1.4], at the end.",
    "multi_choice": "Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end.",
}


class _Retry(Exception):
    """This scene cannot carry this question (no unique target): sample another."""


# ------------------------------------------------------------------------------------------------ world


def sample_scene(rng: random.Random, kind: str = "shapes") -> dict[str, Any]:
    """Scene metadata: shapes in grid cells, a word and two digits, or a bar chart with values 1..9."""
    if kind == "shapes":
        k = rng.randint(1, 4)
        cells = sorted(rng.sample(range(4), k))
        objects = [{"shape": rng.choice(SHAPES), "color": rng.choice(list(COLORS)), "cell": c,
                    "position": POSITIONS[c]} for c in cells]
        return {"kind": "shapes", "objects": objects}
    if kind == "text":
        return {"kind": "text", "word": rng.choice(WORDS), "numbers": [rng.randint(1, 9), rng.randint(1, 9)],
                "color": rng.choice(["red", "green", "blue", "purple"])}
    if kind == "bars":
        k = rng.randint(3, 5)
        return {"kind": "bars", "values": [rng.randint(1, 9) for _ in range(k)], "colors": rng.sample(list(COLORS), k)}
    raise ValueError(f"unknown scene kind {kind!r}; valid: {', '.join(SCENE_KINDS)}")


def draw_scene(scene: dict[str, Any], image_size: int = 64):
    """A PIL RGB image of `scene` on white."""
    from PIL import Image, ImageDraw, ImageFont

    s = int(image_size)
    img = Image.new("RGB", (s, s), (255, 255, 255))
    d = ImageDraw.Draw(img)
    font = ImageFont.load_default_imagefont()  # fixed bitmap font: the same pixels on every machine
    if scene["kind"] == "shapes":
        half = s / 2
        for ob in scene["objects"]:
            col, row = ob["cell"] % 2, ob["cell"] // 2
            x0, y0 = col * half, row * half
            m = half * 0.18
            box = (x0 + m, y0 + m, x0 + half - m, y0 + half - m)
            _shape(d, ob["shape"], box, COLORS[ob["color"]])
    elif scene["kind"] == "text":
        a, b = scene["numbers"]
        for text, y in ((scene["word"], s * 0.22), (f"{a}  {b}", s * 0.58)):
            w = d.textlength(text, font=font)
            d.text(((s - w) / 2, y), text, fill=COLORS[scene["color"]] if text == scene["word"] else (0, 0, 0),
                   font=font)
    elif scene["kind"] == "bars":
        values, colors = scene["values"], scene["colors"]
        base, top = s - 4, 14  # value labels (11 px high) sit above the tallest bar
        unit = (base - top) / 9
        slot = (s - 4) / len(values)
        d.line((2, base, s - 2, base), fill=(0, 0, 0))
        for i, (v, c) in enumerate(zip(values, colors)):
            x0 = 2 + i * slot + 1
            x1 = 2 + (i + 1) * slot - 2
            y0 = base - v * unit
            d.rectangle((x0, y0, x1, base - 1), fill=COLORS[c])
            label = str(v)
            w = d.textlength(label, font=font)
            d.text(((x0 + x1 - w) / 2, y0 - 12), label, fill=(0, 0, 0), font=font)
    else:
        raise ValueError(f"unknown scene kind {scene['kind']!r}")
    return img


def _shape(d, shape: str, box: tuple, fill) -> None:
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    if shape == "circle":
        d.ellipse(box, fill=fill)
    elif shape == "square":
        d.rectangle(box, fill=fill)
    elif shape == "triangle":
        d.polygon([(cx, y0), (x1, y1), (x0, y1)], fill=fill)
    elif shape == "diamond":
        d.polygon([(cx, y0), (x1, cy), (cx, y1), (x0, cy)], fill=fill)
    else:
        raise ValueError(f"unknown shape {shape!r}; valid: {', '.join(SHAPES)}")


def render_scene(kind: str = "shapes", *, seed: int | None = None, rng: random.Random | None = None,
                 image_size: int = 64, scene: dict[str, Any] | None = None):
    """(PIL image, scene metadata): a scene sampled from `rng` (or `seed`), or the given `scene` drawn."""
    if scene is None:
        scene = sample_scene(rng if rng is not None else random.Random(seed), kind)
    return draw_scene(scene, image_size), scene


# -------------------------------------------------------------------------------------------- questions


def _unique(values: list) -> list:
    return [v for v in values if values.count(v) == 1]


def _options(rng: random.Random, truth: Any, pool: list) -> tuple[dict[str, Any], str]:
    """Four options (truth + 3 distractors from `pool`), shuffled; (options, answer letter)."""
    others = [p for p in pool if p != truth]
    opts = rng.sample(others, 3) + [truth]
    rng.shuffle(opts)
    return dict(zip("ABCD", opts)), "ABCD"[opts.index(truth)]


def _ai2d_attribute(by: str, ask: str, pool, question: str, category: str):
    """A question generator: pick an object by its `by` attribute, ask its `ask` attribute among `pool`."""

    def make(rng, scene):
        keys = _unique([o[by] for o in scene["objects"]])
        if not keys:
            raise _Retry
        key = rng.choice(keys)
        ob = next(o for o in scene["objects"] if o[by] == key)
        opts, ans = _options(rng, ob[ask], list(pool))
        return {"question": question.format(key), **opts, "answer": ans, "category": category}

    return make


_ai2d_shape_of_color = _ai2d_attribute("color", "shape", SHAPES, "What shape is {}?", "shapeOfColor")
_ai2d_color_of_shape = _ai2d_attribute("shape", "color", COLORS, "What color is the {}?", "colorOfShape")
_ai2d_position = _ai2d_attribute("shape", "position", POSITIONS, "Where is the {}?", "shapePosition")


def _ai2d_count(rng, scene):
    shape = rng.choice(SHAPES)
    count = sum(o["shape"] == shape for o in scene["objects"])
    opts, ans = _options(rng, str(count), [str(i) for i in range(5)])
    return {"question": f"How many {shape}s are there?", **opts, "answer": ans, "category": "countShapes"}


def _mmvet_color(rng, scene):
    q = _ai2d_color_of_shape(rng, scene)
    return {"question": q["question"], "answer": q[q["answer"]], "category": "rec"}


def _mmvet_word(rng, scene):
    return {"question": "What word is written in the image?", "answer": scene["word"], "category": "ocr"}


def _mmvet_sum(rng, scene):
    a, b = scene["numbers"]
    return {"question": "What is the sum of the two numbers in the image?", "answer": str(a + b),
            "category": "ocr,math"}


def _mmvet_left_of(rng, scene):
    objs = scene["objects"]
    pairs = [(a, b) for a in objs for b in objs if a["cell"] % 2 != b["cell"] % 2]
    if not pairs:
        raise _Retry
    a, b = rng.choice(pairs)
    yes = a["cell"] % 2 < b["cell"] % 2
    return {"question": f"Is the {a['color']} {a['shape']} to the left of the {b['color']} {b['shape']}?",
            "answer": "yes" if yes else "no", "category": "rec,spat"}


def _mmvet_sides(rng, scene):
    colors = _unique([o["color"] for o in scene["objects"]])
    polys = [c for c in colors if next(o for o in scene["objects"] if o["color"] == c)["shape"] in SIDES]
    if not polys:
        raise _Retry
    color = rng.choice(polys)
    shape = next(o for o in scene["objects"] if o["color"] == color)["shape"]
    return {"question": f"How many sides does the {color} shape have?", "answer": str(SIDES[shape]),
            "category": "rec,know"}


def _mmvet_all_shapes(rng, scene):
    shapes = sorted({o["shape"] for o in scene["objects"]})
    if len(shapes) < 2:
        raise _Retry
    return {"question": "Which kinds of shapes are in the image?", "answer": "<AND>".join(shapes),
            "category": "rec"}


def _mmvet_any_color(rng, scene):
    colors = sorted({o["color"] for o in scene["objects"]})
    if len(colors) < 2:
        raise _Retry
    return {"question": "Name one color of a shape in the image.", "answer": "<OR>".join(colors), "category": "rec"}


def _mmvet_describe(rng, scene):
    parts = [f"a {o['color']} {o['shape']} at the {o['position']}" for o in scene["objects"]]
    text = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return {"question": "Describe the image in one sentence.", "answer": f"The image shows {text}.",
            "category": "rec,gen"}


def _mv(question: str, answer: str, answer_type: str, skills: list[str], *, precision: float | None = None,
        choices: list | None = None, unit: str | None = None) -> dict[str, Any]:
    qtype = "multi_choice" if choices else "free_form"
    hint_key = {"float": f"float{int(precision or 0)}"}.get(answer_type, answer_type)
    hint = MATHVISTA_HINTS["multi_choice" if choices else hint_key]
    query = f"Hint: {hint}\nQuestion: {question}"
    if unit:
        query += f" (Unit: {unit})"
    if choices:
        query += "\nChoices:\n" + "\n".join(f"({chr(65 + i)}) {c}" for i, c in enumerate(choices))
    return {"question": query, "answer": answer, "question_type": qtype, "answer_type": answer_type,
            "precision": precision, "unit": unit, "choices": str(choices) if choices else None,
            "answer_option": chr(65 + choices.index(answer)) if choices else None,
            "task": "figure question answering", "skills": str(skills)}


def _mv_max(rng, scene):
    return _mv("What is the value of the tallest bar?", str(max(scene["values"])), "integer",
               ["statistical reasoning"])


def _mv_sum(rng, scene):
    return _mv("What is the sum of the values of all bars?", str(sum(scene["values"])), "integer",
               ["arithmetic reasoning", "statistical reasoning"])


def _mv_mean(rng, scene):
    v = scene["values"]
    return _mv("What is the average value of the bars?", str(round(sum(v) / len(v), 1)), "float",
               ["statistical reasoning"], precision=1.0)


def _mv_ratio(rng, scene):
    v = scene["values"]
    return _mv("What is the ratio of the tallest bar's value to the shortest bar's value?",
               str(round(max(v) / min(v), 2)), "float", ["arithmetic reasoning"], precision=2.0)


def _mv_color(rng, scene):
    v, colors = scene["values"], scene["colors"]
    if v.count(max(v)) != 1:
        raise _Retry
    truth = colors[v.index(max(v))]
    choices = rng.sample([c for c in COLORS if c != truth], 3) + [truth]
    rng.shuffle(choices)
    return _mv("Which color is the tallest bar?", truth, "text", ["statistical reasoning"], choices=choices)


def _mv_range(rng, scene):
    v = scene["values"]
    return _mv("How much taller is the tallest bar than the shortest bar?", str(max(v) - min(v)), "integer",
               ["arithmetic reasoning"], unit="units")


def _mv_list(rng, scene):
    return _mv("What are the values of the bars from left to right?", str(scene["values"]), "list",
               ["statistical reasoning"])


# benchmark -> [(scene kind, question maker)], cycled so that a few rows already cover every template
TEMPLATES: dict[str, list[tuple[str, Callable]]] = {
    "ai2d": [("shapes", _ai2d_shape_of_color), ("shapes", _ai2d_color_of_shape), ("shapes", _ai2d_count),
             ("shapes", _ai2d_position)],
    "mmvet": [("shapes", _mmvet_color), ("text", _mmvet_word), ("shapes", _mmvet_left_of), ("text", _mmvet_sum),
              ("shapes", _mmvet_sides), ("shapes", _mmvet_all_shapes), ("shapes", _mmvet_any_color),
              ("shapes", _mmvet_describe)],
    "mathvista": [("bars", _mv_max), ("bars", _mv_mean), ("bars", _mv_color), ("bars", _mv_ratio),
                  ("bars", _mv_sum), ("bars", _mv_range), ("bars", _mv_list)],
}


def fixture_items(benchmark: str, n: int | None = None, seed: int = 0, image_size: int = 64) -> list[dict[str, Any]]:
    """The fixture rows with PIL images: {"index", "image": PIL, "image_ref": index or None, "scene", ...columns}.

    Every third row asks a second question about the previous row's scene; it keeps that row's index in
    `image_ref` (the TSV writes the reference instead of the bytes).
    """
    key = benchmark_key(benchmark)
    if key not in TEMPLATES:
        raise ValueError(f"no synthetic-world questions for {key!r}; valid: {', '.join(TEMPLATES)}")
    n = DEFAULT_N[key] if n is None else int(n)
    rng = random.Random(f"{key}:{seed}")
    templates = TEMPLATES[key]
    items: list[dict[str, Any]] = []
    k = 0
    while len(items) < n:
        reuse = len(items) % 3 == 2 and items[-1]["image_ref"] is None
        kind, make = templates[k % len(templates)]
        row = None
        if reuse and items[-1]["scene"]["kind"] == kind:
            try:
                row = make(rng, items[-1]["scene"])
                scene, ref, img = items[-1]["scene"], items[-1]["index"], items[-1]["image"]
            except _Retry:
                row = None
        if row is None:
            for _ in range(200):
                scene = sample_scene(rng, kind)
                try:
                    row = make(rng, scene)
                    break
                except _Retry:
                    continue
            else:  # pragma: no cover - every template has likely scenes
                raise RuntimeError(f"{key}: template {make.__name__} found no scene in 200 tries")
            ref, img = None, draw_scene(scene, image_size)
        items.append({"index": len(items), "image": img, "image_ref": ref, "scene": scene, **row})
        k += 1
    return items


_COLUMNS = {
    "ai2d": ["index", "image", "question", "A", "B", "C", "D", "answer", "category"],
    "mmvet": ["index", "image", "question", "answer", "category"],
    "mathvista": ["index", "image", "question", "answer", "question_type", "answer_type", "precision", "unit",
                  "choices", "answer_option", "task", "skills"],
}


def write_vlm_fixture(root: str | os.PathLike, benchmark: str, n: int | None = None, seed: int = 0,
                      image_size: int = 64) -> Path:
    """<root>/<DATASET>.tsv for "ai2d" | "mmvet" | "mathvista" | any registered VLMEvalKit benchmark with a
    fixture writer (VLMEvalKit columns, base64 PNG images)."""
    return get_benchmark(benchmark).write_fixture(root, n=n, seed=seed, image_size=image_size)


def write_world_fixture(root: str | os.PathLike, benchmark: str, n: int | None = None, seed: int = 0,
                        image_size: int = 64) -> Path:
    """<root>/<DATASET>.tsv of a built-in benchmark's questions about this module's synthetic world."""
    key = benchmark_key(benchmark)
    items = fixture_items(key, n, seed, image_size)
    rows = []
    for it in items:
        row = {c: it.get(c) for c in _COLUMNS[key]}
        row["image"] = str(it["image_ref"]) if it["image_ref"] is not None else encode_image(it["image"])
        rows.append(row)
    path = Path(os.path.expanduser(str(root))) / f"{dataset_name(key)}.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pd.DataFrame(rows, columns=_COLUMNS[key]).to_csv(tmp, sep="\t", index=False)
    os.replace(tmp, path)
    return path


def world_fixture(benchmark: str) -> Callable[..., Path]:
    """The fixture writer of a built-in benchmark (its `VLMBenchmark.fixture`): root, n, seed, image_size -> path."""
    if benchmark not in TEMPLATES:
        raise ValueError(f"no synthetic-world questions for {benchmark!r}; valid: {', '.join(TEMPLATES)}")

    def write(root: str | os.PathLike, n: int | None = None, seed: int = 0, image_size: int = 64) -> Path:
        return write_world_fixture(root, benchmark, n, seed, image_size)

    write.__name__ = f"write_{benchmark}_fixture"
    return write


def write_ai2d_fixture(root: str | os.PathLike, n: int = DEFAULT_N["ai2d"], seed: int = 0,
                       image_size: int = 64) -> Path:
    return write_vlm_fixture(root, "ai2d", n, seed, image_size)


def write_mmvet_fixture(root: str | os.PathLike, n: int = DEFAULT_N["mmvet"], seed: int = 0,
                        image_size: int = 64) -> Path:
    return write_vlm_fixture(root, "mmvet", n, seed, image_size)


def write_mathvista_fixture(root: str | os.PathLike, n: int = DEFAULT_N["mathvista"], seed: int = 0,
                            image_size: int = 64) -> Path:
    return write_vlm_fixture(root, "mathvista", n, seed, image_size)
