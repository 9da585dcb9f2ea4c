"""GenRecal's Recalibrator and losses (Lee et al., "GenRecal: Generation after Recalibration"; methods.md part A).

    rec = Recalibrator(student_text_config, d_teacher=teacher_width)          # 2 student-shaped decoder blocks
    r = rec(zq_s, q_mask_s, za_t, a_mask_t)           # [B, La, d_t]: the feature that predicts answer token j
    loss, parts = genrecal_loss(r, z_t_pred, W_t, gt_t, terms=("ce", "kl"))   # through the teacher's frozen head

The Recalibrator reads [student question features ; Proj-pre(teacher answer features)], runs them through
`depth` decoder blocks built from the student's decoder config (fresh RoPE positions 0..L-1 over the joined
sequence unless `new_positions` is off), maps back with Proj-post and a LayerNorm, and is read through the
teacher's LM head. Shift: the answer token a[j] is predicted from joined position Lq-1+j (the last question
position, then every answer position but the last), and the teacher's own target distribution comes from
its position Lq_t-1+j: the same causal shift on both sides, so CE and KL line up token by token.

`GenRecal` is the registered method and its VLM stage behaviour (base.VLMMethod: items, Recalibrator, loss,
held-out terms, FLOPs); `SFT` and `KDBaseline` are the VLM forms of the text methods `supervised` and `kd`
(base.BASELINES), on `baseline_loss`.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
from dataclasses import dataclass
from typing import ClassVar, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..methods.base import METHODS, Method, ce_objective, cross_entropy_sum
from ..methods.chunked import IGNORE_INDEX, head_loss
from ..methods.divergences import forward_kl, teacher_log_probs
from ..methods.kd import KD, KDParams
from ..registry import did_you_mean
from .base import BASELINES, MethodAdapter, VLMMethod, check_shared_tokenizer, train_student, vision_projector
from .items import KINDS


@dataclass(frozen=True)
class RecalibratorConfig:
    depth: int = 2                     # decoder blocks (paper Tab. 6b: 1 -> 74.9, 2 -> 76.4, 20 -> 76.7 avg)
    new_positions: bool = True         # fresh 0..L-1 RoPE ids over [student q ; teacher a] (Tab. 6c: +6.5 avg)
    output_norm: str = "layernorm"     # after Proj-post (A.9.2): layernorm (paper's words) | rmsnorm | none (tests)
    bias: bool = False                 # Proj-pre / Proj-post bias (not stated in the paper)
    init: str = "random"               # random | student: copy the student's first `depth` decoder blocks

    def __post_init__(self):
        if self.depth < 1:
            raise ValueError(f"recalibrator depth must be >= 1, got {self.depth}")
        if self.output_norm not in ("layernorm", "rmsnorm", "none"):
            raise ValueError(f"recalibrator output_norm must be layernorm, rmsnorm or none, got {self.output_norm!r}")
        if self.init not in ("random", "student"):
            raise ValueError(f"recalibrator init must be random or student, got {self.init!r}")


def _text_config(config):
    return getattr(config, "text_config", None) or getattr(config, "get_text_config", lambda: config)()


class Recalibrator(nn.Module):
    """Proj-pre (d_t -> d_s), `depth` student decoder blocks, Proj-post (d_s -> d_t), LayerNorm."""

    def __init__(self, student_config, d_teacher: int, cfg: RecalibratorConfig = RecalibratorConfig(),
                 student_body: nn.Module | None = None):
        super().__init__()
        from transformers import AutoModel

        self.cfg = cfg
        text = copy.deepcopy(_text_config(student_config))
        text.num_hidden_layers = cfg.depth
        text.vocab_size, text.pad_token_id = 1, None   # the body reads features, never token ids
        d_s = int(text.hidden_size)
        self.d_student, self.d_teacher = d_s, int(d_teacher)
        body = AutoModel.from_config(text)
        body.norm = nn.Identity()                # the paper's LayerNorm comes after Proj-post instead
        body.embed_tokens = None
        if cfg.init == "student":
            if student_body is None:
                raise ValueError("recalibrator init 'student' needs the student's decoder (student_body)")
            for mine, theirs in zip(body.layers, student_body.layers):
                mine.load_state_dict(theirs.state_dict())
        self.body = body
        self.proj_pre = nn.Linear(self.d_teacher, d_s, bias=cfg.bias)
        self.proj_post = nn.Linear(d_s, self.d_teacher, bias=cfg.bias)
        self.norm = {"layernorm": lambda: nn.LayerNorm(self.d_teacher), "rmsnorm": lambda: nn.RMSNorm(self.d_teacher),
                     "none": nn.Identity}[cfg.output_norm]()

    def forward(self, zq: torch.Tensor, q_mask: torch.Tensor, za: torch.Tensor, a_mask: torch.Tensor,
                q_positions: torch.Tensor | None = None, a_positions: torch.Tensor | None = None,
                project_question: bool = False) -> torch.Tensor:
        """Answer-predicting features [B, La, d_t] (zeros where a_mask is 0).

        zq [B, Lq, d_s or d_t] question features with q_mask [B, Lq] (any padding side); za [B, La, d_t] teacher
        answer features with a_mask [B, La]. `project_question`: the question is the teacher's own (the
        regularization path), so Proj-pre maps it too. Without new positions, q_positions / a_positions give
        each model's original ids (1-D per sample; M-RoPE ids collapse to their temporal row).
        """
        q = self.proj_pre(zq) if project_question else zq
        a = self.proj_pre(za)
        B = q.shape[0]
        q_len, a_len = q_mask.sum(1), a_mask.sum(1)
        L = int((q_len + a_len).max())
        x = q.new_zeros(B, L, self.d_student)
        mask = q_mask.new_zeros(B, L)
        pos = torch.zeros(B, L, dtype=torch.long, device=q.device)
        for b in range(B):  # right-padded joined rows: [question tokens ; answer tokens ; pad]
            lq, la = int(q_len[b]), int(a_len[b])
            x[b, :lq] = q[b][q_mask[b].bool()]
            x[b, lq:lq + la] = a[b][a_mask[b].bool()]
            mask[b, :lq + la] = 1
            if self.cfg.new_positions:
                pos[b, :lq + la] = torch.arange(lq + la, device=q.device)
            else:
                if q_positions is None or a_positions is None:
                    raise ValueError("new_positions=False needs the models' own q_positions and a_positions")
                pos[b, :lq] = q_positions[b][q_mask[b].bool()]
                pos[b, lq:lq + la] = a_positions[b][a_mask[b].bool()]
        h = self.body(inputs_embeds=x, attention_mask=mask, position_ids=pos, use_cache=False).last_hidden_state
        r = self.norm(self.proj_post(h))
        out = r.new_zeros(B, a.shape[1], self.d_teacher)
        for b in range(B):
            lq, la = int(q_len[b]), int(a_len[b])
            idx = a_mask[b].bool().nonzero().squeeze(1)
            out[b, idx] = r[b, lq - 1:lq - 1 + la]  # position lq-1+j predicts answer token j
        return out


def _spans(hidden: torch.Tensor, starts, lengths, width: int | None = None):
    """Row b's positions starts[b] .. starts[b]+lengths[b]-1, left-aligned into [B, width, H] (zeros after),
    and the mask of the filled slots."""
    B = hidden.shape[0]
    width = int(max(lengths)) if width is None else width
    out = hidden.new_zeros(B, width, hidden.shape[-1])
    mask = torch.zeros(B, width, dtype=torch.long, device=hidden.device)
    for b in range(B):
        start, n = int(starts[b]), int(lengths[b])
        out[b, :n] = hidden[b, start:start + n]
        mask[b, :n] = 1
    return out, mask


def answer_predictors(hidden: torch.Tensor, q_len: torch.Tensor, a_len: torch.Tensor, width: int) -> torch.Tensor:
    """For right-padded [question ; answer] rows: the hidden state that predicts answer token j, i.e. position
    q_len-1+j, as [B, width, H] (zeros past each row's answer)."""
    return _spans(hidden, q_len - 1, a_len, width)[0]


def _ce_kl(terms: Sequence[str], temperature: float = 1.0):
    """Per-chunk objective: CE against the teacher's answer ids and/or forward KL(P_teacher || P_recal) at
    temperature T on both sides, times T² (T = 1: the paper's plain KL)."""
    T = float(temperature)

    def objective(zs, zt, labels):
        total = zs.new_zeros(())
        parts = {}
        if "ce" in terms:
            ce = cross_entropy_sum(zs, labels)
            total, parts["ce"] = total + ce, ce.detach()
        if "kl" in terms:
            kl = forward_kl(F.log_softmax(zs / T, dim=-1), teacher_log_probs(zt, T, None)).sum() * (T * T)
            total, parts["kl"] = total + kl, kl.detach()
        return total, parts

    return objective


def genrecal_loss(r: torch.Tensor, z_teacher: torch.Tensor, W_t: torch.Tensor, labels: torch.Tensor,
                  terms: Sequence[str] = ("ce", "kl"), chunk_size: int | None = None, temperature: float = 1.0):
    """Σ over answer tokens of CE(head_t(r), gt_t) + KL(head_t(z_t) ‖ head_t(r)), chunked over tokens.

    r, z_teacher: [B, La, d_t] answer-predicting features (Recalibrator's, teacher's own); labels [B, La] with
    IGNORE_INDEX on padding. `terms` picks the parts ("ce", "kl"); "mse" is the feature-MSE regularizer form.
    """
    if "mse" in terms:
        keep = labels != IGNORE_INDEX
        mse = (r[keep] - z_teacher[keep].detach()).pow(2).sum(-1).sum()
        return mse, {"mse": float(mse.detach())}
    W_t = W_t.detach()  # the teacher's head is frozen in every stage, whatever requires_grad says
    return head_loss(r, W_t, labels, _ce_kl(terms, temperature), h_t=z_teacher, W_t=W_t, chunk_size=chunk_size)


def answer_counts(vlm, answers: Sequence[str], max_answer_tokens: int | None = None) -> int:
    """Answer tokens `encode_qa` makes of these answers (each truncated, plus EOS): a step's loss divisor."""
    ids = vlm.tokenizer(list(answers), add_special_tokens=False)["input_ids"]
    return int(sum(len(x[:max_answer_tokens]) + 1 for x in ids))


# ----------------------------------------------------------------------------- the three stages

REGULARIZATION = {"none": (), "mse": ("mse",), "kl": ("kl",), "ce": ("ce",), "ce+kl": ("ce", "kl")}


@dataclass(frozen=True)
class GenRecalParams:
    stage: int = 1                     # 1: Recalibrator only; 2: + student LM and its CE; 3: student SFT alone
    regularization: str = "ce+kl"      # none | mse | kl | ce | ce+kl (Tab. 13: 70.1 / 71.7 / 73.5 / 74.6 / 76.4)
    reg_in_stage2: bool = True         # §3.3 "keep the stage-1 losses"; Alg. 3 omits L_reg (open point: kept)
    train_projector: bool = False      # stage 2/3 also train the student's vision projector (open point: no)
    train_head: bool = False           # stage 2 also trains the student's LM head (open point: no; stage 3 does)
    kl_temperature: float = 1.0        # T of the KL terms, × T² (A.9.4: not given; 1)
    reduction: str = "token"           # token: each term a mean over its answer tokens | sample: a sum over a
                                       # sample's tokens, mean over samples (A.9.4: not given)
    stage3_fraction: float = 1.0       # stage 3 trains on a fixed seeded subset (A.9.9: the paper's 6M of 9M ≈ 0.67)
    stage3_kinds: tuple[str, ...] | None = None  # stage 3 keeps only items of these kinds (the paper's 6M drops
                                       # general VQA); None: every kind. Applied before stage3_fraction
    main_ce: bool = True               # the main path's CE term beside its KL (Tab. 5/12 ablate it: false = KL only)
    features: str = "final_norm"       # z fed to the Recalibrator: final_norm (HF last_hidden_state; the head
                                       # reproduces the logits) | pre_norm (before the final norm) (A.9.3)
    max_answer_tokens: int | None = None
    chunk_size: int | None = None
    recalibrator: RecalibratorConfig = RecalibratorConfig()

    def __post_init__(self):
        if self.kl_temperature <= 0:
            raise ValueError(f"genrecal.kl_temperature must be > 0, got {self.kl_temperature}")
        if self.features not in ("final_norm", "pre_norm"):
            raise ValueError(f"genrecal.features must be final_norm or pre_norm, got {self.features!r}")
        if self.reduction not in ("token", "sample"):
            raise ValueError(f"genrecal.reduction must be token or sample, got {self.reduction!r}")
        if not 0 < self.stage3_fraction <= 1:
            raise ValueError(f"genrecal.stage3_fraction must be in (0, 1], got {self.stage3_fraction}")
        if self.stage3_kinds is not None:
            kinds = (self.stage3_kinds,) if isinstance(self.stage3_kinds, str) else tuple(self.stage3_kinds)
            object.__setattr__(self, "stage3_kinds", kinds)  # YAML gives a list; frozen params keep a tuple
            bad = [k for k in kinds if k not in KINDS]
            if bad or not kinds:
                raise ValueError(f"genrecal.stage3_kinds {list(kinds)!r}: valid kinds are {', '.join(KINDS)}")
        if self.stage not in (1, 2, 3):
            raise ValueError(f"genrecal.stage must be 1, 2 or 3, got {self.stage}")
        if self.regularization not in REGULARIZATION:
            raise ValueError(f"genrecal.regularization {self.regularization!r}"
                             f"{did_you_mean(self.regularization, REGULARIZATION)}; valid: {', '.join(REGULARIZATION)}")


def _question_features(hidden, q_len):
    """[B, Lq_max, H] right-padded question features and their mask, from right-padded [q ; a] rows."""
    return _spans(hidden, [0] * hidden.shape[0], q_len)


def _span_ids(ids, starts, lengths):
    """Position ids [B, L] cut into left-aligned spans [B, width] like `_spans` cuts features."""
    return _spans(ids.unsqueeze(-1), starts, lengths)[0].squeeze(-1)


def _answer_features(hidden, q_len, a_len):
    """The answer tokens' own features [B, La_max, H] (positions q_len .. q_len+a_len-1) and their mask."""
    return _spans(hidden, q_len, a_len)


def _student_ce(student, s, hidden: torch.Tensor, chunk_size: int | None, per: str = "token",
                denom: float | None = None) -> torch.Tensor:
    """The student's CE on its answer tokens from its hidden states, a mean per token (or per sample: `per`);
    `denom` replaces the micro-batch's count (the whole step's, so micro-batching does not change the loss)."""
    z = answer_predictors(hidden, s.q_len, s.a_len, s.labels.shape[1])
    ce, _ = head_loss(z, student.head_weight, s.labels, ce_objective, chunk_size=chunk_size)
    return ce / (denom if denom is not None else s.a_len.sum() if per == "token" else s.a_len.shape[0])


def set_trainable(student, recalibrator: Recalibrator | None, params: GenRecalParams,
                  train_vision: bool = False) -> list[torch.nn.Parameter]:
    """requires_grad per stage (Tab. 9): 1 → Recalibrator; 2 → + student LM body (head, projector by switch);
    3 → student minus its vision encoder. The teacher never trains; the vision encoder trains in stages 2-3 only
    with `train_vision` (vlm.train_vision: a from-scratch tiny student has no pretrained encoder). Returns the
    trained."""
    student.model.requires_grad_(False)
    if recalibrator is not None:
        recalibrator.requires_grad_(params.stage in (1, 2))
    if params.stage == 3:  # what the baselines train
        return train_student(student, train_vision)
    if params.stage == 2:
        student.language_model.requires_grad_(True)
        projector = vision_projector(student)
        if projector is not None and params.train_projector:
            projector.requires_grad_(True)
        if params.train_head:
            student.model.get_output_embeddings().requires_grad_(True)
            student.model.get_input_embeddings().requires_grad_(True)
        else:  # after the body: a tied student's head is its input embedding, and train_head: false freezes it
            student.model.get_output_embeddings().requires_grad_(False)
        tower = student.vision_tower
        if train_vision and tower is not None:
            tower.requires_grad_(True)
    trained = [p for p in student.model.parameters() if p.requires_grad]
    if recalibrator is not None:
        trained += list(recalibrator.parameters())
    return trained


def stage_loss(params: GenRecalParams, student, batch, teacher=None, recalibrator: Recalibrator | None = None,
               norm: dict | None = None):
    """Mean loss of one micro-batch of (images, question, answer) triples for the stage, and its parts.

    Each term is a mean over its answer tokens (teacher tokens for the Recalibrator terms, student tokens for
    the student's CE) and the terms are summed with weight 1, as the paper's algorithms do. `norm`
    {"teacher": n, "student": n}: divide the summed terms by these counts (a whole optimizer step's, from
    `answer_counts`) instead of the micro-batch's, so accumulation and data parallelism give the same gradient.
    """
    norm = norm or {}
    s = student.encode_qa(batch, params.max_answer_tokens)
    parts: dict[str, float] = {}
    total = torch.zeros((), device=s.labels.device)

    if params.stage == 3:
        ce = _student_ce(student, s, student.hidden(s.inputs), params.chunk_size, params.reduction,
                         norm.get("student"))
        parts["student_ce"] = float(ce.detach())
        return ce, parts
    if teacher is None or recalibrator is None:
        raise ValueError("genrecal stages 1 and 2 need the teacher and the Recalibrator")
    t = teacher.encode_qa(batch, params.max_answer_tokens)
    pre = params.features == "pre_norm"  # the Recalibrator reads states before the final norm (A.9.3)
    own = not recalibrator.cfg.new_positions  # Tab. 6c's ablation: each model's own position ids
    with torch.no_grad(), (teacher.positions() if own else contextlib.nullcontext()) as t_pos:
        ht_in, ht = teacher.hidden_pair(t.inputs) if pre else (teacher.hidden(t.inputs),) * 2
    W_t = teacher.head_weight
    La = t.labels.shape[1]
    n_t = norm.get("teacher") or (t.a_len.sum() if params.reduction == "token" else t.a_len.shape[0])
    z_t = answer_predictors(ht, t.q_len, t.a_len, La)
    za_t, am_t = _answer_features(ht_in, t.q_len, t.a_len)  # targets z_t stay post-norm: the teacher's logits
    with (torch.no_grad() if params.stage == 1 else torch.enable_grad(),
          student.positions() if own else contextlib.nullcontext() as s_pos):
        hs_in, hs = student.hidden_pair(s.inputs) if pre else (student.hidden(s.inputs),) * 2
    zq_s, qm_s = _question_features(hs_in, s.q_len)
    pos: dict[str, torch.Tensor] = {}
    if own:  # the student's ids for its question tokens, the teacher's for its answer (and question) tokens
        pos = {"q_positions": _span_ids(s_pos["ids"], [0] * len(s.q_len), s.q_len),
               "a_positions": _span_ids(t_pos["ids"], t.q_len, t.a_len)}
    r = recalibrator(zq_s, qm_s, za_t, am_t, **pos)
    main_terms = ("ce", "kl") if params.main_ce else ("kl",)
    main, p = genrecal_loss(r, z_t, W_t, t.labels, main_terms, params.chunk_size, params.kl_temperature)
    total = total + main / n_t
    parts.update({f"main_{k}": float(v) / float(n_t) for k, v in p.items()})
    terms = REGULARIZATION[params.regularization]
    if terms and (params.stage == 1 or params.reg_in_stage2):
        zq_t, qm_t = _question_features(ht_in, t.q_len)
        if own:
            pos["q_positions"] = _span_ids(t_pos["ids"], [0] * len(t.q_len), t.q_len)
        r2 = recalibrator(zq_t, qm_t, za_t, am_t, project_question=True, **pos)
        reg, p = genrecal_loss(r2, z_t, W_t, t.labels, terms, params.chunk_size, params.kl_temperature)
        total = total + reg / n_t
        parts.update({f"reg_{k}": float(v) / float(n_t) for k, v in p.items()})
    if params.stage == 2:
        ce = _student_ce(student, s, hs, params.chunk_size, params.reduction, norm.get("student"))
        total = total + ce
        parts["student_ce"] = float(ce.detach())
    return total, parts


@METHODS.register("genrecal")
class GenRecal(Method, VLMMethod):
    """GenRecal as a training-loop method: a vision-language cell (suite/vlm/stage.py) computes
    `stage_loss` for the stage in its params; the text-LM `objective` does not apply."""

    Params = GenRecalParams
    needs_teacher = True
    vlm_only = True
    label = "GenRecal"
    staged = True

    @classmethod
    def requires_teacher(cls, params) -> bool:
        """Stages 1-2 read the teacher's features and head; stage 3 trains the student alone."""
        return int(params.get("stage", 1)) in (1, 2)

    @classmethod
    def name_parts(cls, params) -> list[str]:
        return [*super().name_parts(params), f"reg{params.get('regularization', 'ce+kl')}"]

    def objective(self, zs, zt, labels):
        raise TypeError("genrecal trains vision-language students: the cell's student must be a VLM")

    # ---- as the VLM stage runs it (base.VLMMethod)
    @property
    def stage_no(self) -> int:
        return self.params.stage

    @property
    def answer_limit(self) -> int | None:
        return self.params.max_answer_tokens

    @property
    def recalibrator_config(self) -> RecalibratorConfig | None:
        return self.params.recalibrator if self.params.stage in (1, 2) else None

    @property
    def student_trains(self) -> str:
        return "none" if self.params.stage == 1 else "lm"  # stage 1: its features feed the Recalibrator

    def select_items(self, items: list, seed: int) -> list:
        """Stage 3 trains on the items of `stage3_kinds`, then a fixed seeded `stage3_fraction` of them."""
        p = self.params
        if p.stage == 3 and p.stage3_kinds is not None:
            kept = [it for it in items if it.kind in p.stage3_kinds]
            if not kept:
                raise ValueError(f"genrecal.stage3_kinds {list(p.stage3_kinds)}: no training item of those kinds "
                                 f"(the cell's items are {sorted({it.kind for it in items})})")
            items = kept
        if p.stage == 3 and p.stage3_fraction < 1:
            keep = max(1, round(p.stage3_fraction * len(items)))
            order = np.random.default_rng([seed, 3]).permutation(len(items))[:keep]
            items = [items[i] for i in sorted(order)]
        return items

    def trainable(self, student, recalibrator, train_vision: bool) -> list[nn.Parameter]:
        return set_trainable(student, recalibrator, self.params, train_vision=train_vision)

    def divisors(self, stage, rows) -> dict:
        """Per-sample reduction: the step's item count for every term; else each model's answer tokens."""
        if self.params.reduction == "sample":
            return {"teacher": len(rows), "student": len(rows)}
        return super().divisors(stage, rows)

    def vlm_loss(self, stage, batch):
        return stage_loss(self.params, stage.student, batch, stage.teacher, stage.recalibrator, norm=stage.norm)

    def heldout_terms(self, stage, batch) -> dict[str, float]:
        """Stages 1-2: the Recalibrator's main-path CE and KL in teacher tokens (a mean over the batch's)."""
        if stage.recalibrator is None:
            return {}
        main_only = dataclasses.replace(self.params, stage=1, regularization="none")
        _, parts = stage_loss(main_only, stage.student, batch, stage.teacher, stage.recalibrator)
        return {k: parts[k] for k in ("main_ce", "main_kl")}

    def recalibrator_work(self, s, t) -> tuple[list[int], int]:
        """The main path; the regularization path again over [teacher question ; teacher answer] when it runs
        (stage 1, or stage 2 with reg_in_stage2), reading the head once per term (mse: none)."""
        seqs, reads = super().recalibrator_work(s, t)
        p = self.params
        if p.regularization != "none" and (p.stage == 1 or p.reg_in_stage2):
            seqs += [qt + at for qt, at, _ in t]
            reads *= 1 if p.regularization == "mse" else 2
        return seqs, reads


# ----------------------------------------------------------------------------- baselines in the same terms

def baseline_loss(kind: str, student, batch, teacher=None, divergence: str = "forward_kl",
                  temperature: float = 1.0, skew_alpha: float = 0.1, max_answer_tokens: int | None = None,
                  chunk_size: int | None = None, method=None, norm: dict | None = None,
                  check_tokenizer: bool = True, answer_ids: Sequence[Sequence[int]] | None = None):
    """The paper's baselines on answer tokens, as a mean per student answer token, and its parts.

    kind "sft": the student's CE on the answer. kind "kd": same-tokenizer KD from the teacher's answer logits,
    `divergence` forward_kl (standard KD), reverse_kl or skew_kl (teacher-forced token-level losses; not the
    on-policy MiniLLM / DistiLLM methods, which train on the student's own samples);
    the teacher must share the student's tokenizer, since the distributions are compared token by token.
    `method`: a configured `kd` method (all its parameters: divergence, T, hard-label mix...) instead.
    `norm` {"student": n}: divide by this count instead of the micro-batch's (see `stage_loss`).
    `check_tokenizer=False`: the caller checked the pair once (`check_shared_tokenizer`), not every batch.
    `answer_ids`: token ids to train on instead of the answers (a shared tokenizer: the same ids for both).
    """
    denom = (norm or {}).get("student")

    if kind not in ("sft", "kd"):
        raise ValueError(f"unknown baseline {kind!r}; valid: sft, kd")
    s = student.encode_qa(batch, max_answer_tokens, answer_ids)
    hs = student.hidden(s.inputs)
    if kind == "sft":
        ce = _student_ce(student, s, hs, chunk_size, denom=denom)
        return ce, {"ce": float(ce.detach())}
    z_s = answer_predictors(hs, s.q_len, s.a_len, s.labels.shape[1])
    n = denom or s.a_len.sum()
    if teacher is None:
        raise ValueError("the kd baseline needs a teacher")
    if check_tokenizer:
        check_shared_tokenizer(student, teacher)
    t = teacher.encode_qa(batch, max_answer_tokens, answer_ids)
    with torch.no_grad():
        z_t = answer_predictors(teacher.hidden(t.inputs), t.q_len, t.a_len, t.labels.shape[1])
    kd = method or KD(KDParams(divergence=divergence, temperature=temperature, skew_alpha=skew_alpha,
                               chunk_size=chunk_size))
    loss, parts = kd.loss(z_s, student.head_weight, s.labels, z_t, teacher.head_weight.detach())
    return loss / n, {k: float(v) / float(n) for k, v in parts.items()}


class _Baseline(MethodAdapter):
    """A text method in a VLM cell: `baseline_loss` of its kind, with the configured method (KD: its divergence,
    T, hard-label mix) on the answer tokens."""

    kind: ClassVar[str]  # baseline_loss's "sft" | "kd"

    def vlm_loss(self, stage, batch):
        return baseline_loss(self.kind, stage.student, batch, stage.teacher, method=self.method,
                             chunk_size=getattr(self.params, "chunk_size", None), norm=stage.norm,
                             check_tokenizer=False)


@BASELINES.register("supervised")
class SFT(_Baseline):
    """The student's CE on the answers (the text method's z_loss does not apply)."""

    kind, label = "sft", "SFT"
    names_teacher = False  # a teacher it has only writes its answers


@BASELINES.register("kd")
class KDBaseline(_Baseline):
    kind, label = "kd", "same-tokenizer KD"
    token_level = True

    def __init__(self, method):
        super().__init__(method)
        if getattr(self.params, "teacher_cache", "none") != "none":
            raise ValueError("method.teacher_cache caches a text cell's token stream; a VLM cell's KD computes its "
                             "teacher on the answer tokens it samples each epoch (leave teacher_cache: none)")

    @classmethod
    def name_parts(cls, params) -> list[str]:
        parts = [str(params.get("divergence", "forward_kl"))]
        if float(params.get("kd_weight", 1.0)) < 1.0:  # the hard-label mix (λ < 1): "SFT + KD"
            parts.append(f"lam{float(params['kd_weight']):g}")
        return parts
