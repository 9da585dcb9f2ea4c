"""LLaVA-KD's three-stage recipe for vision-language students (Cai et al. 2024, "LLaVA-KD: A Framework of
Distilling Multimodal Large Language Models"), as the VLM-only method `llavakd`.

    vlm: {stages: [1, 2, 3]}      # in a grid: DPT -> SFT -> DFT, three chained cells (suite/vlm/__init__.py)
    loss, parts = llavakd_loss(LLaVAKDParams(stage=1), student, teacher, batch, norm)

A small MLLM learns from a large one that shares its tokenizer and its number of image tokens per image:
1. DPT, distilled pre-training: only the student's projector trains (vision tower and LLM frozen);
   loss = CE + MDist + RDist.
2. SFT: projector + LLM train (vision frozen); plain CE on the answers. No teacher.
3. DFT, distilled fine-tuning: projector + LLM train; CE + MDist + RDist.

Terms, each with its weight (`ce_weight`, `response_weight`, `visual_weight`, `rdist_weight`):
- ce: the student's next-token CE on the answer tokens.
- MDist, kd_response: KL(teacher ‖ student) of the next-token distributions at the answer tokens (the usual
  KD, at `temperature` on both sides, × T²).
- MDist, kd_visual: the same KL at the visual-token positions: the language model's output distributions at
  the image tokens (the head applied to the final normed hidden state at each position whose input id is the
  model's `config.image_token_id`), the k-th visual token of the student paired with the teacher's k-th.
- rdist (relation distillation): per sample, the visual tokens' self-correlation matrix R = V̂·V̂ᵀ, where the
  rows of V̂ are the L2-normalized OUTPUT LOGITS at the visual-token positions (the same tensors kd_visual
  compares, before any temperature; `rdist_on: features` correlates the final normed hidden states there
  instead), so R[i, j] is the cosine similarity of visual tokens i and j. Loss: 1 − cos(flatten(R_s),
  flatten(R_t)), a mean over samples. The logits' Gram matrix is computed as H·(WᵀW)·Hᵀ, so the [tokens ×
  vocabulary] logits are never materialized for it (the head has no bias in these families).
Every weight defaults to 1.0 and the temperature to 1: the paper's own weights and temperature were NOT
verified here, so they are parameters, not claims.

Normalization (as `stage_loss` / `baseline_loss`): each term is a sum divided by its count over the whole
optimizer step, passed in `norm` ({"student": answer tokens, "visual": visual tokens, "items": samples}), so
the loop's sum over micro-batches is the step's mean; without `norm`, the micro-batch's own counts.
Toy data: stage 1 trains on the cell's visual-instruction items (the paper pre-trains on captions; this repo
has no caption set), like stages 2 and 3.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from ..methods.base import METHODS, Method, cross_entropy_sum
from ..methods.chunked import head_loss
from ..methods.divergences import forward_kl, teacher_log_probs
from .base import VLMMethod, check_shared_tokenizer, train_student, vision_projector
from .method import GenRecalParams, answer_predictors, set_trainable

STAGES = {1: "DPT (projector only; CE + MDist + RDist)", 2: "SFT (projector + LLM; CE)",
          3: "DFT (projector + LLM; CE + MDist + RDist)"}
TEACHER_STAGES = (1, 3)
RDIST_ON = ("logits", "features")


@dataclass(frozen=True)
class LLaVAKDParams:
    stage: int = 1                      # 1 DPT | 2 SFT | 3 DFT (STAGES)
    ce_weight: float = 1.0              # CE on the answer tokens
    response_weight: float = 1.0        # MDist: KL(teacher ‖ student) at the answer tokens
    visual_weight: float = 1.0          # MDist: the same KL at the visual tokens
    rdist_weight: float = 1.0           # RDist: 1 − cos of the visual tokens' self-correlation matrices
    rdist_on: str = "logits"            # what RDist correlates: logits (the output distributions' logits) | features
    temperature: float = 1.0            # T of both KL terms, × T² (paper's value not verified: 1)
    max_answer_tokens: int | None = None
    chunk_size: int | None = None       # rows per chunk of the head losses (None: automatic)

    def __post_init__(self):
        if self.stage not in STAGES:
            raise ValueError(f"llavakd.stage must be one of {', '.join(f'{k} ({v})' for k, v in STAGES.items())}; "
                             f"got {self.stage!r}")
        for key in ("ce_weight", "response_weight", "visual_weight", "rdist_weight"):
            w = getattr(self, key)
            if not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
                raise ValueError(f"llavakd.{key} must be a finite number >= 0, got {w!r}")
        if not self.temperature > 0:
            raise ValueError(f"llavakd.temperature must be > 0, got {self.temperature!r}")
        if self.rdist_on not in RDIST_ON:
            raise ValueError(f"llavakd.rdist_on must be one of {', '.join(RDIST_ON)}, got {self.rdist_on!r}")
        if self.stage == 2 and self.ce_weight == 0:
            raise ValueError("llavakd.ce_weight: stage 2 (SFT) trains on the CE alone, so it must be > 0")
        if self.stage != 2 and not (self.ce_weight or self.response_weight or self.visual_weight or self.rdist_weight):
            raise ValueError(f"llavakd stage {self.stage}: every weight (ce_weight, response_weight, visual_weight, "
                             f"rdist_weight) is 0, so there is no loss to train on")

    @property
    def uses_teacher(self) -> bool:
        return self.stage in TEACHER_STAGES


@METHODS.register("llavakd")
class LLaVAKD(Method, VLMMethod):
    """LLaVA-KD as a training-loop method: a vision-language cell (stage.py) computes `llavakd_loss` for the
    stage in its params; the text-LM `objective` does not apply."""

    Params = LLaVAKDParams
    needs_teacher = True   # the grid keeps a teacher reference; stage cells without one drop it (expand_stages)
    vlm_only = True
    label = "LLaVA-KD (DPT, SFT, DFT)"
    staged = True
    token_level = True

    @classmethod
    def requires_teacher(cls, params) -> bool:
        """DPT and DFT distil from the teacher; SFT (stage 2) trains the student alone."""
        return int(params.get("stage", 1)) in TEACHER_STAGES

    def objective(self, zs, zt, labels):
        raise TypeError("llavakd trains vision-language students: the cell's student must be a VLM")

    # ---- as the VLM stage runs it (base.VLMMethod)
    @property
    def stage_no(self) -> int:
        return self.params.stage

    @property
    def answer_limit(self) -> int | None:
        return self.params.max_answer_tokens

    @property
    def student_trains(self) -> str:
        return "projector" if self.params.stage == 1 else "lm"

    @property
    def head_at_visual_tokens(self) -> bool:
        return self.params.uses_teacher and self.params.visual_weight > 0

    def check_teacher(self, student, teacher, items) -> None:
        """One tokenizer and as many image tokens per image, before any training (on the first item)."""
        q = items[0]
        check_pair(student, teacher, (q.images, q.question, q.answer))

    def trainable(self, student, recalibrator, train_vision: bool) -> list[torch.nn.Parameter]:
        return set_trainable_llavakd(student, self.params.stage, train_vision=train_vision)

    def divisors(self, stage, rows) -> dict:
        """+ the visual KL per visual token, RDist per sample."""
        return {**stage.answer_tokens(rows), "visual": stage.visual_tokens(rows), "items": len(rows)}

    def vlm_loss(self, stage, batch):
        return llavakd_loss(self.params, stage.student, stage.teacher, batch, norm=stage.norm, check_tokenizer=False)


def set_trainable_llavakd(student, stage: int, train_vision: bool = False) -> list[torch.nn.Parameter]:
    """requires_grad per stage: DPT (1) the projector alone; SFT and DFT (2, 3) what GenRecal's stage 3 and the
    baselines train (the student minus its vision tower: projector, LLM, head; the tower too with
    `train_vision`). Returns the trained parameters."""
    if stage != 1:
        return train_student(student, train_vision)
    set_trainable(student, None, GenRecalParams(stage=1))  # no Recalibrator: every student weight frozen
    projector = vision_projector(student)
    if projector is None:
        raise ValueError(f"llavakd stage 1 trains the student's vision projector, and {student.family!r} has none "
                         f"that this code knows (multi_modal_projector, or visual.merger)")
    projector.requires_grad_(True)
    return [p for p in student.model.parameters() if p.requires_grad]


# ----------------------------------------------------------------------------- visual tokens

def image_token_id(vlm) -> int:
    tid = getattr(vlm.model.config, "image_token_id", None)
    if tid is None:
        raise ValueError(f"{vlm.name!r}: its config has no image_token_id, so its visual tokens cannot be found")
    return int(tid)


def visual_positions(vlm, input_ids: torch.Tensor) -> list[torch.Tensor]:
    """Per row, the positions whose input id is the model's image token (in order)."""
    tid = image_token_id(vlm)
    return [(row == tid).nonzero().squeeze(1) for row in input_ids]


def _mismatch(student, teacher, n_s: int, n_t: int, n_images: int) -> ValueError:
    per = max(n_images, 1)
    return ValueError(f"llavakd pairs visual tokens one to one, so teacher and student need the same number of "
                      f"image tokens per image: the teacher {teacher.name!r} has {n_t // per}, the student "
                      f"{student.name!r} has {n_s // per} (e.g. tiny-llava and tiny-llava-m: 16 each)")


def check_pair(student, teacher, item) -> None:
    """Once before training: one tokenizer, and as many image tokens per image, on the item (images, question,
    answer). ValueError naming what differs."""
    check_shared_tokenizer(student, teacher, what="llavakd")
    s, t = (vlm.encode_qa([item]) for vlm in (student, teacher))
    n_s, n_t = (len(visual_positions(vlm, x.inputs["input_ids"])[0]) for vlm, x in ((student, s), (teacher, t)))
    if n_s != n_t:
        raise _mismatch(student, teacher, n_s, n_t, len(item[0]))


def correlation(h: torch.Tensor, metric: torch.Tensor | None = None) -> torch.Tensor:
    """R [N, N]: the cosine similarity of every pair of rows of V, where V = h·Wᵀ when `metric` is WᵀW (the
    rows' logits, without forming them) and V = h when it is None. float32."""
    h = h.float()
    gram = h @ metric @ h.T if metric is not None else h @ h.T
    norm = gram.diagonal().clamp_min(1e-12).sqrt()
    return gram / (norm[:, None] * norm[None, :])


def rdist(r_s: torch.Tensor, r_t: torch.Tensor) -> torch.Tensor:
    """1 − cosine similarity of the flattened correlation matrices (one sample)."""
    return 1.0 - F.cosine_similarity(r_s.flatten(), r_t.flatten().detach(), dim=0)


# ----------------------------------------------------------------------------- the loss

def _objective(ce_weight: float, kl_weight: float, T: float):
    """Per chunk: ce_weight · Σ CE + kl_weight · T² · Σ KL(P_teacher,T ‖ P_student,T); parts the raw sums."""

    def objective(zs, zt, labels):
        total, parts = zs.new_zeros(()), {}
        if ce_weight:
            ce = cross_entropy_sum(zs, labels)
            total, parts["ce"] = total + ce_weight * ce, ce.detach()
        if kl_weight:
            kl = forward_kl(F.log_softmax(zs / T, dim=-1), teacher_log_probs(zt, T, None)).sum() * (T * T)
            total, parts["kl"] = total + kl_weight * kl, kl.detach()
        return total, parts

    return objective


def llavakd_loss(params: LLaVAKDParams, student, teacher, batch: Sequence, norm: dict | None = None,
                 check_tokenizer: bool = True):
    """(loss, parts) of one micro-batch of (images, question, answer) triples for the stage (module docstring).

    parts: the unweighted terms as floats, each normalized like the loss: ce, and in stages 1 and 3 kd_response,
    kd_visual, rdist (a term whose weight is 0 is not computed and not reported). `check_tokenizer=False`: the
    caller checked the pair once (`check_pair`)."""
    norm = norm or {}
    p = params
    distil = p.uses_teacher
    if distil and teacher is None:
        raise ValueError(f"llavakd stage {p.stage} distils from the teacher: pass one")
    if distil and check_tokenizer:
        check_shared_tokenizer(student, teacher, what="llavakd")
    s = student.encode_qa(batch, p.max_answer_tokens)
    hs = student.hidden(s.inputs)
    W_s = student.head_weight
    width = s.labels.shape[1]
    total = hs.new_zeros((), dtype=torch.float32)
    parts: dict[str, float] = {}

    kl_w = p.response_weight if distil else 0.0
    ce_w = p.ce_weight
    ht = t = None
    if distil:
        t = teacher.encode_qa(batch, p.max_answer_tokens)
        with torch.no_grad():
            ht = teacher.hidden(t.inputs)
    if ce_w or kl_w:
        # one tokenizer: both sides' answer j is the same token; each model's own q_len places it
        z_s = answer_predictors(hs, s.q_len, s.a_len, width)
        z_t = answer_predictors(ht, t.q_len, t.a_len, width) if kl_w else None
        n = norm.get("student") or s.a_len.sum()
        ans, sums = head_loss(z_s, W_s, s.labels, _objective(ce_w, kl_w, p.temperature), h_t=z_t,
                              W_t=teacher.head_weight.detach() if kl_w else None, chunk_size=p.chunk_size)
        total = total + ans / n
        parts.update({name: float(sums.get(key, 0.0)) / float(n)
                      for name, key, w in (("ce", "ce", ce_w), ("kd_response", "kl", kl_w)) if w})
    if not distil or not (p.visual_weight or p.rdist_weight):
        return total, parts

    pos_s = visual_positions(student, s.inputs["input_ids"])
    pos_t = visual_positions(teacher, t.inputs["input_ids"])
    for b, (a, c) in enumerate(zip(pos_s, pos_t)):
        if len(a) != len(c):
            raise _mismatch(student, teacher, len(a), len(c), len(batch[b][0]))
    if p.visual_weight:
        vs = torch.cat([hs[b, i] for b, i in enumerate(pos_s)])
        vt = torch.cat([ht[b, i] for b, i in enumerate(pos_t)])
        n_vis = norm.get("visual") or vs.shape[0]
        labels = torch.zeros(vs.shape[0], dtype=torch.long, device=vs.device)  # every row kept; the KL ignores them
        vis, sums = head_loss(vs, W_s, labels, _objective(0.0, 1.0, p.temperature), h_t=vt,
                              W_t=teacher.head_weight.detach(), chunk_size=p.chunk_size)
        total = total + p.visual_weight * vis / max(n_vis, 1)
        parts["kd_visual"] = float(sums.get("kl", 0.0)) / max(float(n_vis), 1.0)
    if p.rdist_weight:
        logits = p.rdist_on == "logits"
        m_s = W_s.float().T @ W_s.float() if logits else None
        with torch.no_grad():
            W_t = teacher.head_weight.float()
            m_t = W_t.T @ W_t if logits else None
        terms = [rdist(correlation(hs[b, i], m_s), correlation(ht[b, j], m_t))
                 for b, (i, j) in enumerate(zip(pos_s, pos_t)) if len(i)]
        n_items = norm.get("items") or len(batch)
        rd = torch.stack(terms).sum() if terms else total.new_zeros(())
        total = total + p.rdist_weight * rd / n_items
        parts["rdist"] = float(rd.detach()) / n_items
    return total, parts


__all__ = ["LLaVAKD", "LLaVAKDParams", "llavakd_loss", "set_trainable_llavakd", "check_pair", "correlation",
           "rdist", "visual_positions", "STAGES", "TEACHER_STAGES"]
