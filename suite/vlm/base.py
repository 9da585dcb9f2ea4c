"""What a vision-language method is to the VLM stage (stage.py): its loss on a micro-batch of items, and what the
stage would otherwise ask by the method's name (the continual/ pattern: methods declare, the stage reads).

    @METHODS.register("my-vlm")                  # one module (+ its import in __init__.py) and its test
    class MyVLM(Method, VLMMethod):
        Params = MyParams
        label = "my VLM loss"                    # in listings and errors
        vlm_only = True                          # its cells are VLM cells without a `vlm:` section too
        def vlm_loss(self, stage, batch):        # (images, question, answer) triples -> (loss, parts)
            ...

tests/vlm/test_toy_vlm_method.py adds one at test time and trains a cell with it. A VLM method's class is a
`VLMMethod`; the text methods that VLM cells train with too (`supervised`, `kd`: suite/methods/) get theirs from
an adapter registered in BASELINES (method.py), the one place that names them. `vlm_class(name)` finds either,
`vlm_method(name, method)` gives the stage its object.
"""
from __future__ import annotations

from typing import Any, ClassVar, Mapping, Sequence

import torch.nn as nn

from ..methods import METHODS
from ..registry import Registry

# the VLM form of a text method, by the method's registry name (filled in method.py: supervised, kd)
BASELINES: Registry[type] = Registry("VLM baseline")


class VLMMethod:
    """What the VLM stage asks a method: class attributes for what a config or grid needs to know (no model
    is built), properties and hooks for the cell the method trains. Defaults are the baselines' answers.

    A method object serves one cell (the loop makes it), so it may keep that cell's state (DistiLLM's φ).
    Hooks receive the stage, whose `student`, `teacher` (None without one), `recalibrator`, `out` (the cell
    directory), `rows` (the step's item indices), `norm` (the step's divisors, from `divisors`) and
    `answer_tokens(rows)` / `visual_tokens(rows)` (token counts of items) they may read.
    """

    label: ClassVar[str] = ""                 # what it is, in listings and errors ("same-tokenizer KD")
    staged: ClassVar[bool] = False            # cells come in stages 1-3 (method.stage; a grid's vlm.stages)
    token_level: ClassVar[bool] = False       # compares the teacher's and student's distributions token by token:
                                              # one tokenizer, checked once when the teacher loads
    names_teacher: ClassVar[bool] = True      # a cell's name carries its teacher's size label

    @classmethod
    def name_parts(cls, params: Mapping[str, Any]) -> list[str]:
        """What a cell name says of the method's parameters (raw config values), after the method's name."""
        return [f"k{params.get('stage', 1)}"] if cls.staged else []

    # ---- the cell
    @property
    def stage_no(self) -> int:
        """The stage of a staged method (its result's vlm.stage, and a seed of its item order); 0 otherwise."""
        return 0

    @property
    def answer_limit(self) -> int | None:
        """Answer tokens the stage keeps (held-out CE, step divisors, FLOPs); None: whole answers."""
        return None

    @property
    def recalibrator_config(self) -> Any:
        """The RecalibratorConfig of a Recalibrator the cell trains (GenRecal's stages 1-2), else None."""
        return None

    @property
    def student_trains(self) -> str:
        """"lm": its language model and head train (3x forward; the vision tower too with vlm.train_vision);
        "projector": the projector alone, its gradient through the frozen LM (LLaVA-KD's DPT); "none": the
        student only gives features, no head (GenRecal's stage 1). What the FLOPs count."""
        return "lm"

    @property
    def head_at_visual_tokens(self) -> bool:
        """Both models' heads also run at the image tokens (LLaVA-KD's visual KL): counted in the FLOPs."""
        return False

    def select_items(self, items: list, seed: int) -> list:
        """The training items this cell trains on, of the cell's (GenRecal's stage 3 keeps a subset)."""
        return items

    def check_teacher(self, student, teacher, items: Sequence) -> None:
        """Once, when the teacher loads: a ValueError for a pair the loss cannot compare."""
        if self.token_level:  # once here, not every micro-batch (a 150k vocabulary is a large dict)
            check_shared_tokenizer(student, teacher)

    def trainable(self, student, recalibrator, train_vision: bool) -> list[nn.Parameter]:
        """Set requires_grad on what trains; the trained parameters."""
        return train_student(student, train_vision)

    # ---- a step
    def divisors(self, stage, rows: Sequence[int]) -> dict:
        """The step's loss divisors from its items (each model's answer tokens): `stage.norm` while it runs."""
        return stage.answer_tokens(rows)

    def begin_step(self, stage) -> None:
        """A new step's items are drawn (after its divisors)."""

    def vlm_loss(self, stage, batch: Sequence[tuple]):
        """(loss, parts) of a micro-batch of (images, question, answer) triples: the terms summed over it and
        divided by the step's counts (`stage.norm`), so the loop's sum over micro-batches is the step's mean."""
        raise NotImplementedError

    # ---- evaluation, FLOPs
    def heldout_terms(self, stage, batch: Sequence[tuple]) -> dict[str, float]:
        """Mean terms of a held-out batch beside the student's CE (GenRecal: the Recalibrator's)."""
        return {}

    def after_evaluate(self, stage, out: dict) -> dict:
        """Fields added to an evaluation's record, after its held-out loss (DistiLLM: the next steps' φ)."""
        return {}

    def recalibrator_work(self, s: Sequence[tuple], t: Sequence[tuple]) -> tuple[list[int], int]:
        """(lengths of the sequences the Recalibrator runs over, teacher-head reads) for items whose student
        and teacher `_seq` tuples are s and t: [student question ; teacher answer] and each answer token."""
        return [qs + at for (qs, _, _), (_, at, _) in zip(s, t)], sum(a for _, a, _ in t)


class MethodAdapter(VLMMethod):
    """The VLM form of a text method (BASELINES): the configured method object and its parameters."""

    def __init__(self, method):
        self.method, self.params = method, method.params


def vlm_class(name: Any) -> type[VLMMethod] | None:
    """The VLM form of a method name: its class, or its adapter; None for a method no VLM cell trains."""
    if not isinstance(name, str):
        return None
    if name in BASELINES:
        return BASELINES.get(name)
    cls = METHODS.get(name) if name in METHODS else None
    return cls if isinstance(cls, type) and issubclass(cls, VLMMethod) else None


def vlm_methods() -> dict[str, str]:
    """{name: label} of every method a VLM cell trains, in registration order."""
    return {n: c.label for n in METHODS.names(sort=False) if (c := vlm_class(n)) is not None}


def not_a_vlm_method(name: str) -> str:
    return (f"method {name!r} does not train vision-language students; "
            f"valid: {', '.join(f'{k} ({v})' for k, v in vlm_methods().items())}")


def vlm_method(name: str, method) -> VLMMethod:
    """The object a VLM stage trains with: the method itself, or its adapter."""
    if isinstance(method, VLMMethod):
        return method
    if name not in BASELINES:
        raise ValueError(not_a_vlm_method(name))
    return BASELINES.get(name)(method)


# ----------------------------------------------------------------------------- the student, shared by every method

def check_shared_tokenizer(student, teacher, what: str = "the kd baseline") -> None:
    """Token-level KD needs one vocabulary: an error naming genrecal otherwise (`what`: the method, in it)."""
    from ..data.tokenizers import same_tokenizer

    if not same_tokenizer(student.tokenizer, teacher.tokenizer):
        raise ValueError(f"{what} compares token distributions, so teacher and student must share a "
                         f"tokenizer; for a cross-tokenizer pair use genrecal")


def vision_projector(student) -> nn.Module | None:
    """The student's vision-to-language projector: LLaVA's and InternVL's multi_modal_projector, Qwen2-VL's
    merger (which sits inside its vision tower `visual`); None for a family without either."""
    inner = student.model.model
    return getattr(inner, "multi_modal_projector", None) or getattr(getattr(inner, "visual", None), "merger", None)


def train_student(student, train_vision: bool = False) -> list[nn.Parameter]:
    """requires_grad as the baselines train (methods.md A.4; LLaVA's fine-tuning), as GenRecal's stage 3 and
    LLaVA-KD's stages 2-3 do: the student minus its vision encoder (language model, projector, head, input
    embeddings; Qwen2-VL's merger, inside `visual`, included), the encoder too with `train_vision`
    (vlm.train_vision). Returns the trained parameters."""
    student.model.requires_grad_(False)
    student.language_model.requires_grad_(True)
    projector = vision_projector(student)
    if projector is not None:
        projector.requires_grad_(True)
    student.model.get_output_embeddings().requires_grad_(True)
    student.model.get_input_embeddings().requires_grad_(True)
    tower = student.vision_tower
    if train_vision and tower is not None:
        tower.requires_grad_(True)
    return [p for p in student.model.parameters() if p.requires_grad]


__all__ = ["VLMMethod", "MethodAdapter", "BASELINES", "vlm_class", "vlm_method", "vlm_methods", "not_a_vlm_method",
           "check_shared_tokenizer", "vision_projector", "train_student"]
