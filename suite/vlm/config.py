"""The `vlm:` section of a cell config, and its checks (registered in suite/vlm/__init__.py).

    vlm: {train_items: 2000, kinds: [ai2d, mathvista], stages: [1, 2, 3]}   # in a grid: one cell per stage
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from ..config import ConfigError, Domain
from ..methods import METHODS
from ..registry import did_you_mean
from .base import not_a_vlm_method, vlm_class
from .items import KINDS

ANSWERS = ("auto", "short", "detailed", "teacher")

STAGES = (1, 2, 3)
# the methods a VLM cell trains with (GenRecal, SFT, teacher-forced KD, the on-policy baselines, LLaVA-KD's
# recipe) and which of them come in stages 1, 2, 3: their classes say (base.VLMMethod: label, staged)


@dataclass(frozen=True)
class VLMConfig:
    """A vision-language cell (GenRecal, LLaVA-KD and the SFT / KD baselines; suite/vlm/): the student is a VLM
    trained on visual-instruction items, whole epochs. A grid expands a genrecal or llavakd cell with `stages`
    into one cell per stage."""
    train_items: int = 2000            # synthetic visual-instruction items (items.py; data.seed draws them)
    heldout_items: int = 64            # items held out for the loop's eval loss (the student's answer CE, nats/token)
    kinds: tuple[str, ...] = ("ai2d", "mathvista")   # synthetic item kinds: AI2D-style MCQ, MathVista-style values
    style: str = "default"             # prompt style of the items: default | internvl | qwen2vl (as eval.prompt_style)
    image_size: Annotated[int, Domain(ge=8)] = 64          # rendered side of the synthetic images
    path: str | None = None            # instead of synthetic items: LLaVA-format JSON/JSONL (image, conversations)
    image_root: str | None = None      # where `path`'s relative image paths live (default: beside the file)
    epochs: float = 1.0                # passes over the training items
    init: str | None = None            # student weights the cell starts from (path / HF id / cell:<id>); None: student
    recalibrator: str | None = None    # the Recalibrator a GenRecal stage starts from (a cell dir or cell:<id>)
    stages: tuple[int, ...] = ()       # genrecal / llavakd in a grid: one chained cell per stage, e.g. [1, 2, 3]
                                       # (or [2, 3])
    train_vision: bool = False         # also train the student's vision encoder (stages 2-3 and baselines): for a
                                       # from-scratch tiny VLM; a pretrained one keeps its encoder frozen (paper)
    # what the items' answers are (GenRecal App. F): short (the benchmark's "A", "32"), detailed (the synthetic
    # world's worked responses: how a large teacher answers, to train one), teacher (very short answers replaced
    # by the teacher's own detailed response where its final answer is right: answers.py, generated once and
    # cached), auto (teacher for genrecal cells with a teacher, as in every experiment of the paper; else short)
    answers: str = "auto"
    detail_tokens: Annotated[int, Domain(ge=1)] = 64   # answers: teacher: the most tokens the teacher writes
    detail_prompt: str = ""            # answers: teacher: appended to the question when the teacher is asked (a
                                       # pretrained teacher needs e.g. "Explain briefly, then give the answer.")


def answer_source(cfg) -> str:
    """short | detailed | teacher: where a VLM cell's answers come from (vlm.answers, `auto` resolved)."""
    a = cfg.vlm.answers
    if a != "auto":
        return a
    return "teacher" if cfg.method.name == "genrecal" and cfg.teacher else "short"


def hash_view(cfg, d: dict) -> dict:
    """The `vlm:` section as the cell id hashes it: `answers: auto` that resolves to short answers (every method
    but genrecal) hashes as short answers did before the key existed, so such cells keep their ids."""
    if d.get("answers") == "auto" and answer_source(cfg) == "short":
        d = {k: v for k, v in d.items() if k != "answers"}
    return d


def reads_teacher(raw: dict) -> bool:
    """A raw grid cell that asks its teacher for answers keeps its teacher (and runs after it) even when its
    method trains without one (SFT, GenRecal stage 3)."""
    vlm = raw.get("vlm")
    return isinstance(vlm, dict) and vlm.get("answers") == "teacher"


def claims(cfg) -> bool:
    """A VLM-only method's cell (genrecal) is checked even when it leaves the section out."""
    return bool(getattr(METHODS.get(cfg.method.name), "vlm_only", False))


def check_config(cfg, source: str = "config") -> None:
    """Errors (ConfigError naming the key) for a VLM cell that cannot run."""
    v, name = cfg.vlm, cfg.method.name
    form = vlm_class(name)
    if form is None:
        raise ConfigError(f"{source}: vlm: {not_a_vlm_method(name)}")
    if cfg.continual.tasks:
        raise ConfigError(f"{source}: a cell is either a continual-learning stage or a VLM cell, not both")
    for k in v.kinds:
        if k not in KINDS:
            raise ConfigError(f"{source}: vlm.kinds: {k!r} is not a synthetic item kind{did_you_mean(k, KINDS)}; "
                              f"valid: {', '.join(KINDS)}")
    bad_stage = [s for s in v.stages if s not in STAGES]
    checks = [
        (v.train_items < 1 and not v.path, "train_items", "must be >= 1"),
        (v.heldout_items < 1, "heldout_items", "must be >= 1"),
        (v.epochs < 0, "epochs", "must be >= 0 (0: no training, the starting student is evaluated)"),
        (v.style not in ("default", "internvl", "qwen2vl"), "style", "must be default, internvl or qwen2vl"),
        (bool(bad_stage) or list(v.stages) != sorted(set(v.stages)), "stages",
         "must be increasing stages from 1, 2, 3 (e.g. [1, 2, 3], or [2, 3] to skip stage 1)"),
        (bool(v.stages) and not form.staged, "stages",
         "only a genrecal cell has stages (and a llavakd one: DPT, SFT, DFT)"),
        (bool(v.recalibrator) and name != "genrecal", "recalibrator", "only a genrecal cell has a Recalibrator"),
        (v.answers not in ANSWERS, "answers", f"must be one of {', '.join(ANSWERS)}{did_you_mean(v.answers, ANSWERS)}"),
        (v.answers == "teacher" and not cfg.teacher, "answers",
         "'teacher' needs the cell's teacher (teacher: a trained VLM, or \"@group\" in a grid) to write them"),
        (v.answers == "detailed" and bool(v.path), "answers",
         "'detailed' is the synthetic world's worked answers; a vlm.path file brings its own (or use 'teacher')"),
    ]
    for bad, key, msg in checks:
        if bad:
            raise ConfigError(f"{source}: vlm.{key}: {msg} (got {getattr(v, key)!r})")
    if form.staged and v.stages and cfg.method.params.get("stage", 1) not in v.stages:
        raise ConfigError(f"{source}: method.stage {cfg.method.params.get('stage', 1)} is not in vlm.stages "
                          f"{list(v.stages)}")
