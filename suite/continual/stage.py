"""One stage of a continual-learning sequence, as the training loop sees it (suite/train/loop.py).

    stage = open_stage(cfg, method, out_dir, device, env, autocast)
    stage.general            # the general corpus (cfg.data): held-out loss, replay samples
    stage.model              # the LM to train: continual.init's weights (+ fresh LoRA layers when continual.lora)
    stage.steps, stage.tokens
    inp, lab, extra = stage.micro_batch(step, offset, n)   # rows offset..offset+n of the step's global batch
    result_fields = stage.finish(general_loss)              # merge LoRA, score every task seen, AP/forgetting

The data of stage k: the training rows of task k and, for methods that replay, `continual.replay` samples of the
general corpus (drawn at random with `replay_seed`, or its first ones: `replay_sample`; no special tokens,
truncated to `replay_len`). Mixing (methods.md B.2):
  * replay_per_batch = 0: replay rows are concatenated in front of the task rows and the whole set is shuffled
    once per epoch, so each replay sample is seen once per epoch at a random position;
  * replay_per_batch = k: every global batch of B rows holds exactly k replay rows (cycling through a fresh
    permutation of the replay set) and B − k task rows (each once per epoch), in random positions.
Row order is a pure function of (train.seed, stage, step), so a resumed stage reads the rows it would have.
A stage trains ceil(epochs · rows / B) full steps (the last one wraps into the next epoch, as the token loop
does across a corpus), and each example counts the same in the loss (methods.py).

General ability is the held-out loss of the general corpus, measured twice on synthetic data: as the loop
does (documents start with BOS, as in pretraining and in an MMLU prompt) and without special tokens (the
format of the replay rows, `general_loss_nobos`), since the reference replays text without BOS
(`replay_bos: true` adds it). Text corpora have no BOS in their held-out blocks, so the two are one.

Task rows (B.7): [BOS] + tok(prompt)[:max_source_len − 1] + (tok(label) + [EOS])[:max_target_len], CE on the
label part. Replay rows: tok(text)[:replay_len], CE on every next token. Inputs are the whole row (right
padded), so the hidden states cover every replay token, as the snapshot of the base model does.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .._io import atomic_write_json
from ..distributed import barrier
from ..eval.heldout import heldout_loss
from ..methods.chunked import IGNORE_INDEX
from ..models import HiddenStatesLM, build_model, count_non_embedding
from ..refs import resolve_model_ref
from .metrics import sequence_metrics, task_accuracy
from .snapshot import Snapshot, build_snapshot
from .tasks import load_task, sequence_tasks


def encode_prompt(tok, prompt: str, fmt: str, max_len: int) -> list[int]:
    """A task prompt's ids. plain: [BOS] + prompt (truncated to max_len). chat: one user turn through the
    tokenizer's chat template, generation prompt included (the template brings its own special tokens; the
    prompt text is truncated so that the whole stays within max_len). auto: chat when there is a template."""
    chat = fmt == "chat" or (fmt == "auto" and getattr(tok, "chat_template", None))
    if chat:
        if not getattr(tok, "chat_template", None):
            raise ValueError("continual.prompt_format: chat, but the tokenizer has no chat template")
        def render(text):
            return tok.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                           add_generation_prompt=True)
        ids = tok(render(prompt), add_special_tokens=False)["input_ids"]
        if len(ids) > max_len:  # cut the prompt text, never the template's frame or generation prompt
            body = tok(prompt, add_special_tokens=False)["input_ids"]
            keep = len(body) - (len(ids) - max_len)
            while keep > 0 and len(ids) > max_len:
                ids = tok(render(tok.decode(body[:keep])), add_special_tokens=False)["input_ids"]
                keep -= 1
        return ids
    bos = [tok.bos_token_id] if tok.bos_token_id is not None else []
    return bos + tok(prompt, add_special_tokens=False)["input_ids"][:max_len - len(bos)]


@dataclass
class StageBatch:
    """What a continual method sees beside the hidden states and labels of one micro-batch."""
    replay: torch.Tensor                 # bool [n]: rows from the general replay set
    valid: torch.Tensor                  # bool [n, T]: real (not padding) input positions
    h0: torch.Tensor | None = None       # float32 [n, T, H]: the base model's states on replay rows, else 0
    snapshot: Snapshot | None = None
    _cache: dict | None = None

    @property
    def head(self) -> torch.Tensor:
        return self._cache["head"]

    def thresholds(self, sigma: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        key = ("thr", sigma)
        if key not in self._cache:
            lo, hi = self.snapshot.thresholds(sigma)
            self._cache[key] = (lo.to(self.valid.device), hi.to(self.valid.device))
        return self._cache[key]


class Plan:
    """Which rows each global batch holds: ids < n_replay are replay samples, the rest task rows."""

    def __init__(self, n_task: int, n_replay: int, per_batch: int, batch: int, epochs: float, seed: tuple):
        if n_task < 1:
            raise ValueError("the task has no training rows")
        self.n_task, self.n_replay, self.k, self.B, self.seed = n_task, n_replay, per_batch, batch, seed
        if self.k and not n_replay:
            self.k = 0
        if self.k >= batch:
            raise ValueError(f"continual.replay_per_batch {per_batch} must be below train.batch_size {batch}")
        per_epoch = (n_task + n_replay) / batch if not self.k else n_task / (batch - self.k)
        self.steps = max(1, math.ceil(epochs * per_epoch - 1e-9))
        self._perms: dict = {}

    def _perm(self, kind: int, epoch: int, n: int) -> np.ndarray:
        key = (kind, epoch)
        if key not in self._perms:
            if len(self._perms) > 8:
                self._perms.pop(next(iter(self._perms)))
            self._perms[key] = np.random.default_rng([*self.seed, kind, epoch]).permutation(n)
        return self._perms[key]

    def _stream(self, kind: int, n: int, start: int, count: int) -> np.ndarray:
        idx = np.arange(start, start + count)
        out = np.empty(count, dtype=np.int64)
        for e in np.unique(idx // n):
            sel = idx // n == e
            out[sel] = self._perm(kind, int(e), n)[idx[sel] % n]
        return out

    def rows(self, step: int) -> np.ndarray:
        """The B row ids of global batch `step`, in order."""
        if not self.k:
            return self._stream(0, self.n_task + self.n_replay, step * self.B, self.B)
        task = self.n_replay + self._stream(1, self.n_task, step * (self.B - self.k), self.B - self.k)
        replay = self._stream(2, self.n_replay, step * self.k, self.k)
        rows = np.concatenate([replay, task])
        return rows[np.random.default_rng([*self.seed, 3, step]).permutation(self.B)]


class Stage:
    """The rows of one continual-learning stage (a `TextStage` trains `model` on them and calls `finish`)."""
    def __init__(self, cfg, method, out: Path, device, env, autocast):
        from ..data import source_from_config
        c, d, tc = cfg.continual, cfg.data, cfg.train
        self.cfg, self.method, self.out, self.device, self.env, self.autocast = cfg, method, out, device, env, autocast
        names = sequence_tasks(c.tasks)
        self.k, self.names = c.stage, names
        if not 1 <= c.stage <= len(names):
            raise ValueError(f"continual.stage {c.stage} is not a task of {c.tasks!r} (1..{len(names)}); "
                             f"a sweep sets it, one cell per task")
        if not c.init:
            raise ValueError("continual.init: the model stage 1 starts from (a path or HF id), or the previous stage")
        self.init_path = resolve_model_ref(c.init, out)
        self.base_ref = c.base or (c.init if c.stage == 1 else None)
        if self.base_ref is None:
            raise ValueError("continual.base: the base model of the sequence (its replay snapshot and thresholds); "
                             "a sweep sets it to stage 1's init")
        tok_spec = d.tokenizer or (None if d.kind == "synthetic" else self.init_path)
        self.general = source_from_config(d, tok_spec, out / "tokenizer")
        self.tok = tok = self.general.tokenizer
        self.pad = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
        if tok.eos_token_id is None:
            raise ValueError("the tokenizer has no eos token; task targets end with one")
        self.tasks = [load_task(n, data_dir=c.data_dir, language=d.language, seed=d.seed) for n in names[:c.stage]]
        task = self.tasks[-1]
        train = task.train[:c.train_limit] if c.train_limit else task.train
        self.task_rows = [self._encode(task.prompt(ex.sentence), ex.label) for ex in train]

        # replay set (N samples of the general corpus, fixed for the sequence) and, for the imitation methods,
        # the base snapshot
        self.replay: list[np.ndarray] = []
        if method.uses_replay and c.replay > 0:
            self.replay = replay_samples(self.general, cfg.data, c.replay, c.replay_len, bos=c.replay_bos,
                                         sample=c.replay_sample, seed=c.replay_seed)
        lm = build_model(self.init_path)
        if lm.get_output_embeddings().weight.shape[0] < len(tok):
            raise ValueError(f"continual.init {c.init!r} has fewer output rows than the tokenizer's {len(tok)} tokens")
        self.n_params = count_non_embedding(lm)
        self.snapshot = None
        if method.needs_snapshot and self.replay:
            snap_dir = out.parent / "snapshots" / snapshot_key(self.base_ref, cfg)
            if env.is_main and not (snap_dir / "meta.json").exists():
                base = lm if self.base_ref == c.init else build_model(resolve_model_ref(self.base_ref, out))
                build_snapshot(HiddenStatesLM(base).to(device), self.replay, snap_dir, device=device,
                               autocast=autocast, meta={"base": self.base_ref, "replay": c.replay,
                                                        "replay_len": c.replay_len, "replay_bos": c.replay_bos,
                                                        "data": dataclasses.asdict(d)})
                if base is not lm:
                    del base
            barrier(env)
            self.snapshot = Snapshot.open(snap_dir)
            if len(self.snapshot) != len(self.replay):
                raise RuntimeError(f"{snap_dir} holds {len(self.snapshot)} samples, the replay set {len(self.replay)}")
        self._cache = {}
        if self.snapshot is not None:
            self._cache["head"] = self.snapshot.head().to(device)

        # the general ability of the starting model, once (stage 1: the base), before any training or resume
        start = out / "start.json"
        if c.stage == 1 and env.is_main and not start.exists():
            atomic_write_json(start, {**self._general(lm, None), "model": c.init})
        barrier(env)

        self.peft = None
        if c.lora:
            self.peft = add_lora(lm, c, seed=tc.seed)
        self.model = lm
        self.trainable = sum(p.numel() for p in lm.parameters() if p.requires_grad)
        self.plan = Plan(len(self.task_rows), len(self.replay), c.replay_per_batch, tc.batch_size, c.epochs,
                         seed=(tc.seed, c.stage))
        self.steps = self.plan.steps
        lengths = np.array([len(r) for r in self.replay] + [len(r[0]) for r in self.task_rows])
        self.tokens = int(sum(lengths[self.plan.rows(s)].sum() for s in range(self.steps)))
        self._lengths = lengths
        self._rows_step, self._rows = -1, None

    # ---- data
    def _encode_prompt(self, prompt: str) -> list[int]:
        return encode_prompt(self.tok, prompt, self.cfg.continual.prompt_format, self.cfg.continual.max_source_len)

    def _encode(self, prompt: str, label: str) -> tuple[np.ndarray, int]:
        src = self._encode_prompt(prompt)
        tgt = self.tok(label, add_special_tokens=False)["input_ids"] + [self.tok.eos_token_id]
        tgt = tgt[:self.cfg.continual.max_target_len]
        return np.array(src + tgt, dtype=np.int64), len(src)

    def step_tokens(self, step: int) -> int:
        return int(self._lengths[self.plan.rows(step)].sum())

    def micro_batch(self, step: int, offset: int, n: int):
        """(inputs [n, T], labels [n, T], {"batch": StageBatch}) for rows offset..offset+n of global batch `step`."""
        if step != self._rows_step:
            self._rows_step, self._rows = step, self.plan.rows(step)
        ids = self._rows[offset:offset + n]
        n_rep = len(self.replay)
        seqs = [self.replay[i] if i < n_rep else self.task_rows[i - n_rep][0] for i in ids]
        width = max(len(s) for s in seqs)
        inp = torch.full((len(ids), width), self.pad, dtype=torch.long)
        lab = torch.full((len(ids), width), IGNORE_INDEX, dtype=torch.long)
        valid = torch.zeros((len(ids), width), dtype=torch.bool)
        for r, (i, s) in enumerate(zip(ids, seqs)):
            s = torch.as_tensor(s)
            inp[r, :len(s)] = s
            valid[r, :len(s)] = True
            first = 0 if i < n_rep else self.task_rows[i - n_rep][1] - 1  # labels from the last prompt token on
            lab[r, first:len(s) - 1] = s[first + 1:]
        replay = torch.as_tensor(ids < n_rep)
        h0 = None
        if self.snapshot is not None:
            h0 = torch.zeros((len(ids), width, self.snapshot.states.shape[1]), dtype=torch.float32)
            for r, i in enumerate(ids):
                if i < n_rep:
                    (st,) = self.snapshot.rows([i])
                    h0[r, :len(st)] = torch.from_numpy(np.asarray(st, dtype=np.float32))
            h0 = h0.to(self.device)
        batch = StageBatch(replay=replay.to(self.device), valid=valid.to(self.device), h0=h0,
                           snapshot=self.snapshot, _cache=self._cache)
        return inp.to(self.device), lab.to(self.device), {"batch": batch}

    # ---- end of the stage
    def _general(self, lm, loss: float | None) -> dict:
        """General held-out loss as the loop measures it (`loss` when known) and in the replay rows' format."""
        from ..data import SyntheticSource
        m, bs = HiddenStatesLM(lm).to(self.device), self.cfg.train.eval_batch_size
        if loss is None:
            loss = heldout_loss(m, self.general, bs, self.device, self.autocast)
        plain = loss
        if isinstance(self.general, SyntheticSource):
            plain = heldout_loss(m, _WithoutBos(self.general), bs, self.device, self.autocast)
        return {"general_loss": loss, "general_loss_nobos": plain}

    def finish(self, general_loss: float) -> dict:
        """Merge LoRA into the weights, score every task seen so far; the result.json fields of the stage."""
        c = self.cfg.continual
        lm = self.model
        if self.peft is not None:
            lm = self.peft.merge_and_unload()
            if lm is not self.model:
                raise RuntimeError("peft merge_and_unload returned a new model object; the loop saves the old one")
        accuracy, n_test = {}, {}
        if self.env.is_main:
            for task in self.tasks:
                accuracy[task.name], n_test[task.name] = task_accuracy(
                    lm, self.tok, task, self._encode_prompt, limit=c.test_limit, batch_size=c.eval_batch_size,
                    device=self.device)
        general = self._general(lm, general_loss) if self.env.is_main else {"general_loss": general_loss}
        history = self._history() + [{"stage": c.stage, "task": self.names[c.stage - 1], "accuracy": accuracy,
                                      **general}]
        out = {"stage": c.stage, "task": self.names[c.stage - 1], "n_stages": len(self.names), "tasks": c.tasks,
               "accuracy": accuracy, "test_examples": n_test, **general,
               "general_loss_base": history[0]["general_loss"],
               "general_loss_nobos_base": history[0].get("general_loss_nobos"), "history": history,
               **sequence_metrics(history), "replay_samples": len(self.replay),
               "task_rows": len(self.task_rows), "lora": c.lora,
               "trainable_params": self.trainable,
               "snapshot": str(self.snapshot.path) if self.snapshot is not None else None}
        return {"continual": out, "N_S": self.n_params, "D_S": self.tokens}

    def _history(self) -> list[dict]:
        """The earlier stages' rows: stage 0 (the base, start.json) for stage 1, else the previous stage's result."""
        if self.cfg.continual.stage == 1:
            start = json.loads((self.out / "start.json").read_text())
            return [{"stage": 0, "task": None, "accuracy": {}, "general_loss": start["general_loss"],
                     "general_loss_nobos": start.get("general_loss_nobos")}]
        prev = Path(self.init_path).parent / "result.json"
        if not prev.exists():
            raise FileNotFoundError(f"stage {self.cfg.continual.stage} starts from {self.init_path}, which has no "
                                    f"result.json beside it with the earlier stages' accuracies")
        return json.loads(prev.read_text())["continual"]["history"]


def open_stage(cfg, method, out, device, env, autocast, teacher_path=None):
    """The loop's stage for a continual cell: a text stage fed by this stage's task and replay rows."""
    from ..train.stage import TextStage

    if not getattr(method, "continual", False):
        raise ValueError(f"method {cfg.method.name!r} does not train continual-learning stages; use seq-ft, "
                         f"replay, replay-kl, replay-l1, replay-l2 or gere")
    rows = Stage(cfg, method, Path(out), device, env, autocast)
    return TextStage(cfg, method, Path(out), device, env, teacher_path, rows=rows)


def replay_samples(source, data_cfg, n: int, max_len: int, bos: bool = False, sample: str = "first",
                   seed: int = 0) -> list[np.ndarray]:
    """`n` samples of the general corpus: token ids without special tokens, at most `max_len` long.

    `sample="random"`: n documents drawn without replacement with `seed` (GeRe draws its fixed replay set at
    random from a general corpus); `"first"`: the first n. Synthetic data: documents of the train split without
    their BOS (random: from the first max(100 n, 100,000) of its unbounded stream). Text corpora: documents of
    `data.path` tokenized with add_special_tokens=False, as the reference does, from those that end before the
    held-out blocks. `bos`: start each sample with the tokenizer's BOS (inside the `max_len`) instead."""
    from ..data import SyntheticSource, read_documents

    if sample not in ("random", "first"):
        raise ValueError(f"continual.replay_sample must be random or first, got {sample!r}")
    rng = np.random.default_rng([int(seed), 0x5E91A7])
    if isinstance(source, SyntheticSource):
        pool = max(100 * n, 100_000)
        idx = range(n) if sample == "first" else np.sort(rng.choice(pool, size=n, replace=False))
        ids = [row[1:] for row in source.batch(list(idx))]
    else:
        all_docs = read_documents(data_cfg.path, text_field=data_cfg.text_field)
        docs = all_docs[:n] if sample == "first" else all_docs
        ids = source.tokenizer(docs, add_special_tokens=False)["input_ids"]
        # the corpus stream is each document then eos, and its held-out blocks are the stream's end: the replayed
        # prefixes must lie before them, or the general held-out loss is measured on text the stage trains on
        starts = np.cumsum([0] + [len(x) + 1 for x in ids[:-1]])
        ends = [int(s_ + min(len(x), max_len)) for s_, x in zip(starts, ids)]
        train_tokens = source.num_examples("train") * (source.seq_len + 1)
        if sample == "random":
            eligible = [i for i, e in enumerate(ends) if e <= train_tokens]
            if len(eligible) < n:
                raise ValueError(f"continual.replay: {n} samples asked, but {data_cfg.path!r} has {len(eligible)} "
                                 f"documents before its held-out blocks; replay fewer samples")
            ids = [ids[i] for i in np.sort(rng.choice(eligible, size=n, replace=False))]
        elif max(ends, default=0) > train_tokens:
            raise ValueError(f"continual.replay: the first {len(docs)} documents of {data_cfg.path!r} reach token "
                             f"{max(ends)} of the corpus, past its {train_tokens} training tokens into the held-out "
                             f"blocks (the last data.heldout_fraction {data_cfg.heldout_fraction}): the general "
                             f"held-out loss would be measured on replayed text. Replay fewer samples or use a "
                             f"larger corpus")
    head = [source.tokenizer.bos_token_id] if bos and source.tokenizer.bos_token_id is not None else []
    return [np.asarray((head + list(x))[:max_len], dtype=np.int64) for x in ids if len(head) + len(x) > 1]


class _WithoutBos:
    """A synthetic source's held-out documents without their BOS (the replay rows' format)."""

    def __init__(self, source):
        self.source, self.seq_len, self.tokenizer = source, source.seq_len - 1, source.tokenizer

    def num_examples(self, split: str):
        return self.source.num_examples(split)

    def batch(self, indices, split: str = "train") -> np.ndarray:
        return self.source.batch(indices, split)[:, 1:]


def snapshot_key(base_ref: str, cfg) -> str:
    """Snapshots are shared by every stage and method with the same base model and replay set."""
    c = cfg.continual
    blob = json.dumps({"base": base_ref, "replay": c.replay, "replay_len": c.replay_len, "bos": c.replay_bos,
                       "data": dataclasses.asdict(cfg.data), "v": 1}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def add_lora(lm, c, seed: int):
    """Inject fresh LoRA layers (peft) into `lm` in place; only they train. Returns the PeftModel (to merge)."""
    from peft import LoraConfig, get_peft_model

    present = {name.rsplit(".", 1)[-1] for name, _ in lm.named_modules()}
    targets = [t for t in c.lora_targets if t in present]
    if not targets:
        raise ValueError(f"continual.lora_targets {list(c.lora_targets)}: none is a module of this model")
    torch.manual_seed(seed)
    with warnings.catch_warnings():  # peft asks transformers a deprecated gradient-checkpointing question
        warnings.simplefilter("ignore", FutureWarning)
        return get_peft_model(lm, LoraConfig(r=c.lora, lora_alpha=c.lora_alpha, lora_dropout=c.lora_dropout,
                                             target_modules=targets, bias="none"))
