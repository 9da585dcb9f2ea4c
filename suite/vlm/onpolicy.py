"""On-policy distillation baselines for vision-language students: MiniLLM and DistiLLM (GenRecal Tab. 8 rows).

Both train on answers the STUDENT samples inside the training loop (batched), scored by a same-tokenizer
teacher, unlike the teacher-forced token losses of `kd` (whose reverse_kl / skew_kl run on the dataset's
fixed answers).

`minillm` (Gu et al., ICLR 2024): sequence-level reverse KL KL(q_θ ‖ p) over the student's own samples,
minimized by policy gradient with the paper's three devices:
- single-step decomposition: the exact per-step reverse KL Σ_v q log(q/p) over the vocabulary carries the
  immediate term (low variance, differentiated directly);
- the long-term term is REINFORCE with the length-normalized future reward R_{t+1} = mean_{t'>t} r_t',
  r_t = log p(y_t|y<t) − log q(y_t|y<t) (detached): loss −R_{t+1}·log q(y_t|y<t);
- teacher-mixed sampling: tokens are drawn from p̃ = α·p + (1−α)·q (α = `teacher_mix`, 0.2 in the paper),
  with the per-token importance weight w_t = q(y_t)/p̃(y_t), clipped to `clip_weight`.
The paper also adds a language-modelling loss on a pre-training corpus; here `ce_weight` puts the student's
CE on the dataset's own answers in its place (0 = pure MiniLLM objective).

`distillm` (Ko et al., ICML 2024): skew KL (`skew_kl`, α = 0.1) or skew reverse KL (`skew_reverse_kl`) on
an adaptive off-policy mix: each item is trained on a student-generated output (SGO) with probability φ,
else on its fixed answer. φ starts at 0 and grows by `sgo_step` up to `sgo_max` after every evaluation whose
held-out loss is not lower than the previous one by more than `loss_eps` (relative): the student is exposed
to its own outputs once teacher-forced training stops paying. The paper keeps SGOs in a replay buffer to
generate less often; here every SGO is fresh (the same objective, more generation), which is what `φ`
measures.

Sampling runs without a KV cache when the teacher mixes in (both models re-read the prefix each step:
max_new_tokens forwards, fine for short VQA answers) and through `VLM.generate_ids` (HF generate, cached)
when it does not. Sampled ids are put back after the question verbatim (`encode_qa(answer_ids=...)`), so the
scored tokens are the sampled ones. Losses are per-token means within a micro-batch, weighted by its share of
the step's items (answer lengths are only known after sampling).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from ..methods.base import METHODS, Method
from ..methods.chunked import IGNORE_INDEX
from ..methods.divergences import DIVERGENCES
from ..methods.kd import KD, KDParams
from .base import VLMMethod
from .method import answer_predictors, baseline_loss


@dataclass(frozen=True)
class MiniLLMParams:
    teacher_mix: float = 0.2        # α of teacher-mixed sampling p̃ = α·p + (1−α)·q (0: sample the student only)
    temperature: float = 1.0        # sampling temperature of the student's share
    max_new_tokens: int = 32        # longest sampled answer
    clip_weight: float = 1.5        # upper clip of the importance weight q/p̃ (it is ≥ 0 and ≤ 1/(1−α))
    ce_weight: float = 0.0          # CE on the dataset's answers (stands in for MiniLLM's pre-training loss)
    max_answer_tokens: int | None = None   # truncation of the dataset's answers (ce term)


@dataclass(frozen=True)
class DistiLLMParams:
    divergence: str = "skew_kl"     # skew_kl (SKL) | skew_reverse_kl (SRKL)
    skew_alpha: float = 0.1         # α of the skew divergences
    sgo_step: float = 0.1           # φ increment after an evaluation that did not improve
    sgo_max: float = 1.0            # cap on φ, the probability of training an item on its student sample
    loss_eps: float = 0.0           # relative improvement an evaluation must make to leave φ alone
    temperature: float = 1.0        # sampling temperature of the SGOs
    max_new_tokens: int = 32
    max_answer_tokens: int | None = None


class _OnPolicy(Method, VLMMethod):
    needs_teacher = True
    vlm_only = True
    token_level = True
    # the stage's answer_limit stays None: its held-out CE, counts and FLOPs read whole answers; max_answer_tokens
    # cuts the answers inside the loss only

    def objective(self, zs, zt, labels):
        raise TypeError(f"{type(self).__name__.lower()} trains vision-language students on their own samples: "
                        f"the cell's student must be a VLM")

    @staticmethod
    def share(stage, batch) -> float:
        """The micro-batch's share of the step's items: answers are sampled here, so each loss is a mean per
        token times it (not the step's token counts, unknown before sampling)."""
        return len(batch) / len(stage.rows)


@METHODS.register("minillm")
class MiniLLM(_OnPolicy):
    """On-policy sequence-level reverse KL by policy gradient (see the module docstring)."""

    Params = MiniLLMParams
    label = "on-policy MiniLLM"

    def vlm_loss(self, stage, batch):
        return minillm_loss(self.params, stage.student, stage.teacher, batch, self.share(stage, batch))

    def validate(self) -> None:
        p = self.params
        if not 0.0 <= p.teacher_mix < 1.0:
            raise ValueError(f"minillm.teacher_mix (α) must be in [0, 1), got {p.teacher_mix}")
        if p.temperature <= 0 or p.max_new_tokens < 1 or p.clip_weight <= 0 or p.ce_weight < 0:
            raise ValueError("minillm: temperature and clip_weight must be > 0, max_new_tokens >= 1, ce_weight >= 0")


@METHODS.register("distillm")
class DistiLLM(_OnPolicy):
    """Skew KL on an adaptive mix of student-generated and fixed answers (see the module docstring). The object
    keeps its cell's schedule: φ, and the held-out loss of the evaluation before."""

    Params = DistiLLMParams
    label = "on-policy DistiLLM"

    def __init__(self, params=None):
        super().__init__(params)
        self.phi: float | None = None       # probability of training an item on its own sample; None: not started
        self.phi_prev: float | None = None  # the held-out loss of the evaluation before

    @classmethod
    def name_parts(cls, params) -> list[str]:
        return [str(params.get("divergence", "skew_kl"))]

    def validate(self) -> None:
        p = self.params
        if p.divergence not in ("skew_kl", "skew_reverse_kl"):
            raise ValueError(f"distillm.divergence must be skew_kl or skew_reverse_kl, got {p.divergence!r}")
        if not 0.0 < p.skew_alpha < 1.0:
            raise ValueError(f"distillm.skew_alpha must be in (0, 1), got {p.skew_alpha}")
        if not (0.0 <= p.sgo_step <= 1.0 and 0.0 <= p.sgo_max <= 1.0 and p.loss_eps >= 0):
            raise ValueError("distillm: sgo_step and sgo_max must be in [0, 1], loss_eps >= 0")
        if p.temperature <= 0 or p.max_new_tokens < 1:
            raise ValueError("distillm: temperature must be > 0 and max_new_tokens >= 1")

    def next_phi(self, phi: float, previous: float | None, current: float) -> float:
        """φ after an evaluation: up by sgo_step (to sgo_max) unless the held-out loss improved enough."""
        p = self.params
        if previous is None or current < previous * (1.0 - p.loss_eps):
            return phi
        return min(p.sgo_max, phi + p.sgo_step)

    def replay_phi(self, metrics: Path) -> float:
        """φ when a cell starts: replayed from the evaluations in metrics.jsonl (which the loop cut back to the
        checkpoint it resumes from), so a resumed cell continues the schedule; 0 on a fresh start."""
        phi, prev = 0.0, None
        for rec in map(json.loads, filter(None, metrics.read_text().splitlines() if metrics.exists() else [])):
            if rec.get("kind") == "eval":
                phi, prev = self.next_phi(phi, prev, rec["heldout_loss"]), rec["heldout_loss"]
        self.phi_prev = prev
        return phi

    # ---- as the VLM stage runs it (base.VLMMethod)
    def begin_step(self, stage) -> None:
        if self.phi is None:
            self.phi = self.replay_phi(stage.out / "metrics.jsonl")

    def after_evaluate(self, stage, out: dict) -> dict:
        """The adaptive schedule: φ for the steps after this evaluation."""
        self.phi = self.next_phi(self.phi or 0.0, self.phi_prev, out["heldout_loss"])
        self.phi_prev = out["heldout_loss"]
        return {"sgo_prob": self.phi}

    def vlm_loss(self, stage, batch):
        return distillm_loss(self.params, stage.student, stage.teacher, batch, self.phi, self.share(stage, batch))


# ----------------------------------------------------------------------------- sampling

def _banned(vlm) -> list[int]:
    """Ids a sampled answer must not contain: special tokens other than the end of reply (an image placeholder
    in an answer breaks the model's image-token count) and head rows past the tokenizer."""
    tok = vlm.tokenizer
    n_head = int(vlm.head_weight.shape[0])
    return sorted((set(tok.all_special_ids) - set(vlm.stop_ids)) | set(range(len(tok), n_head)))


def _next_logits(vlm, batch, prefixes: list[list[int]]) -> torch.Tensor:
    """Logits of the next token after each row's prefix [B, V] (one forward over question + prefix)."""
    s = vlm.encode_qa(batch, answer_ids=prefixes)
    h = vlm.hidden(s.inputs)
    pos = s.q_len - 1 + torch.tensor([len(x) for x in prefixes], device=h.device)
    return (h[torch.arange(len(prefixes), device=h.device), pos] @ vlm.head_weight.T).float()


@torch.no_grad()
def sample_answers(student, batch, max_new_tokens: int, temperature: float = 1.0, teacher=None,
                   teacher_mix: float = 0.0, generator: torch.Generator | None = None) -> list[list[int]]:
    """Answer token ids sampled from the student (or from α·p_teacher + (1−α)·q_student), ending at the first
    end-of-reply token or after max_new_tokens. Uses the torch RNG (restored on resume) unless `generator`."""
    banned = _banned(student)
    if (teacher is None or teacher_mix == 0.0) and generator is None:
        return student.generate_ids([(im, q) for im, q, *_ in batch], max_new_tokens, do_sample=True,
                                    temperature=temperature, top_k=0, top_p=1.0, suppress_tokens=banned or None)
    was = student.model.training
    student.model.eval()
    stops = set(student.stop_ids)
    prefixes: list[list[int]] = [[] for _ in batch]
    live = list(range(len(batch)))
    try:
        for _ in range(max_new_tokens):
            sub = [batch[i] for i in live]
            pre = [prefixes[i] for i in live]
            z = _next_logits(student, sub, pre) / temperature
            z[:, banned] = float("-inf")
            probs = torch.softmax(z, dim=-1)
            if teacher is not None and teacher_mix > 0:
                zt = _next_logits(teacher, sub, pre)
                zt[:, banned] = float("-inf")
                probs = teacher_mix * torch.softmax(zt, dim=-1) + (1 - teacher_mix) * probs
            tok = torch.multinomial(probs.cpu(), 1, generator=generator)[:, 0].tolist()
            for i, t in zip(live, tok):
                prefixes[i].append(int(t))
            live = [i for i in live if prefixes[i][-1] not in stops]
            if not live:
                break
    finally:
        student.model.train(was)
    return prefixes


# ----------------------------------------------------------------------------- losses

def _scored(student, teacher, batch, ids: Sequence[Sequence[int]]):
    """Student log-probs (with grad), teacher log-probs, the scored ids and their mask, all [B, La(, V)]."""
    s = student.encode_qa(batch, answer_ids=ids)
    width = s.labels.shape[1]
    ls = torch.log_softmax((answer_predictors(student.hidden(s.inputs), s.q_len, s.a_len, width)
                            @ student.head_weight.T).float(), dim=-1)
    with torch.no_grad():
        t = teacher.encode_qa(batch, answer_ids=ids)
        lt = torch.log_softmax((answer_predictors(teacher.hidden(t.inputs), t.q_len, t.a_len, width)
                                @ teacher.head_weight.T).float(), dim=-1)
    mask = s.labels != IGNORE_INDEX
    y = s.labels.clamp_min(0)
    return ls, lt, y, mask


def future_reward(r: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """R_{t+1} = mean of r over the later tokens of the row (0 for the last): MiniLLM's length-normalized
    long-term reward. r, mask [B, La]."""
    r = r * mask
    later_sum = r.flip(1).cumsum(1).flip(1) - r               # Σ_{t'>t} r_t'
    later_n = mask.flip(1).cumsum(1).flip(1) - mask.long()    # how many t' > t
    return torch.where(later_n > 0, later_sum / later_n.clamp_min(1), torch.zeros_like(r))


def minillm_loss(params: MiniLLMParams, student, teacher, batch, share: float = 1.0):
    """MiniLLM's loss on one micro-batch (a per-token mean × the micro-batch's share of the step), and parts."""
    ids = sample_answers(student, batch, params.max_new_tokens, params.temperature, teacher, params.teacher_mix)
    ls, lt, y, mask = _scored(student, teacher, batch, ids)
    m = mask.float()
    lq_y = ls.gather(-1, y[..., None])[..., 0]
    with torch.no_grad():
        lp_y = lt.gather(-1, y[..., None])[..., 0]
        r = lp_y - lq_y
        R = future_reward(r, mask)
        a = params.teacher_mix
        w = (lq_y.exp() / (a * lp_y.exp() + (1 - a) * lq_y.exp())).clamp(max=params.clip_weight) if a > 0 \
            else torch.ones_like(r)
    single = DIVERGENCES.get("reverse_kl")(ls, lt)             # Σ_v q log(q/p), per token [B, La]
    per_tok = w * (single - R * lq_y)
    n = m.sum().clamp_min(1.0)
    loss = (per_tok * m).sum() / n
    parts = {"kd": float((single.detach() * m).sum() / n), "reward": float((r * m).sum() / n),
             "sample_len": float(m.sum() / len(batch))}
    if params.ce_weight > 0:
        ce = baseline_loss("sft", student, batch, max_answer_tokens=params.max_answer_tokens)[0]
        loss = loss + params.ce_weight * ce
        parts["ce"] = float(ce.detach())
    return loss * share, {k: v * share for k, v in parts.items()}


def distillm_loss(params: DistiLLMParams, student, teacher, batch, phi: float, share: float = 1.0,
                  generator: torch.Generator | None = None):
    """DistiLLM's loss on one micro-batch: each item on its student sample with probability φ, else on its
    fixed answer; the skew divergence teacher-forced on those ids. Returns (loss × share, parts)."""
    use = (torch.rand(len(batch), generator=generator) < phi).tolist() if phi > 0 else [False] * len(batch)
    ids = [student.answer_ids(a, params.max_answer_tokens) for _, _, a in batch]
    picked = [i for i, u in enumerate(use) if u]
    if picked:
        sgo = sample_answers(student, [batch[i] for i in picked], params.max_new_tokens, params.temperature)
        for i, x in zip(picked, sgo):
            ids[i] = x
    # teacher-forced skew KL on those ids: the kd baseline's chunked head loss, a mean per token
    kd = KD(KDParams(divergence=params.divergence, skew_alpha=params.skew_alpha))
    loss, _ = baseline_loss("kd", student, batch, teacher, method=kd, check_tokenizer=False, answer_ids=ids)
    parts = {"kd": float(loss.detach()), "sgo_frac": len(picked) / len(batch), "phi": phi}
    return loss * share, {k: v * share for k, v in parts.items()}


__all__ = ["MiniLLM", "MiniLLMParams", "DistiLLM", "DistiLLMParams", "sample_answers", "minillm_loss",
           "distillm_loss", "future_reward"]
