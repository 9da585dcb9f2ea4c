"""A vision-language cell as the training loop sees it (suite/train/loop.py): GenRecal's stages and the baselines.

    stage = open_vlm_stage(cfg, method, out_dir, device, env, teacher_path)
    stage.module              # nn.Module the loop optimizes and checkpoints: the student VLM (+ the Recalibrator)
    stage.steps               # ceil(epochs · items / B) full steps
    items = stage.micro_batch(step, offset, n)    # (images, question, answer) triples
    loss, parts = fwd(items)  # the module's forward: the method's loss, a mean per answer token of the micro-batch
    stage.evaluate()          # {"heldout_loss": student answer CE on held-out items, + Recalibrator terms}
    stage.save(out_dir)       # the student alone (model/), and the Recalibrator beside it for the next stage
    fields = stage.finish(...)

Which loss (methods.md A.4): `genrecal` stage 1 (Recalibrator: main + regularization path), stage 2 (+ student
LM and its CE), stage 3 (student SFT, teacher and Recalibrator dropped); `supervised` = SFT on the answers;
`kd` = same-tokenizer KD on the answers with the method's divergence (forward KL; the teacher-forced reverse KL
and skew KL losses) and its hard-label mix; `minillm` and `distillm` = the on-policy methods, on answers the
student samples during training (onpolicy.py); `llavakd` = LLaVA-KD's stage 1 (DPT: the projector alone, CE +
MDist + RDist), 2 (SFT) or 3 (DFT: CE + MDist + RDist) (llavakd.py). Each is the method's `vlm_loss`, and what
else differs by method the stage asks the method too (base.VLMMethod). Items come in a seeded order per epoch
(the continual Plan), so a resumed cell reads the batches it would have.
"""
from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import torch
import torch.nn as nn

from .._io import atomic_replace_dir, mkdtemp
from ..continual.stage import Plan
from ..models import count_non_embedding, forward_flops_per_token, model_shape
from ..models.vlm import TINY_VLMS, build_vlm, is_vlm, load_vlm
from ..refs import resolve_model_ref
from .base import vlm_method
from .items import VisualQA, instruction_items
from .method import Recalibrator, RecalibratorConfig, _student_ce, answer_counts
from .config import answer_source
from .llavakd import visual_positions

RECALIBRATOR_DIR = "recalibrator"


class VLMObjective(nn.Module):
    """The student VLM and the Recalibrator as one module; forward(items) is the cell's loss.

    One module, so the optimizer, the checkpoint and DDP see every trained parameter, and DDP's gradient
    hooks fire because the loss is computed inside its forward. The teacher is not a submodule: it is frozen
    and never checkpointed."""

    def __init__(self, student, recalibrator: Recalibrator | None, loss_fn):
        super().__init__()
        self.student = student.model
        self.recalibrator = recalibrator
        self._loss_fn = loss_fn

    def forward(self, items):
        return self._loss_fn(items)


def _dataset_items(kind: str, root, style: str):
    """An evaluation TSV's items as VisualQA (to keep them out of the training set), or [] without the file."""
    from ..eval.vlm.prompts import build_prompt
    from ..eval.vlm.tsv import dataset_file, dataset_name, decode_image, load_dataset

    name = dataset_name(kind)
    try:
        if not dataset_file(name, root).exists():
            return []
    except FileNotFoundError:
        return []
    out = []
    for row in load_dataset(name, root).to_dict("records"):
        image = row.get("image")
        if isinstance(image, str) and len(image) > 64:
            out.append(VisualQA(decode_image(image), build_prompt(kind, row, style), "", kind))
    return out


def read_llava(path: str | Path, image_root: str | Path | None = None):
    """LLaVA-format instruction data (JSON list or JSONL of {"image", "conversations": [{"from": "human",
    "value": "<image>\\n..."}, {"from": "gpt", "value": ...}, ...]}) as VisualQA: every human/gpt pair is an item
    (the image on each), the <image> placeholder removed (the chat template places the image)."""
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"vlm.path {str(path)!r}: no such file (LLaVA-format JSON or JSONL of image, "
                                f"conversations)")
    text = path.read_text()
    rows = [json.loads(ln) for ln in text.splitlines() if ln.strip()] if path.suffix == ".jsonl" else json.loads(text)
    root = Path(image_root) if image_root else path.parent
    out = []
    for i, row in enumerate(rows):
        conv = row.get("conversations")
        if not isinstance(conv, list) or "image" not in row:
            raise ValueError(f"{path}: row {i} is not LLaVA format (needs 'image' and a 'conversations' list)")
        image = Image.open(root / row["image"]).convert("RGB")
        for q, a in zip(conv[0::2], conv[1::2]):
            if q.get("from") != "human" or a.get("from") != "gpt":
                raise ValueError(f"{path}: row {i}: conversations must alternate human, gpt; got "
                                 f"{q.get('from')!r}, {a.get('from')!r}")
            question = q["value"].replace("<image>\n", "").replace("<image>", "").strip()
            out.append(VisualQA(image, question, a["value"], "llava"))
    return out


def load_items(cfg):
    """(train, heldout) VisualQA lists of a cell: its LLaVA file, or synthetic items that avoid the eval TSVs."""
    v = cfg.vlm
    if v.path:
        items = read_llava(v.path, v.image_root)
        random.Random(cfg.data.seed).shuffle(items)
    else:
        exclude = [q for k in v.kinds for q in _dataset_items(k, cfg.eval.data_root, v.style)]
        items = instruction_items(v.train_items + v.heldout_items, seed=cfg.data.seed, kinds=v.kinds,
                                  style=v.style, exclude=exclude, image_size=v.image_size,
                                  answers="detailed" if answer_source(cfg) == "detailed" else "short")
    # held-out items come first, so cells that differ only in train_items (a teacher trained on more items than
    # its students) share one held-out set, and none of it is in any of their training sets
    n_held = min(v.heldout_items, len(items) // 2)
    return items[n_held:], items[:n_held]


_BPE_ITEMS = 2000


def _student_tokenizer(cfg, items, out: Path):
    """A tiny student's tokenizer: data.tokenizer, or a byte-level BPE of data.tokenizer_vocab_size entries
    trained on the cell's question and answer texts (saved under out/tokenizer, reused on resume)."""
    from ..data.tokenizers import load_tokenizer, train_bpe

    if cfg.data.tokenizer:
        return load_tokenizer(cfg.data.tokenizer)
    cache = out / "tokenizer"
    if (cache / "tokenizer.json").exists():
        return load_tokenizer(cache)
    # the first 2000 items only: a few-hundred-token BPE has settled by then, and cells whose item lists share a
    # prefix (a teacher trained on more items than its students) get the same tokenizer, as same-tokenizer KD needs
    texts = [f"{q.question} {q.answer}" for q in items[:_BPE_ITEMS]]
    return train_bpe(texts, vocab_size=cfg.data.tokenizer_vocab_size, out_dir=cache)


def save_recalibrator(rec: Recalibrator, out_dir: Path, info: dict) -> None:
    """model.safetensors + config.json (the RecalibratorConfig, both widths, the student config it was built on)."""

    from safetensors.torch import save_file

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = mkdtemp(out_dir.parent, f".{out_dir.name}.")
    save_file({k: v.detach().contiguous().cpu() for k, v in rec.state_dict().items()}, str(tmp / "model.safetensors"))
    (tmp / "config.json").write_text(json.dumps({**info, "recalibrator": dataclasses.asdict(rec.cfg),
                                                 "d_student": rec.d_student, "d_teacher": rec.d_teacher},
                                                indent=2, sort_keys=True))
    atomic_replace_dir(tmp, out_dir)


def load_recalibrator_weights(rec: Recalibrator, path: Path) -> None:
    from safetensors.torch import load_file

    meta = json.loads((path / "config.json").read_text())
    if (meta["d_student"], meta["d_teacher"]) != (rec.d_student, rec.d_teacher):
        raise ValueError(f"{path}: Recalibrator of widths {meta['d_student']}->{meta['d_teacher']}, this pair needs "
                         f"{rec.d_student}->{rec.d_teacher}")
    rec.load_state_dict(load_file(str(path / "model.safetensors")))


class VLMStage:
    """The loop's stage (train/stage.py `Stage`) for a vision-language cell: it trains `module` (student +
    Recalibrator + objective); its loss is per example, its tokens are counted as it trains. What differs by
    method, it asks the method (`self.vlm`, a base.VLMMethod), never its name."""

    tokens_per_step = None   # answers differ in length: warmup in tokens has no fixed step
    flops_per_token = None   # FLOPs are counted per sequence (flops), not per token: no MFU line
    compilable = False
    reports_ce = False       # `ce` in a train line only when the method's loss has a CE term
    has_teacher = False      # `kd` in a train line only when the method's loss has a KD term

    def __init__(self, cfg, method, out: Path, device, env, teacher_path: str | None):
        v, tc = cfg.vlm, cfg.train
        self.cfg, self.method, self.out, self.device, self.env = cfg, method, out, device, env
        self.vlm = vlm_method(cfg.method.name, method)
        self.train_items, self.heldout_items = load_items(cfg)
        self.answers_info: dict = {"answers": answer_source(cfg)}
        if self.answers_info["answers"] == "teacher":  # App. F, before the tokenizer and every filter below
            (self.train_items, self.heldout_items), self.answers_info = self._teacher_answers(teacher_path)
        self.train_items = self.vlm.select_items(self.train_items, cfg.data.seed)

        start = resolve_model_ref(v.init, out) if v.init else cfg.student
        if not is_vlm(start):
            raise ValueError(f"{'vlm.init' if v.init else 'student'} {start!r} is not a vision-language model "
                             f"(a tiny VLM name, or a checkpoint whose config has a vision_config)")
        tok = _student_tokenizer(cfg, self.train_items + self.heldout_items, out) if start == cfg.student else None
        if start not in _tiny_names():  # build_vlm seeds only a tiny build: a fresh Recalibrator follows train.seed
            torch.manual_seed(tc.seed)
        self.student = build_vlm(start, tokenizer=tok, seed=tc.seed)
        self.student.model.to(device)
        self.teacher = None
        # the method says (GenRecal: stages 1-2; LLaVA-KD: DPT and DFT; KD and the on-policy methods: always)
        if type(method).requires_teacher(cfg.method.params):
            spec = self._teacher_spec(teacher_path, f"method {cfg.method.name!r}")
            if not is_vlm(spec):
                raise ValueError(f"teacher {spec!r} must be a vision-language checkpoint (a path or HF id whose "
                                 f"config has a vision_config)")
            self.teacher = load_vlm(spec)
            self.teacher.model.requires_grad_(False).to(device).eval()
            self.vlm.check_teacher(self.student, self.teacher, self.train_items)
        rc = self.vlm.recalibrator_config
        self.recalibrator = self._recalibrator(rc, v.recalibrator) if rc is not None else None
        self.trainable = sum(p.numel() for p in self.vlm.trainable(self.student, self.recalibrator, v.train_vision))
        # the vision tower trains (with vlm.train_vision) where the language model does
        self._vision_trains = v.train_vision and self.vlm.student_trains == "lm"
        self.module = VLMObjective(self.student, self.recalibrator, self._loss)
        self.n_vision = _vision_params(self.student)
        self.n_params = count_non_embedding(self.student.model) - self.n_vision  # the language model's N
        # N_T is the teacher's language model's; its vision tower's forward is counted apart (flops)
        self.n_teacher_vision = _vision_params(self.teacher) if self.teacher is not None else 0
        self.n_teacher = (count_non_embedding(self.teacher.model) - self.n_teacher_vision
                          if self.teacher is not None else 0)
        self.n_recalibrator = (sum(p.numel() for p in self.recalibrator.parameters())
                               if self.recalibrator is not None else 0)
        self.plan = Plan(len(self.train_items), 0, 0, tc.batch_size, v.epochs or 1, seed=(tc.seed, self.stage_no))
        # epochs 0: no step (the starting student is evaluated: a baseline); tokens are counted as the loop trains
        self.steps, self.tokens = (self.plan.steps if v.epochs else 0), None
        self._rows_step = -1
        self.rows: list[int] | None = None   # the step's item indices
        self.norm: dict | None = None        # the step's loss divisors (the method's `divisors`)
        self._lengths: dict[tuple[str, int], tuple[int, int, tuple[int, ...]]] = {}  # ("student", item) -> _seq
        self._visual: dict[tuple[str, int], int] = {}  # ("student", item) -> its image tokens (visual_tokens)
        self._last_eval: dict = {}
        self.shape = model_shape(self.student.model)
        self.module.to(device)

    def _teacher_answers(self, teacher_path: str | None):
        """The items with very short answers replaced by the teacher's correct detailed ones (answers.py): the
        same items and held-out set for every cell of a sweep that names this teacher."""
        from .answers import CACHE_DIR, teacher_answers

        spec = self._teacher_spec(teacher_path, "vlm.answers: teacher")

        def load(s):
            try:
                t = load_vlm(s)
            except (OSError, ValueError) as e:
                raise ValueError(f"vlm.answers: teacher: cannot load the teacher {s!r} that writes the answers "
                                 f"({e}); give a trained VLM, or vlm.answers: short") from e
            t.model.to(self.device)
            return t

        v = self.cfg.vlm
        return teacher_answers([self.train_items, self.heldout_items], spec, self.out.parent / CACHE_DIR,
                               max_new_tokens=v.detail_tokens, prompt=v.detail_prompt, load=load)

    def _teacher_spec(self, teacher_path: str | None, who: str) -> str:
        """The trained teacher a cell loads (the resolved grid reference, else cfg.teacher); `who` needs it."""
        spec = teacher_path or self.cfg.teacher
        if not spec or spec.startswith("cell:"):
            raise ValueError(f"{who} needs a trained teacher VLM (teacher: path, HF id, or a grid's @group), "
                             f"got {spec!r}")
        if spec in _tiny_names():
            raise ValueError(f"teacher {spec!r} is a tiny VLM name, which builds an untrained model: train it "
                             f"first (a grid group with method supervised, referenced as teacher: \"@group\") "
                             f"and pass its model directory")
        return spec

    @property
    def stage_no(self) -> int:
        return self.vlm.stage_no

    def _recalibrator(self, rc: RecalibratorConfig, ref: str | None) -> Recalibrator:
        """A fresh Recalibrator for this student and teacher, with the weights of `ref` (vlm.recalibrator) if any."""
        body = self.student.language_model if rc.init == "student" else None
        d_t = int(self.teacher.head_weight.shape[1])
        rec = Recalibrator(self.student.model.config, d_t, rc, student_body=body)
        if ref:
            path = Path(resolve_model_ref(ref, self.out))
            if path.name == "model":  # cell:<id> resolves to <cell>/model; its Recalibrator sits beside it
                path = path.parent
            if (path / RECALIBRATOR_DIR).is_dir():
                path = path / RECALIBRATOR_DIR
            if not (path / "model.safetensors").exists():
                raise FileNotFoundError(f"vlm.recalibrator {ref!r}: no {path / 'model.safetensors'} (a GenRecal "
                                        f"stage 1 or 2 cell leaves one in <cell>/{RECALIBRATOR_DIR})")
            load_recalibrator_weights(rec, path)
        return rec.to(self.device)

    # ---- the loss
    def _loss(self, items):
        """The micro-batch's summed loss terms, each divided by its count over the whole step (so the loop's
        sum over micro-batches and processes is the step's mean, however the batch is split): the method's."""
        return self.vlm.vlm_loss(self, [_triple(q) for q in items])

    # ---- the loop's Stage protocol
    def loss(self, fwd, step: int, offset: int, n: int):
        """This micro-batch's share of the step's mean (the module divides by the whole step's token counts),
        times the batch size: the loop's per-example bookkeeping divides by it again."""
        B = self.cfg.train.batch_size
        loss_part, parts = fwd(self.micro_batch(step, offset, n))
        return loss_part * B, {k: v * B for k, v in parts.items()}

    def step_norm(self, step: int) -> float:
        return self.cfg.train.batch_size

    def teacher_loss(self, autocast, env) -> None:
        return None  # L_T is a text cell's number (the teacher's held-out CE on the student's data)

    def result_fields(self) -> dict:
        return {"N_T": None, "D_T": None, "N_S_total": None, "N_T_total": None, "seq_len": None,
                "bayes_loss": None, "bayes_loss_heldout": None, "heldout_tokens": None, "model_shape": self.shape}

    def eval_target(self):
        self.student.model.eval()
        return self.student, None, len(self.heldout_items)

    def micro_batch(self, step: int, offset: int, n: int):
        """Items offset..offset+n of the step's global batch (and the step's loss divisors, set once per step)."""
        if step != self._rows_step:
            self._rows_step, self.rows = step, self.plan.rows(step)
            self.norm = self.vlm.divisors(self, self.rows)
            self.vlm.begin_step(self)
        return [self.train_items[i] for i in self.rows[offset:offset + n]]

    def answer_tokens(self, rows) -> dict:
        """Answer tokens (as encode_qa cuts them, + EOS) of training items `rows`: {"student": n, "teacher": n}
        (the teacher's in its own tokenizer; no key without a teacher)."""
        answers = [self.train_items[i].answer for i in rows]
        m = self.vlm.answer_limit
        out = {"student": answer_counts(self.student, answers, m)}
        if self.teacher is not None:
            out["teacher"] = answer_counts(self.teacher, answers, m)
        return out

    def visual_tokens(self, rows, who: str = "student") -> int:
        """Image tokens in the sequences of training items `rows` (LLaVA-KD: the positions its visual losses read)."""
        return sum(self._visual_tokens(i, who) for i in rows)

    def step_tokens(self, step: int) -> int:
        """Student tokens (question with image tokens, answer) of the step's items: what D_S counts."""
        return int(sum(q + a for q, a, _ in (self._seq("student", i) for i in self.plan.rows(step))))

    def _seq(self, who: str, i: int) -> tuple[int, int, tuple[int, ...]]:
        """(question tokens with the image tokens, answer tokens + EOS, vision-tower tokens of each image) that
        `who` ("student" or "teacher") trains on for item i: its own processor and tokenizer, as encode_qa makes
        them (the answer cut at max_answer_tokens, as the loss cuts it)."""
        if (who, i) not in self._lengths:
            vlm = self.student if who == "student" else self.teacher
            q = self.train_items[i]
            s = vlm.encode_qa([_triple(q)], self.vlm.answer_limit)
            self._lengths[who, i] = (int(s.q_len[0]), int(s.a_len[0]), _vision_tokens(vlm, s.inputs))
        return self._lengths[who, i]

    def _visual_tokens(self, i: int, who: str = "student") -> int:
        """Image tokens in item i's sequence, as `who` encodes it."""
        if (who, i) not in self._visual:
            vlm = self.student if who == "student" else self.teacher
            s = vlm.encode_qa([_triple(self.train_items[i])], self.vlm.answer_limit)
            self._visual[who, i] = len(visual_positions(vlm, s.inputs["input_ids"])[0])
        return self._visual[who, i]

    # ---- evaluation and the end of the cell
    @torch.no_grad()
    def evaluate(self, autocast, env=None) -> dict:
        """The student's answer CE on the held-out items (nats per student answer token), the method's held-out
        terms (GenRecal stages 1–2: the Recalibrator's main-path CE and KL in teacher tokens) and what it adds
        after them (DistiLLM: φ)."""
        was = self.module.training
        self.module.eval()
        bs = self.cfg.train.eval_batch_size
        ce_sum, n_tok, rec = 0.0, 0, {}
        try:
            for i in range(0, len(self.heldout_items), bs):
                batch = [(q.images, q.question, q.answer) for q in self.heldout_items[i:i + bs]]
                with autocast:
                    s = self.student.encode_qa(batch, self.vlm.answer_limit)
                    ce_sum += float(_student_ce(self.student, s, self.student.hidden(s.inputs), None, denom=1))
                    n_tok += int(s.a_len.sum())
                    for k, v in self.vlm.heldout_terms(self, batch).items():
                        rec[k] = rec.get(k, 0.0) + v * len(batch)
        finally:
            self.module.train(was)
        out = {"heldout_loss": ce_sum / max(n_tok, 1)}
        out.update({f"heldout_{k}": v / len(self.heldout_items) for k, v in rec.items()})
        out.update(self.vlm.after_evaluate(self, out))
        self._last_eval = out
        return out

    def save(self, model_dir: Path) -> None:
        """Only the student goes to model/ (its inference cost is the plain student's); a Recalibrator that a
        later stage continues goes to <cell>/recalibrator."""
        self.student.save(model_dir)
        if self.recalibrator is not None:
            save_recalibrator(self.recalibrator, model_dir.parent / RECALIBRATOR_DIR,
                              {"student": self.cfg.student, "teacher": self.cfg.teacher, "stage": self.stage_no})

    def flops(self, tokens: int) -> dict:
        """Training FLOPs of the steps whose student tokens sum to `tokens` (the loop's D_S: every step).

        Each network is Kaplan's forward (Table 1, the text cells' formula: forward_flops_per_token) over the
        sequences it runs, its own: 2N + 2·n_layer·n_ctx·d per token, + the head 2·d·V at the answer tokens,
        the only positions whose logits the losses compute; ×3 where it trains (backward = 2× forward), ×1 where
        it only runs forward.
        - n_ctx is each sequence's own unpadded length L, so a sequence costs L·(2N + 2·n_layer·L·d): Kaplan's
          per-token formula at n_ctx = the token-weighted mean length ΣL²/ΣL. Not the padded batch length: that
          follows how a step is split into micro-batches and processes, and pads are not trained tokens.
        - student_train: its language model (N_S, projector included) over [question with its image tokens ;
          answer], ×1 and no head in GenRecal's stage 1 (the Recalibrator reads its features only), in
          LLaVA-KD's stage 1 (only the projector trains, through the frozen LLM) ×2 for the weight and head
          terms and ×3 for attention's (see the code), else ×3; + the head at LLaVA-KD's visual tokens (the
          visual KL) in its stages 1 and 3, on both sides; + its vision tower (all its parameters, Qwen2-VL's
          merger too) over each image's patch tokens, n_ctx = the image's patches, ×3 only when the tower trains
          (vlm.train_vision).
        - teacher_logits: the teacher's language model (N_T, ×1) over its OWN sequences (its tokenizer, its image
          tokens: 16 for tiny-llava, 4 for tiny-qwen2vl), + its vision tower ×1.
        - recalibrator_train: ×3 · (2·N_R per token + 2·depth·n_ctx·d_S of its student-shaped blocks) over
          [student question ; teacher answer], + the teacher's head 2·d_T·V_T at each teacher answer token it is
          read through; the regularization path again over [teacher question ; teacher answer] when it runs
          (stage 1, or stage 2 with reg_in_stage2; mse: no head).
        On-policy methods (minillm, distillm) count the data's answers; their sampling is not counted.
        """
        rows, n, step = [], 0, 0
        while n < tokens and step < self.steps:
            rows += list(self.plan.rows(step))
            n += self.step_tokens(step)
            step += 1
        s = [self._seq("student", i) for i in rows]
        shape = model_shape(self.student.model)
        trains = self.vlm.student_trains != "none"
        # LLaVA-KD's visual KL reads both heads at the visual tokens as well (RDist's logit Gram matrix,
        # H·(WᵀW)·Hᵀ, costs O(d²) a token beside the head's O(d·V): not counted)
        visual = self.vlm.head_at_visual_tokens
        n_vis = self.visual_tokens(rows) if visual else 0
        head_s = 2.0 * shape["d_model"] * shape["vocab_size"] * (sum(a for _, a, _ in s) + n_vis) if trains else 0.0
        lengths = [q + a for q, a, _ in s]
        if self.vlm.student_trains == "projector":
            # LLaVA-KD's DPT trains the projector alone, but its gradient comes back through the frozen LLM and
            # head. Their backward computes activation gradients (1× the forward of each weight matmul) and no
            # weight gradients, so the weight terms (2N, the head) count 2×, not Kaplan's 3× (which would add the
            # skipped weight gradients); attention's score and context products have activations on both sides,
            # both differentiated: 3×. The projector, within N_S as everywhere here, does train: a rounding error.
            attention = _forward(0, shape, lengths)
            student_lm = 2.0 * (_forward(self.n_params, shape, lengths) - attention + head_s) + 3.0 * attention
        else:
            student_lm = (3.0 if trains else 1.0) * (_forward(self.n_params, shape, lengths) + head_s)
        f = {"student_train": student_lm
             + (3.0 if self._vision_trains else 1.0) * _vision_flops(self.student, self.n_vision, s),
             "teacher_logits": 0.0}
        counts = {"student_tokens": sum(q + a for q, a, _ in s), "teacher_tokens": 0}
        t, head_t = [], 0.0
        if self.teacher is not None:
            t = [self._seq("teacher", i) for i in rows]
            ts = model_shape(self.teacher.model)
            head_t = 2.0 * ts["d_model"] * ts["vocab_size"]  # per teacher answer token
            n_vis_t = self.visual_tokens(rows, "teacher") if visual else 0
            f["teacher_logits"] = (_forward(self.n_teacher, ts, [q + a for q, a, _ in t])
                                   + head_t * (sum(a for _, a, _ in t) + n_vis_t)
                                   + _vision_flops(self.teacher, self.n_teacher_vision, t))
            counts["teacher_tokens"] = sum(q + a for q, a, _ in t)
        if self.recalibrator is not None:
            rec = self.recalibrator
            seqs, reads = self.vlm.recalibrator_work(s, t)
            r_shape = {"n_layers": rec.cfg.depth, "d_model": rec.d_student}
            f["recalibrator_train"] = 3.0 * (_forward(self.n_recalibrator, r_shape, seqs) + head_t * reads)
            counts["recalibrator_tokens"] = sum(seqs)
        f["total"] = sum(f.values())
        return {**f, **counts}

    def finish(self, loss: float) -> dict:
        """The result.json fields of the cell (the last evaluation's Recalibrator terms among them)."""
        info = {"method": self.cfg.method.name, "stage": self.stage_no, "train_items": len(self.train_items),
                "heldout_items": len(self.heldout_items), "trainable_params": self.trainable,
                "vision_params": self.n_vision, "epochs": self.cfg.vlm.epochs,
                "student_family": self.student.family, **{k: v for k, v in self.answers_info.items()},
                "teacher_family": self.teacher.family if self.teacher is not None else None,
                **{k: v for k, v in self._last_eval.items() if k != "heldout_loss"}}
        if self.recalibrator is not None:
            info["recalibrator_params"] = self.n_recalibrator
            info["recalibrator"] = str(self.out / RECALIBRATOR_DIR)
        fields = {"vlm": info, "N_S": self.n_params, "model_shape": model_shape(self.student.model)}
        if self.teacher is not None:
            fields["N_T"] = self.n_teacher
            fields["teacher_shape"] = model_shape(self.teacher.model)
        return fields


def _triple(q: VisualQA) -> tuple:
    return q.images, q.question, q.answer


def _vision_params(vlm) -> int:
    tower = vlm.vision_tower
    return sum(p.numel() for p in tower.parameters()) if tower is not None else 0


def _forward(n: int, shape: dict, lengths) -> float:
    """Kaplan's forward FLOPs without the head, summed over sequences, each at n_ctx = its own length."""
    return float(sum(L * forward_flops_per_token(n, shape["n_layers"], shape["d_model"], L, 0) for L in lengths))


def _vision_tokens(vlm, inputs) -> tuple[int, ...]:
    """Tokens the vision tower runs over, per image (or InternVL tile): Qwen2-VL's t·h·w patches (rows of
    image_grid_thw, before the 2×2 merge), else (H/p)·(W/p) patches + 1 where the tower prepends a CLS token
    (CLIP, InternViT): 16 for tiny-qwen2vl, 17 for tiny-llava and tiny-internvl."""
    if "image_grid_thw" in inputs:
        return tuple(int(t * h * w) for t, h, w in inputs["image_grid_thw"].tolist())
    px = inputs.get("pixel_values")
    if px is None or vlm.vision_tower is None:
        return ()
    ph, pw = _pair(vlm.model.config.vision_config.patch_size)
    tower = vlm.vision_tower
    emb = getattr(tower, "embeddings", None) or getattr(getattr(tower, "vision_model", None), "embeddings", None)
    cls = int(any(hasattr(emb, k) for k in ("class_embedding", "cls_token")))
    return ((px.shape[-2] // ph) * (px.shape[-1] // pw) + cls,) * px.shape[0]


def _pair(x) -> tuple[int, int]:
    return (int(x[0]), int(x[1])) if isinstance(x, (tuple, list)) else (int(x), int(x))


def _vision_flops(vlm, n_vision: int, seqs) -> float:
    """The vision tower's forward over the images of `seqs` (_seq tuples): 2·N_vision per patch token + its
    attention at n_ctx = the image's patches (full attention within an image). Qwen2-VL's width is embed_dim
    (its hidden_size is the merger's output); depth or num_hidden_layers its blocks."""
    patches = [n for _, _, per_image in seqs for n in per_image]
    if not patches:
        return 0.0
    vc = vlm.model.config.vision_config
    shape = {"n_layers": getattr(vc, "depth", None) or vc.num_hidden_layers,
             "d_model": getattr(vc, "embed_dim", None) or vc.hidden_size}
    return _forward(n_vision, shape, patches)


def _tiny_names():
    return set(TINY_VLMS.names())


def open_vlm_stage(cfg, method, out, device, env, teacher_path=None) -> VLMStage:
    """The stage of a VLM cell; a ValueError for a method that no VLM cell trains (base.vlm_method)."""
    return VLMStage(cfg, method, Path(out), device, env, teacher_path)


__all__ = ["VLMStage", "VLMObjective", "open_vlm_stage", "load_items", "read_llava", "save_recalibrator",
           "load_recalibrator_weights", "RECALIBRATOR_DIR", "RecalibratorConfig"]
