"""The training loop: one loop for every method; methods differ only in their loss.

    suite train configs/quickstart.yaml --out runs/teacher
    torchrun --nproc_per_node 2 -m suite train CONFIG.yaml --out DIR      # data parallel, gloo or NCCL

What a run leaves in its directory:
    metrics.jsonl   one line per log step ("train") and per evaluation ("eval"), nats/token
    checkpoints/    step_XXXXXXXX/{model.safetensors, trainer.pt, state.json, manifest.json}; the newest that
                    verifies is resumed (a damaged one is renamed step_XXXXXXXX.damaged, with a warning)
    model/          the final model in the Hugging Face layout (safetensors) with its tokenizer
    result.json     the done marker, written last and atomically (its fields: train/result.py)

What it trains is a Stage (train/stage.py): a plain text cell, a plugin's rows (continual-learning tasks and
replay) or a vision-language student. The stage owns the model, the data, the loss and how a step is counted;
this loop owns the rest: set-up (_setup), resume (_resume), the steps with their log, eval and checkpoint
intervals (_fit), and the result record (_finish; its fields are declared in train/result.py). Each
micro-batch's summed loss is divided by the stage's step normaliser (× world size, which DDP's gradient
averaging undoes), so gradients match one process with the whole batch.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import socket
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Callable

import torch

from .._io import append_jsonl, atomic_write_json, atomic_write_text
from .._meta import git_revision, versions
from ..config import SECTIONS, CellConfig, parse_tokens, scaled_lr, stage_section
from ..distributed import all_reduce_sum, barrier, broadcast_object, init_distributed
from ..methods import make_method
from .checkpoint import apply_checkpoint, read_checkpoint, resume_checkpoint, save_checkpoint
from .mfu import device_peak_flops
from .schedule import lr_factor, warmup_steps
from .result import check_result
from .stage import Stage, TextStage
from .trackers import open_trackers


class Interrupted(RuntimeError):
    """Training stopped on request after writing a checkpoint; running again resumes from it."""


def _device_type(requested: str) -> str:
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device is 'cuda' but no CUDA device is visible")
    if requested not in ("cpu", "cuda"):
        raise ValueError(f"train.device must be auto, cpu or cuda, got {requested!r}")
    return requested


def _precision(requested: str, device_type: str) -> str:
    if requested == "auto":
        if device_type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "fp32"
    if requested not in ("fp32", "bf16", "fp16"):
        raise ValueError(f"train.precision must be auto, fp32, bf16 or fp16, got {requested!r}")
    if requested == "fp16" and device_type != "cuda":
        raise ValueError("train.precision fp16 needs CUDA (use fp32 or bf16 on CPU)")
    return requested


def _autocast(device_type: str, precision: str):
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device_type=device_type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def _optimizer(model: torch.nn.Module, cfg, device_type: str) -> torch.optim.Optimizer:
    # weight decay on matrices only (nanoGPT / Chinchilla practice); norms and biases are not decayed
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    extra = {"fused": True} if device_type == "cuda" else {}
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps, **extra)


def _metrics_upto(path: Path, step: int) -> None:
    """Keep the lines of metrics.jsonl logged at or before `step` (the checkpoint resumed from); a line that is
    not JSON (cut short by a kill or a full disk mid-write) is dropped with a warning. Rewritten atomically."""
    keep, bad = [], []
    for i, ln in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not ln.strip():
            continue
        try:
            if json.loads(ln)["step"] <= step:
                keep.append(ln)
        except (ValueError, KeyError, TypeError):  # ValueError: JSONDecodeError; the others: JSON but no record
            bad.append(i)
    if bad:
        lines = f"line {bad[0]}" if len(bad) == 1 else "lines " + ", ".join(map(str, bad))
        print(f"suite: warning: {path}: {lines} not a JSON record (a write cut short by a kill or a full disk?); "
              f"dropped", file=sys.stderr, flush=True)
    atomic_write_text(path, "".join(k + "\n" for k in keep))


@dataclasses.dataclass
class _Run:
    """Everything one training run holds, from set-up to result.json."""
    cfg: CellConfig
    out: Path
    env: Any
    device: torch.device
    device_type: str
    precision: str
    stage: Stage
    opt: torch.optim.Optimizer
    sched: Any
    scaler: Any
    fwd: Any                 # the stage's module, DDP-wrapped and compiled as configured
    ddp: Any
    peak_lr: float
    warm: int
    micro: int               # examples per micro-batch
    accum: int               # micro-batches per process per step
    t_start: float
    metrics_path: Path
    method: Any = None       # the method object (its typed params are written resolved to result.json)
    start: int = 0           # the step resumed from
    tokens_seen: int = 0
    state: dict = dataclasses.field(default_factory=dict)
    resumed_from: int | None = None
    wall_before: float = 0.0  # training time of earlier attempts (see _resume)
    L_T: float | None = None
    trackers: Any = None     # opt-in TensorBoard / W&B / MLflow (train/trackers.py), opened after the resume

    @property
    def autocast(self):
        return _autocast(self.device_type, self.precision)

    def log(self, rec: dict) -> None:
        if self.env.is_main:
            append_jsonl(self.metrics_path, rec)
            if self.trackers is not None:
                self.trackers.log(rec, rec["step"])


def _setup(cfg: CellConfig, out: Path, teacher_path: str | None) -> _Run:
    """Devices, the stage (model, data, loss), optimizer, schedule and DDP; nothing trained or resumed yet."""
    t_start = time.time()
    tc = cfg.train
    device_type = _device_type(tc.device)
    env = init_distributed(device_type)
    device = torch.device(f"cuda:{env.local_rank}" if device_type == "cuda" else "cpu")
    precision = _precision(tc.precision, device_type)
    if tc.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    if env.is_main:
        out.mkdir(parents=True, exist_ok=True)
    barrier(env)

    method = make_method(cfg.method.name, dict(cfg.method.params))
    # a plugin's stage (config.Section.stage: continual-learning rows, a vision-language student), else plain text
    kind = stage_section(cfg, method)
    stage = (TextStage(cfg, method, out, device, env, teacher_path) if kind is None else SECTIONS.get(kind).stage(
        cfg, method, out, device, env, teacher_path=teacher_path, autocast=_autocast(device_type, precision)))

    # ---- batch geometry
    B = tc.batch_size
    if B % env.world_size:
        raise ValueError(f"train.batch_size {B} is not divisible by the {env.world_size} processes")
    per_rank = B // env.world_size
    micro = tc.micro_batch_size or per_rank
    if per_rank % micro:
        raise ValueError(f"per-process batch {per_rank} is not divisible by train.micro_batch_size {micro}")

    steps, model = stage.steps, stage.module
    peak_lr = scaled_lr(cfg.optim, stage.shape["d_model"])
    opt = _optimizer(model, dataclasses.replace(cfg.optim, lr=peak_lr), device_type)
    # warmup in tokens: the same amount of data for every size and budget (a fraction of the run would be 10x
    # longer at 10x the budget, and a step count would change with the batch)
    tps = stage.tokens_per_step
    if cfg.optim.warmup_tokens is not None and tps is None:
        raise ValueError("optim.warmup_tokens needs a language-model cell (a VLM cell counts its tokens as it "
                         "trains); use optim.warmup (steps or a fraction) instead")
    warm = (warmup_steps(max(1, math.ceil(parse_tokens(cfg.optim.warmup_tokens) / tps)), steps)
            if cfg.optim.warmup_tokens is not None else warmup_steps(cfg.optim.warmup, steps))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_factor(s, steps, warm, cfg.optim.schedule, cfg.optim.min_lr_ratio))
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
    ddp = (torch.nn.parallel.DistributedDataParallel(model, device_ids=[env.local_rank] if device_type == "cuda"
                                                     else None) if env.enabled else model)
    fwd = torch.compile(ddp) if tc.compile and stage.compilable else ddp
    return _Run(cfg, out, env, device, device_type, precision, stage, opt, sched, scaler, fwd, ddp, peak_lr, warm,
                micro, per_rank // micro, t_start, out / "metrics.jsonl", method)


def _resume(run: _Run) -> None:
    """Restore the newest intact checkpoint, if any. The main process picks the newest that verifies and reads
    (renaming damaged ones aside), the others read the one it picked; nothing is applied before it is all
    read, so a fall back to scratch starts from the untouched initial model."""
    env, ckpt_root = run.env, run.out / "checkpoints"
    found = resume_checkpoint(ckpt_root) if env.is_main else None
    picked = broadcast_object(None if found is None else found[0].name, env)
    if found is None and picked is not None:
        found = (ckpt_root / picked, read_checkpoint(ckpt_root / picked))
    if found is not None:
        ckpt, payload = found
        if payload["state"].get("cell_id") != run.cfg.cell_id:
            raise RuntimeError(f"{ckpt} belongs to cell {payload['state'].get('cell_id')}, not this config "
                               f"({run.cfg.cell_id}); use another --out or delete that directory")
        run.state = apply_checkpoint(ckpt, payload, run.stage.module, run.opt, run.sched, run.scaler)
        del payload, found
        run.start, run.tokens_seen = run.state["step"], run.state["tokens"]
        run.resumed_from = run.start
        if env.is_main and run.metrics_path.exists():  # drop lines logged after the checkpoint we resume from
            _metrics_upto(run.metrics_path, run.start)
    elif env.is_main:
        atomic_write_text(run.metrics_path, "")
    barrier(env)
    # training time of the earlier attempts, up to the checkpoint resumed from: what a killed attempt did after
    # its last checkpoint is lost and done again here, so it is not counted (nor its time to write that
    # checkpoint, nor anything before a checkpoint that predates this field: then 0)
    run.wall_before = float(run.state.get("wall_clock_s", 0.0))
    run.L_T = run.state.get("L_T")
    if run.L_T is None:
        run.L_T = run.stage.teacher_loss(run.autocast, env)


class _Window:
    """The loss terms and throughput since the last log line. The loss sums survive a resume (saved in the
    checkpoint, restored by the main process), so the first line after one averages the whole log interval as
    an uninterrupted run does; throughput counts only this attempt's tokens and seconds."""

    def __init__(self, env, saved: dict | None):
        self.env = env
        self.agg = torch.zeros(4, dtype=torch.float64)  # loss, ce, kd, normaliser since the last log line
        self.more: dict[str, float] = {}  # method-specific terms (this process's share)
        self.steps = 0  # optimizer steps since the last log line
        self.t, self.tok = time.time(), 0
        self.windows: list[tuple[float, float]] = []  # (tokens, seconds) of each log window
        if saved:  # the steps between the last log line and the checkpoint, from the earlier attempt
            if env.is_main:  # the sums over all processes: added once
                self.agg += torch.tensor(saved["sums"], dtype=torch.float64)
                self.more.update(saved["more"])
            self.steps = int(saved["steps"])

    def add(self, loss_val: float, parts: dict) -> None:
        self.agg[0] += loss_val
        self.agg[1] += float(parts.get("ce", 0.0))
        self.agg[2] += float(parts.get("kd", 0.0))
        for k in parts.keys() - {"ce", "kd"}:
            self.more[k] = self.more.get(k, 0.0) + float(parts[k])

    def saved(self) -> dict:
        sums = all_reduce_sum(self.agg.clone(), self.env)
        return {"sums": sums.tolist(), "more": dict(self.more), "steps": self.steps}

    def record(self, run: _Run, done: int, lr: float, grad_norm: float, parts: dict) -> dict:
        """The train line of metrics.jsonl for the window ending at step `done`; the window starts over."""
        agg, stage, env = all_reduce_sum(self.agg, self.env), run.stage, self.env
        dt = time.time() - self.t
        n = agg[3].item()
        rec = {"kind": "train", "step": done, "tokens": run.tokens_seen, "loss": agg[0].item() / n,
               "ce": agg[1].item() / n if stage.reports_ce or "ce" in parts else None, "lr": lr,
               "grad_norm": grad_norm, "tokens_per_s": self.tok / max(dt, 1e-9)}
        mfu = _mfu_per_token(run)
        if mfu is not None:
            rec["mfu"] = mfu * rec["tokens_per_s"]
        self.windows.append((self.tok, dt))
        if stage.has_teacher or "kd" in parts:
            rec["kd"] = agg[2].item() / n
        rec.update({k: v * env.world_size / n for k, v in self.more.items()})
        self.more.clear()
        agg.zero_()
        self.t, self.tok, self.steps = time.time(), 0, 0
        return rec

    def throughput(self) -> float | None:
        """Tokens/s over the log windows after the first (which holds start-up and compilation)."""
        steady = self.windows[1:] or self.windows
        return sum(t for t, _ in steady) / max(sum(s for _, s in steady), 1e-9) if steady else None


def _mfu_per_token(run: _Run) -> float | None:
    peak = device_peak_flops(run.device_type, run.precision)
    f = run.stage.flops_per_token
    return None if f is None or peak is None else f / (peak * run.env.world_size)


def _step(run: _Run, step: int, win: _Window) -> tuple[dict, float, float]:
    """One optimizer step over the process's micro-batches: (the last micro-batch's parts, lr, grad norm)."""
    stage, env, cfg = run.stage, run.env, run.cfg
    n_norm = stage.step_norm(step)
    per_rank = run.micro * run.accum
    parts: dict = {}
    for m in range(run.accum):
        offset = env.rank * per_rank + m * run.micro
        with (run.ddp.no_sync() if env.enabled and m < run.accum - 1 else nullcontext()):
            with run.autocast:
                loss_sum, parts = stage.loss(run.fwd, step, offset, run.micro)
            scaled = loss_sum * (env.world_size / n_norm)
            (run.scaler.scale(scaled) if run.scaler else scaled).backward()
        loss_val = float(loss_sum.detach())
        if not math.isfinite(loss_val):
            raise FloatingPointError(f"loss is {loss_val} at step {step + 1}; lower optim.lr, or check the "
                                     f"data (a run that diverged is recorded as failed)")
        win.add(loss_val, parts)
    win.agg[3] += n_norm / env.world_size
    if run.scaler:
        run.scaler.unscale_(run.opt)
    clip = cfg.optim.grad_clip if cfg.optim.grad_clip > 0 else float("inf")
    grad_norm = float(torch.nn.utils.clip_grad_norm_(stage.module.parameters(), clip))
    if run.scaler:
        run.scaler.step(run.opt)
        run.scaler.update()
    else:
        run.opt.step()
    lr = run.sched.get_last_lr()[0]
    run.sched.step()
    run.opt.zero_grad(set_to_none=True)
    return parts, lr, grad_norm


def _fit(run: _Run, progress: bool, should_stop) -> tuple[float | None, float | None, _Window]:
    """Steps from the resumed one to the end, logging, evaluating and checkpointing on their intervals:
    (the last held-out loss, its standard error, the log window with the run's throughput)."""
    from tqdm.auto import tqdm

    cfg, stage, env, tc = run.cfg, run.stage, run.env, run.cfg.train
    steps = stage.steps
    eval_every = tc.eval_interval or max(1, steps // 10)
    ckpt_every = tc.checkpoint_interval or max(1, steps // 10)
    win = _Window(env, run.state.get("log_window"))

    def checkpoint(step: int) -> None:
        saved = win.saved()
        if env.is_main:
            save_checkpoint(run.out / "checkpoints", step, stage.module, run.opt, run.sched,
                            {"tokens": run.tokens_seen, "examples": step * tc.batch_size, "cell_id": cfg.cell_id,
                             "L_T": run.L_T, "log_window": saved,
                             "wall_clock_s": run.wall_before + time.time() - run.t_start},
                            scaler=run.scaler, keep=tc.keep_checkpoints)
        barrier(env)

    if env.is_main and not (run.out / "cell.json").exists():  # a sweep writes its own, with resources and teacher
        atomic_write_json(run.out / "cell.json", {"id": cfg.cell_id, "name": cfg.name, "config": cfg.to_dict()})
    bar = tqdm(total=steps, initial=run.start, disable=not (progress and env.is_main), unit="step",
               desc=cfg.name or cfg.cell_id, dynamic_ncols=True, mininterval=1.0)
    stage.module.train()
    last_eval, last_stderr = None, None
    for step in range(run.start, steps):
        parts, lr, grad_norm = _step(run, step, win)
        step_tok = stage.step_tokens(step)
        run.tokens_seen += step_tok
        win.tok += step_tok
        win.steps += 1
        done = step + 1
        if done % tc.log_interval == 0 or done == steps:
            rec = win.record(run, done, lr, grad_norm, parts)
            run.log(rec)
            bar.set_postfix(loss=f"{rec['loss']:.3f}", tok_s=f"{rec['tokens_per_s']:.0f}", refresh=False)
        t_side = time.time()  # evaluation and checkpoint time is kept out of the throughput windows
        if done % eval_every == 0 or done == steps:
            ev = stage.evaluate(run.autocast, env)
            last_eval, last_stderr = ev["heldout_loss"], ev.get("heldout_stderr")
            run.log({"kind": "eval", "step": done, "tokens": run.tokens_seen, **ev})
            bar.set_postfix(heldout=f"{last_eval:.3f}", refresh=False)
        bar.update(1)
        stop = should_stop is not None and bool(should_stop(done))
        if should_stop is not None and env.enabled:  # every process stops at the same step
            stop = bool(all_reduce_sum(torch.tensor([float(stop)]), env).item() > 0)
        if done % ckpt_every == 0 or done == steps or stop:
            checkpoint(done)
        win.t += time.time() - t_side
        if stop and done < steps:
            bar.close()
            raise Interrupted(f"stopped after step {done}/{steps}; checkpoint written to {run.out / 'checkpoints'}")
    bar.close()
    return last_eval, last_stderr, win


def train(cfg: CellConfig, out_dir: str | Path, *, progress: bool = True,
          should_stop: Callable[[int], bool] | None = None, teacher_path: str | None = None) -> dict:
    """Train one cell into `out_dir`, resuming from its newest intact checkpoint; returns the result dict.

    `should_stop(step)` is asked after every optimizer step; when it says True (on any process) the loop
    writes a checkpoint and raises `Interrupted` (preemption and the resume tests use this).
    `teacher_path` loads the teacher from there while `cfg.teacher` (e.g. a sweep's `cell:<id>`
    reference) keeps the cell's identity.
    """
    run = _setup(cfg, Path(out_dir), teacher_path)
    _resume(run)
    run.trackers = open_trackers(cfg, run.out, run.env.is_main)  # a resumed cell continues the same tracker runs
    try:
        last_eval, last_stderr, win = _fit(run, progress, should_stop)
        result = _finish(run, last_eval, last_stderr, win, progress)
    except Interrupted:  # preempted or timed out: the run goes on after the requeue
        run.trackers.close()
        raise
    except BaseException:
        run.trackers.close(failed=True)
        raise
    run.trackers.close()
    return result


def _finish(run: _Run, last_eval: float | None, last_stderr: float | None, win: _Window, progress: bool) -> dict:
    """The final evaluation, the stage's fields, model/, the `eval:` benchmarks and result.json (written last)."""
    cfg, stage, env = run.cfg, run.stage, run.env
    if last_eval is None:  # resumed at the very end
        ev = stage.evaluate(run.autocast, env)
        last_eval, last_stderr = ev["heldout_loss"], ev.get("heldout_stderr")
    stage_fields = stage.finish(last_eval)
    wall = time.time() - run.t_start
    D = stage.tokens if stage.tokens is not None else run.tokens_seen  # a VLM cell counts its tokens as it trains
    tok_s, mfu = win.throughput(), _mfu_per_token(run)
    result = {
        "cell_id": cfg.cell_id, "name": cfg.name or cfg.cell_id, "method": cfg.method.name,
        "method_params": dict(cfg.method.params), "method_params_resolved": _resolved(run.method),
        "student": cfg.student, "teacher": cfg.teacher,
        "N_S": stage.n_params, "D_S": D, **stage.result_fields(),
        "loss": last_eval, "loss_stderr": last_stderr, "L_T": run.L_T, "benchmarks": {},
        "flops": stage.flops(D), "steps": stage.steps, "lr": run.peak_lr, "warmup_steps": run.warm,
        "batch_size": cfg.train.batch_size, "world_size": env.world_size,
        "rank_hosts": [h for h, _ in env.hosts] or [socket.gethostname()],
        "nodes": sorted({h for h, _ in env.hosts} or {socket.gethostname()}),
        "device": run.device_type, "precision": run.precision, "wall_clock_s": run.wall_before + wall,
        "wall_clock_s_this_attempt": wall, "resumed_from_step": run.resumed_from, "tokens_per_s": tok_s,
        "mfu": None if mfu is None or tok_s is None else mfu * tok_s,
        "peak_flops": device_peak_flops(run.device_type, run.precision),
        "versions": versions(), "git_revision": git_revision(), "config": cfg.to_dict(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    result.update(stage_fields)
    check_result(result)
    if env.is_main:
        stage.save(run.out / "model")
        if cfg.eval.benchmarks:  # before result.json: a cell killed while evaluating reruns it (predictions cached)
            model, tok, n_heldout = stage.eval_target()  # in eval mode
            heldout = {"loss": last_eval, "stderr": last_stderr, "n": n_heldout}
            result["benchmarks"] = _evaluate(cfg, model, tok, heldout, run.out, run.device, progress)
        run.trackers.summary(result)
        atomic_write_json(run.out / "result.json", result)
    barrier(env)
    return result


def _resolved(method) -> dict:
    """Every parameter of the method with its defaults filled in (what the loss used), JSON-ready."""
    p = getattr(method, "params", None)
    if not dataclasses.is_dataclass(p):
        return {}
    return json.loads(json.dumps(dataclasses.asdict(p), default=str))


def _evaluate(cfg: CellConfig, model, tok, heldout: dict, out: Path, device, progress: bool) -> dict:
    """The cell's `eval:` benchmarks on its final model, a causal LM or a VLM (heldout: {loss, n} just measured)."""
    from ..eval.run import evaluate

    e = cfg.eval
    others = [b for b in e.benchmarks if b != "heldout"]
    res = evaluate(model, others, out_dir=out / "eval", tokenizer=tok, data_root=e.data_root, judge=e.judge,
                   num_fewshot=e.num_fewshot, limit=e.limit, batch_size=e.batch_size, prompt_style=e.prompt_style,
                   mmlu_task=e.mmlu_task, max_new_tokens=e.max_new_tokens, device=str(device),
                   model_name=cfg.name or cfg.cell_id,
                   progress=progress) if others else {}
    if "heldout" in e.benchmarks:
        res = {"heldout": heldout, **res}
    return res
