"""What the training loop trains: a `Stage`. The loop (train/loop.py) owns the optimizer, the schedule, DDP,
checkpoints, logging and result.json; a stage owns the model, the data and the loss, and says how a step is
counted. Three kinds implement it:

    TextStage                  a causal LM on token sequences: the plain cell (a token budget over fixed-length
                               examples) or a plugin's rows (suite/continual: task + replay rows, whole epochs)
    vlm.stage.VLMStage    a vision-language student (+ Recalibrator) on (image, question, answer) items

A plugin returns its stage from `config.Section.stage`; a plain cell gets a `TextStage`. The loop never asks
which kind it holds.

Normalisation: `step_norm(step)` is the divisor of the step's summed loss: the step's token count for a plain
cell (its loss is per token), the batch size for a staged cell (per example; a VLM stage scales its per-step
mean by it). The loop divides each micro-batch's sum by it (× world size, which DDP's averaging undoes), so
the gradient does not depend on how a step is split into micro-batches or processes.
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, Protocol

import torch

from ..config import CellConfig, parse_tokens
from ..eval.heldout import heldout_loss, heldout_stats
from ..methods import IGNORE_INDEX
from ..methods.divergences import TopKTeacher, topk_teacher
from ..models import (HiddenStatesLM, build_model, count_non_embedding, count_parameters, forward_flops_per_token,
                      is_tiny, model_shape, save_pretrained)


class Stage(Protocol):
    """The contract between the loop and what it trains (attributes, then methods)."""

    module: torch.nn.Module          # what the optimizer steps and DDP wraps
    steps: int                       # optimizer steps of the whole run
    tokens: int | None               # tokens the run trains (D_S); None: counted as it trains
    tokens_per_step: int | None      # a fixed count (warmup in tokens needs it); None where steps differ
    n_params: int                    # the student's non-embedding parameters (N_S)
    shape: dict                      # the student LM's shape (width for the lr scaling, layers for FLOPs)
    flops_per_token: float | None    # training FLOPs per token (3x student forward + teacher forward), for MFU
    compilable: bool                 # torch.compile may wrap `module`
    reports_ce: bool                 # its train records carry a `ce` column even when the loss has no CE term
    has_teacher: bool                # its train records carry a `kd` column

    def loss(self, fwd, step: int, offset: int, n: int) -> tuple[torch.Tensor, dict]:
        """(summed loss, its parts) of rows offset..offset+n of global batch `step`, run through `fwd` (the
        possibly DDP-wrapped and compiled `module`)."""

    def step_norm(self, step: int) -> float: ...
    def step_tokens(self, step: int) -> int: ...
    def teacher_loss(self, autocast, env) -> float | None: ...
    def evaluate(self, autocast, env) -> dict: ...       # {"heldout_loss": ..., ["heldout_stderr": ...], ...}
    def flops(self, tokens: int) -> dict: ...
    def finish(self, last_eval: float) -> dict: ...      # the stage's result.json fields
    def result_fields(self) -> dict: ...                 # core fields only the stage knows (seq_len, N_T, ...)
    def save(self, model_dir: Path) -> None: ...         # the final model (main process only)
    def eval_target(self) -> tuple[Any, Any, int]: ...   # (model in eval mode, tokenizer, held-out count): `eval:`


def _load_teacher(spec: str, data_tokenizer, device):
    """The frozen teacher, after checking it shares the data's tokenizer (kd needs one vocabulary)."""
    from ..data import load_tokenizer, same_tokenizer

    try:
        t_tok = load_tokenizer(spec)
    except Exception as e:  # noqa: BLE001 - re-raised with the reason KD needs it
        raise ValueError(f"teacher {spec!r}: cannot load its tokenizer to check it matches the student's ({e})") from e
    if not same_tokenizer(t_tok, data_tokenizer):
        raise ValueError(
            f"teacher {spec!r} uses a different tokenizer than the student/data "
            f"(vocab {len(t_tok)} vs {len(data_tokenizer)}); token-level KD needs a shared vocabulary. "
            f"For cross-tokenizer distillation use method 'genrecal'.")
    lm = build_model(spec)
    lm.requires_grad_(False)
    info = {"N_T": count_non_embedding(lm), "N_T_total": count_parameters(lm), "D_T": None,
            "teacher_shape": model_shape(lm)}
    parent_result = Path(spec).parent / "result.json"  # a teacher trained by `suite train` (…/model)
    if Path(spec).exists() and parent_result.exists():
        info["D_T"] = json.loads(parent_result.read_text()).get("D_S")
    return HiddenStatesLM(lm).to(device).eval(), info


class TextStage:
    """A causal LM trained with the method's loss on its head. `rows` is a plugin's row provider (the continual
    stage: `general` source, `model`, `steps`, `tokens`, `micro_batch`, `step_tokens`, `finish`); without it the
    cell trains exactly `train.tokens` tokens of its data source, example s·B+i at step s (examples are a pure
    function of their index, so the data position is the step), the last step's labels past D masked."""

    compilable = True
    reports_ce = True

    def __init__(self, cfg: CellConfig, method, out: Path, device, env, teacher_path: str | None = None,
                 rows=None):
        from ..data import source_from_config

        d, tc = cfg.data, cfg.train
        self.cfg, self.method, self.device, self.env, self.rows = cfg, method, device, env, rows
        if rows is not None:
            self.source = rows.general
        else:
            tokenizer_spec = d.tokenizer
            if tokenizer_spec is None and d.kind != "synthetic":
                # text data: a pretrained student (or a teacher, for KD) brings its tokenizer; tiny models get a BPE
                tokenizer_spec = ((teacher_path or cfg.teacher) if method.needs_teacher else
                                  None if is_tiny(cfg.student) else cfg.student)
            self.source = source_from_config(d, tokenizer_spec, out / "tokenizer")
        self.tok = self.source.tokenizer
        self.lm = rows.model if rows is not None else build_model(cfg.student, vocab_size=len(self.tok), seed=tc.seed)
        if self.lm.get_output_embeddings().weight.shape[0] < len(self.tok):
            raise ValueError(f"student {cfg.student!r} has {self.lm.get_output_embeddings().weight.shape[0]} "
                             f"output rows, fewer than the tokenizer's {len(self.tok)} tokens")
        self.module = HiddenStatesLM(self.lm).to(device)
        self.teacher, self.t_info = None, {}
        if method.needs_teacher:
            spec = teacher_path or cfg.teacher
            if not spec:
                raise ValueError(f"method {cfg.method.name!r} needs a teacher")
            if spec.startswith("cell:"):
                raise ValueError(f"teacher {spec!r} is a reference to a sweep cell; run it through `suite sweep`")
            self.teacher, self.t_info = _load_teacher(spec, self.tok, device)
        self.has_teacher = self.teacher is not None
        self.n_params = count_non_embedding(self.lm)
        self.shape = model_shape(self.lm)
        self.T, self.B = self.source.seq_len, tc.batch_size
        self.tokens_per_step = self.B * self.T  # at most (a stage's rows are shorter; warmup_tokens reads this)
        if rows is not None:  # full steps of B examples over the stage's epochs; `tokens` counts their tokens
            self.steps, self.tokens = rows.steps, rows.tokens
        else:
            self.tokens = parse_tokens(tc.tokens, self.n_params)
            self.steps = math.ceil(self.tokens / self.tokens_per_step)
        # FLOPs per trained token (Kaplan: 3x the student's forward, + the teacher's forward for its logits): the
        # result's `flops` and the logged MFU use the same count
        s = self.shape
        self._f_s = forward_flops_per_token(self.n_params, s["n_layers"], s["d_model"], self.T, s["vocab_size"])
        self._f_t = 0.0
        if self.teacher is not None:
            ts = self.t_info["teacher_shape"]
            self._f_t = forward_flops_per_token(self.t_info["N_T"], ts["n_layers"], ts["d_model"], self.T,
                                                ts["vocab_size"])
        self.flops_per_token = 3.0 * self._f_s + self._f_t
        self.cache = self._open_cache(teacher_path or cfg.teacher, out) if self.teacher is not None else None

    def _open_cache(self, spec: str, out: Path):
        """The teacher-output cache of a KD cell with `method.teacher_cache: topk` (train/teacher_cache.py)."""
        p = self.method.params
        mode = getattr(p, "teacher_cache", "none")
        if mode == "none":
            return None
        from .teacher_cache import TeacherCache, cache_dir, cache_key

        if self.rows is not None:
            raise ValueError(f"method.teacher_cache: {mode}: only a plain text cell's stream can be cached (this "
                             f"cell trains a plugin's rows)")
        vocab = self.teacher.head_weight.shape[0]
        k = min(int(p.cache_k), vocab)
        key = cache_key(spec, self.cfg.data, self.tok, self.T, p.temperature, k, p.cache_dtype)
        return TeacherCache(cache_dir(out), key, self.T, k, vocab, p.cache_dtype,
                            {"teacher": spec, "data": dataclasses.asdict(self.cfg.data), "temperature": p.temperature},
                            limit=self.steps * self.B)

    def _teacher_topk(self, indices: list[int]):
        """The teacher's top-k log-probabilities at T for train examples `indices`: [n, seq_len, k] twice, on the
        CPU; logits made a few thousand rows at a time, so [rows x V] stays small at large V."""
        T, k = self.method.params.temperature, self.cache.k
        vals, idxs = [], []
        step = max(1, self.cfg.train.eval_batch_size)
        W_t = self.teacher.head_weight
        with torch.no_grad():
            for a in range(0, len(indices), step):
                ex = torch.from_numpy(self.source.batch(indices[a:a + step])).to(self.device)
                h = self.teacher(ex[:, :-1])
                rows = h.reshape(-1, h.shape[-1])
                v, i = [], []
                for r in range(0, rows.shape[0], 4096):
                    t = topk_teacher(rows[r:r + 4096] @ W_t.t(), T, k)
                    v.append(t.logp.cpu())
                    i.append(t.idx.cpu())
                vals.append(torch.cat(v).view(*h.shape[:2], -1))
                idxs.append(torch.cat(i).view(*h.shape[:2], -1))
        return torch.cat(vals), torch.cat(idxs)

    # ---- a step
    def _batch(self, step: int, offset: int, n: int):
        if self.rows is not None:
            return self.rows.micro_batch(step, offset, n)
        first = step * self.B + offset
        ex = torch.from_numpy(self.source.batch(list(range(first, first + n)))).to(self.device)
        inp, lab = ex[:, :-1], ex[:, 1:]
        n_tok = self.step_norm(step)
        if n_tok < self.tokens_per_step:  # last step: keep the first n_tok label positions of the batch, in order
            pos = offset * self.T + torch.arange(n * self.T, device=self.device).view(n, self.T)
            lab = lab.masked_fill(pos >= n_tok, IGNORE_INDEX)
        return inp, lab, {}

    def loss(self, fwd, step: int, offset: int, n: int):
        inp, lab, extra = self._batch(step, offset, n)
        h = fwd(inp)
        h_t, W_t = None, None
        if self.cache is not None:   # the teacher's top-k at these examples, computed once per grid
            logp, idx = self.cache.rows(step * self.B + offset, n, self._teacher_topk)
            h_t = TopKTeacher(logp.to(self.device), idx.to(self.device)).flatten()
        elif self.teacher is not None:
            with torch.no_grad():
                h_t = self.teacher(inp)
            W_t = self.teacher.head_weight
        return self.method.loss(h, self.module.head_weight, lab, h_t, W_t, **extra)

    def step_norm(self, step: int) -> float:
        if self.rows is not None:  # a stage's loss is per example
            return self.B
        return min(self.tokens_per_step, self.tokens - step * self.tokens_per_step)

    def step_tokens(self, step: int) -> int:
        return self.rows.step_tokens(step) if self.rows is not None else self.step_norm(step)

    # ---- measurements
    def teacher_loss(self, autocast, env) -> float | None:
        if self.teacher is None:
            return None
        measure = lambda: heldout_loss(self.teacher, self.source, self.cfg.train.eval_batch_size,  # noqa: E731
                                       self.device, autocast, env)
        if self.cache is None or (env is not None and env.enabled):  # ranks measure together (all-reduce)
            return measure()
        return self.cache.scalar("teacher_heldout_loss", measure)

    def evaluate(self, autocast, env) -> dict:
        """The held-out loss with its standard error over the held-out sequences (one pass)."""
        hs = heldout_stats(self.module, self.source, self.cfg.train.eval_batch_size, self.device, autocast, env)
        return {"heldout_loss": hs["loss"], "heldout_stderr": hs["stderr"]}

    def flops(self, tokens: int) -> dict:
        """Training FLOPs. With a teacher cache, `teacher_logits` counts the teacher forwards this cell ran (the
        shards it wrote: a grid pays each once) and `teacher_logits_per_cell` what it would have run without."""
        f = {"student_train": 3.0 * self._f_s * tokens, "teacher_logits": self._f_t * tokens}
        if self.cache is not None:
            f["teacher_logits_per_cell"] = f["teacher_logits"]
            f["teacher_logits"] = self._f_t * self.cache.examples_computed * self.T
        f["total"] = f["student_train"] + f["teacher_logits"]
        return f

    def finish(self, last_eval: float) -> dict:
        if self.cache is not None:
            return {"teacher_cache": self.cache.summary()}
        return self.rows.finish(last_eval) if self.rows is not None else {}  # LoRA merged; every task seen scored

    def result_fields(self) -> dict:
        t = self.t_info
        return {"N_T": t.get("N_T"), "D_T": t.get("D_T"), "N_S_total": count_parameters(self.lm),
                "N_T_total": t.get("N_T_total"), "seq_len": self.T,
                "bayes_loss": getattr(self.source, "bayes_loss", None),
                "bayes_loss_heldout": getattr(self.source, "heldout_bayes_loss", None),
                "heldout_tokens": self.source.num_examples("heldout") * self.T, "model_shape": self.shape}

    def save(self, model_dir: Path) -> None:
        save_pretrained(self.lm, model_dir, tokenizer=self.tok)

    def eval_target(self):
        self.lm.eval()
        return self.lm, self.tok, self.source.num_examples("heldout")
