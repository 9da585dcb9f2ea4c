"""The training loop: one loop for every method; methods differ only in their loss.

    suite train configs/quickstart.yaml --out runs/teacher
    torchrun --nproc_per_node 2 -m suite train CONFIG.yaml --out DIR      # data parallel, gloo or NCCL

What a run leaves in its directory:
    metrics.jsonl   one line per log step ("train") and per evaluation ("eval"), nats/token
    checkpoints/    step_XXXXXXXX/{model.safetensors, trainer.pt, state.json, manifest.json}; the newest that
                    verifies is resumed (a damaged one is renamed step_XXXXXXXX.damaged, with a warning)
    model/          the final model in the Hugging Face layout (safetensors) with its tokenizer
    result.json     the done marker, written last and atomically (schema in DESIGN.md)

Token budget: D tokens are trained exactly. Step s trains examples [s·B, (s+1)·B) of the source (examples
are a pure function of their index, so the data position is the step); the last step masks the labels
past D. Each micro-batch's summed loss is divided by the step's token count (× world size, which DDP's
gradient averaging undoes), so gradients match one process with the whole batch.

A continual-learning stage (a `continual` section; suite/continual/stage.py) reads task and replay rows
instead, trains whole epochs of them, and its loss is per example: divided by the step's example count.
A vision-language cell (a VLM student, or method genrecal; suite/genrecal/stage.py) does the same with
(image, question, answer) items: its module's forward is the micro-batch's loss terms summed and divided by
the whole step's answer-token counts (scaled here by B to fit the per-example bookkeeping), so the step's
gradient is the same however it is split; its held-out loss is the student's answer CE; only the student is
saved.
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
from typing import Callable

import torch

from .._io import append_jsonl, atomic_write_json, atomic_write_text
from .._meta import git_revision, versions
from ..config import SECTIONS, CellConfig, parse_tokens, scaled_lr, stage_section
from ..distributed import all_reduce_sum, barrier, broadcast_object, init_distributed
from ..eval.heldout import heldout_loss, heldout_stats
from ..methods import IGNORE_INDEX, make_method
from ..models import (HiddenStatesLM, build_model, count_non_embedding, count_parameters, forward_flops_per_token,
                      is_tiny, model_shape, save_pretrained)
from .checkpoint import apply_checkpoint, read_checkpoint, resume_checkpoint, save_checkpoint
from .mfu import device_peak_flops
from .schedule import lr_factor, warmup_steps


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


def train(cfg: CellConfig, out_dir: str | Path, *, progress: bool = True,
          should_stop: Callable[[int], bool] | None = None, teacher_path: str | None = None) -> dict:
    """Train one cell into `out_dir`, resuming from its newest intact checkpoint; returns the result dict.

    `should_stop(step)` is asked after every optimizer step; when it says True (on any process) the loop
    writes a checkpoint and raises `Interrupted` (preemption and the resume tests use this).
    `teacher_path` loads the teacher from there while `cfg.teacher` (e.g. a sweep's `cell:<id>`
    reference) keeps the cell's identity.
    """
    from tqdm.auto import tqdm

    from ..data import source_from_config

    t_start = time.time()
    out = Path(out_dir)
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

    d = cfg.data
    method = make_method(cfg.method.name, dict(cfg.method.params))
    # a plugin's stage (config.Section.stage): a continual-learning stage (suite/continual: its task + replay rows,
    # the previous stage's model, its steps) or a vision-language cell (suite/genrecal: its items, student
    # (+ Recalibrator), teacher and loss; it owns its model, `owns_model`)
    kind = stage_section(cfg, method)
    stage = None if kind is None else SECTIONS.get(kind).stage(
        cfg, method, out, device, env, teacher_path=teacher_path, autocast=_autocast(device_type, precision))
    vlm = bool(getattr(stage, "owns_model", False))
    tokenizer_spec = d.tokenizer
    if tokenizer_spec is None and d.kind != "synthetic":
        # text data: a pretrained student (or a teacher, for KD) brings its tokenizer; tiny models get a BPE
        tokenizer_spec = ((teacher_path or cfg.teacher) if method.needs_teacher else
                          None if is_tiny(cfg.student) else cfg.student)
    if vlm:
        source = tok = lm = None
        model = stage.module.to(device)
    else:
        source = stage.general if stage is not None else source_from_config(d, tokenizer_spec, out / "tokenizer")
        tok = source.tokenizer
        lm = stage.model if stage is not None else build_model(cfg.student, vocab_size=len(tok), seed=tc.seed)
        if lm.get_output_embeddings().weight.shape[0] < len(tok):
            raise ValueError(f"student {cfg.student!r} has {lm.get_output_embeddings().weight.shape[0]} output "
                             f"rows, fewer than the tokenizer's {len(tok)} tokens")
        model = HiddenStatesLM(lm).to(device)
    teacher, t_info = (None, {})
    if method.needs_teacher and not vlm:
        spec = teacher_path or cfg.teacher
        if not spec:
            raise ValueError(f"method {cfg.method.name!r} needs a teacher")
        if spec.startswith("cell:"):
            raise ValueError(f"teacher {spec!r} is a reference to a sweep cell; run it through `suite sweep`")
        teacher, t_info = _load_teacher(spec, tok, device)
    n_s = stage.n_params if vlm else count_non_embedding(lm)
    shape = model_shape(stage.student.model if vlm else lm)

    # ---- budget and batch geometry
    D = None if vlm else parse_tokens(tc.tokens, n_s)   # a VLM cell counts its tokens as it trains
    T, B = (None if vlm else source.seq_len), tc.batch_size
    if B % env.world_size:
        raise ValueError(f"train.batch_size {B} is not divisible by the {env.world_size} processes")
    per_rank = B // env.world_size
    mb = tc.micro_batch_size or per_rank
    if per_rank % mb:
        raise ValueError(f"per-process batch {per_rank} is not divisible by train.micro_batch_size {mb}")
    accum = per_rank // mb
    tps = None if vlm else B * T                  # tokens per optimizer step
    steps = None if vlm else math.ceil(D / tps)
    if stage is not None:  # full steps of B examples over the stage's epochs; D counts their tokens
        steps, D = stage.steps, stage.tokens
    eval_every = tc.eval_interval or max(1, steps // 10)
    ckpt_every = tc.checkpoint_interval or max(1, steps // 10)

    peak_lr = scaled_lr(cfg.optim, shape["d_model"])
    opt = _optimizer(model, dataclasses.replace(cfg.optim, lr=peak_lr), device_type)
    # warmup in tokens: the same amount of data for every size and budget (a fraction of the run would be 10x
    # longer at 10x the budget, and a step count would change with the batch)
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
    fwd = torch.compile(ddp) if tc.compile and not vlm else ddp
    autocast = _autocast(device_type, precision)

    # ---- resume: the main process picks the newest checkpoint that verifies and reads (renaming damaged ones
    # aside), the others read the one it picked; nothing is applied before it is all read, so a fall back to
    # scratch starts from the untouched initial model
    metrics_path = out / "metrics.jsonl"
    start, tokens_seen, state, resumed_from = 0, 0, {}, None
    found = resume_checkpoint(out / "checkpoints") if env.is_main else None
    picked = broadcast_object(None if found is None else found[0].name, env)
    if found is None and picked is not None:
        found = (out / "checkpoints" / picked, read_checkpoint(out / "checkpoints" / picked))
    if found is not None:
        ckpt, payload = found
        if payload["state"].get("cell_id") != cfg.cell_id:
            raise RuntimeError(f"{ckpt} belongs to cell {payload['state'].get('cell_id')}, not this config "
                               f"({cfg.cell_id}); use another --out or delete that directory")
        state = apply_checkpoint(ckpt, payload, model, opt, sched, scaler)
        del payload, found
        start, tokens_seen = state["step"], state["tokens"]
        resumed_from = start
        if env.is_main and metrics_path.exists():  # drop lines logged after the checkpoint we resume from
            _metrics_upto(metrics_path, start)
    elif env.is_main:
        atomic_write_text(metrics_path, "")
    barrier(env)
    # training time of the earlier attempts, up to the checkpoint resumed from: what a killed attempt did after
    # its last checkpoint is lost and done again here, so it is not counted (nor its time to write that
    # checkpoint, nor anything before a checkpoint that predates this field: then 0)
    wall_before = float(state.get("wall_clock_s", 0.0))

    # FLOPs per trained token (Kaplan: 3x the student's forward, + the teacher's forward for its logits): the
    # result's `flops` and the logged MFU use the same count
    f_s = f_t = 0.0
    if not vlm:
        f_s = forward_flops_per_token(n_s, shape["n_layers"], shape["d_model"], T, shape["vocab_size"])
        if teacher is not None:
            ts = t_info["teacher_shape"]
            f_t = forward_flops_per_token(t_info["N_T"], ts["n_layers"], ts["d_model"], T, ts["vocab_size"])
    peak = device_peak_flops(device_type, precision)
    mfu_per_tok = None if vlm or peak is None else (3.0 * f_s + f_t) / (peak * env.world_size)
    windows: list[tuple[float, float]] = []  # (tokens, seconds) of each log window, for the result's throughput

    L_T = state.get("L_T")
    if teacher is not None and L_T is None:
        L_T = heldout_loss(teacher, source, tc.eval_batch_size, device, _autocast(device_type, precision), env)

    def log(rec: dict) -> None:
        if env.is_main:
            append_jsonl(metrics_path, rec)

    def checkpoint(step: int) -> None:
        # the log window so far (summed over processes; the main process restores it), so that the first line
        # after a resume averages the whole log interval as an uninterrupted run does
        sums = all_reduce_sum(agg.clone(), env)
        if env.is_main:
            log_window = {"sums": sums.tolist(), "more": dict(more), "steps": window_steps}
            save_checkpoint(out / "checkpoints", step, model, opt, sched,
                            {"tokens": tokens_seen, "examples": step * B, "cell_id": cfg.cell_id, "L_T": L_T,
                             "log_window": log_window, "wall_clock_s": wall_before + time.time() - t_start},
                            scaler=scaler, keep=tc.keep_checkpoints)
        barrier(env)

    if env.is_main and not (out / "cell.json").exists():  # a sweep writes its own, with resources and teacher
        atomic_write_json(out / "cell.json", {"id": cfg.cell_id, "name": cfg.name, "config": cfg.to_dict()})
    bar = tqdm(total=steps, initial=start, disable=not (progress and env.is_main), unit="step",
               desc=cfg.name or cfg.cell_id, dynamic_ncols=True, mininterval=1.0)
    model.train()
    last_eval, last_stderr = None, None
    window_t, window_tok = time.time(), 0  # throughput: this attempt's tokens and seconds only
    agg = torch.zeros(4, dtype=torch.float64)  # loss, ce, kd, tokens since the last log line
    more: dict[str, float] = {}  # method-specific terms since the last log line (this process's share)
    window_steps = 0  # optimizer steps since the last log line
    lw = state.get("log_window")
    if lw:  # the steps between the last log line and the checkpoint, from the earlier attempt
        if env.is_main:  # the sums over all processes: added once
            agg += torch.tensor(lw["sums"], dtype=torch.float64)
            more.update(lw["more"])
        window_steps = int(lw["steps"])
    for step in range(start, steps):
        n_tok = min(tps, D - step * tps) if stage is None else B  # a stage's loss is per example
        for m in range(accum):
            first = step * B + env.rank * per_rank + m * mb
            extra = {}
            if vlm:
                items = stage.micro_batch(step, first - step * B, mb)
            elif stage is not None:
                inp, lab, extra = stage.micro_batch(step, first - step * B, mb)
            else:
                ex = torch.from_numpy(source.batch(list(range(first, first + mb)))).to(device)
                inp, lab = ex[:, :-1], ex[:, 1:]
                if n_tok < tps:  # last step: keep the first n_tok label positions of the global batch, in order
                    pos = (first - step * B) * T + torch.arange(mb * T, device=device).view(mb, T)
                    lab = lab.masked_fill(pos >= n_tok, IGNORE_INDEX)
            sync = m == accum - 1
            with (ddp.no_sync() if env.enabled and not sync else nullcontext()):
                with autocast:
                    if vlm:  # this micro-batch's share of the step's mean (sums over the step's token counts)
                        loss_part, parts = fwd(items)
                        loss_sum, parts = loss_part * n_tok, {k: v * n_tok for k, v in parts.items()}
                    else:
                        h = fwd(inp)
                        h_t = None
                        if teacher is not None:
                            with torch.no_grad():
                                h_t = teacher(inp)
                        loss_sum, parts = method.loss(h, model.head_weight, lab, h_t,
                                                      None if teacher is None else teacher.head_weight, **extra)
                scaled = loss_sum * (env.world_size / n_tok)
                (scaler.scale(scaled) if scaler else scaled).backward()
            loss_val = float(loss_sum.detach())
            if not math.isfinite(loss_val):
                raise FloatingPointError(f"loss is {loss_val} at step {step + 1}; lower optim.lr, or check the "
                                         f"data (a run that diverged is recorded as failed)")
            agg[0] += loss_val
            agg[1] += float(parts.get("ce", 0.0))
            agg[2] += float(parts.get("kd", 0.0))
            for k in parts.keys() - {"ce", "kd"}:  # method-specific terms (this process's share)
                more[k] = more.get(k, 0.0) + float(parts[k])
        agg[3] += n_tok / env.world_size
        if scaler:
            scaler.unscale_(opt)
        clip = cfg.optim.grad_clip if cfg.optim.grad_clip > 0 else float("inf")
        grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), clip))
        if scaler:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        lr = sched.get_last_lr()[0]
        sched.step()
        opt.zero_grad(set_to_none=True)
        step_tok = n_tok if stage is None else stage.step_tokens(step)
        tokens_seen += step_tok
        window_tok += step_tok
        window_steps += 1
        done = step + 1

        if done % tc.log_interval == 0 or done == steps:
            all_reduce_sum(agg, env)
            dt = time.time() - window_t
            rec = {"kind": "train", "step": done, "tokens": tokens_seen, "loss": agg[0].item() / agg[3].item(),
                   "ce": agg[1].item() / agg[3].item() if not vlm or "ce" in parts else None, "lr": lr,
                   "grad_norm": grad_norm,
                   "tokens_per_s": window_tok / max(dt, 1e-9)}
            if mfu_per_tok is not None:
                rec["mfu"] = mfu_per_tok * rec["tokens_per_s"]
            windows.append((window_tok, dt))
            if teacher is not None or "kd" in parts:
                rec["kd"] = agg[2].item() / agg[3].item()
            rec.update({k: v * env.world_size / agg[3].item() for k, v in more.items()})
            more.clear()
            log(rec)
            bar.set_postfix(loss=f"{rec['loss']:.3f}", tok_s=f"{rec['tokens_per_s']:.0f}", refresh=False)
            agg.zero_()
            window_t, window_tok, window_steps = time.time(), 0, 0
        t_side = time.time()  # evaluation and checkpoint time is kept out of the throughput windows
        if done % eval_every == 0 or done == steps:
            if vlm:
                ev = stage.evaluate(autocast)
            else:   # the loss with its standard error over the held-out sequences (one pass)
                hs = heldout_stats(model, source, tc.eval_batch_size, device, autocast, env)
                ev = {"heldout_loss": hs["loss"], "heldout_stderr": hs["stderr"]}
            last_eval, last_stderr = ev["heldout_loss"], ev.get("heldout_stderr")
            log({"kind": "eval", "step": done, "tokens": tokens_seen, **ev})
            bar.set_postfix(heldout=f"{last_eval:.3f}", refresh=False)
        bar.update(1)
        stop = should_stop is not None and bool(should_stop(done))
        if should_stop is not None and env.enabled:  # every process stops at the same step
            stop = bool(all_reduce_sum(torch.tensor([float(stop)]), env).item() > 0)
        if done % ckpt_every == 0 or done == steps or stop:
            checkpoint(done)
        window_t += time.time() - t_side
        if stop and done < steps:
            bar.close()
            raise Interrupted(f"stopped after step {done}/{steps}; checkpoint written to {out / 'checkpoints'}")
    bar.close()

    if last_eval is None:  # resumed at the very end
        if vlm:
            last_eval = stage.evaluate(autocast)["heldout_loss"]
        else:
            hs = heldout_stats(model, source, tc.eval_batch_size, device, autocast, env)
            last_eval, last_stderr = hs["loss"], hs["stderr"]
    stage_fields = stage.finish(last_eval) if stage is not None else {}  # LoRA merged; every task seen scored
    wall = time.time() - t_start
    if vlm:
        D = tokens_seen
        flops = stage.flops(D)
    else:
        flops = {"student_train": 3.0 * f_s * D, "teacher_logits": f_t * D}
        flops["total"] = flops["student_train"] + flops["teacher_logits"]
    # training throughput over the log windows after the first (which holds start-up and compilation)
    steady = windows[1:] or windows
    tok_s = sum(t for t, _ in steady) / max(sum(s for _, s in steady), 1e-9) if steady else None
    result = {
        "cell_id": cfg.cell_id, "name": cfg.name or cfg.cell_id, "method": cfg.method.name,
        "method_params": dict(cfg.method.params), "student": cfg.student, "teacher": cfg.teacher,
        "N_S": n_s, "N_T": t_info.get("N_T"), "D_S": D, "D_T": t_info.get("D_T"),
        "N_S_total": None if vlm else count_parameters(lm), "N_T_total": t_info.get("N_T_total"),   # with embeddings
        "loss": last_eval, "loss_stderr": last_stderr, "L_T": L_T, "bayes_loss": getattr(source, "bayes_loss", None),
        "bayes_loss_heldout": getattr(source, "heldout_bayes_loss", None), "benchmarks": {},
        "flops": flops, "steps": steps, "lr": peak_lr, "warmup_steps": warm, "batch_size": B, "seq_len": T, "world_size": env.world_size,
        "rank_hosts": [h for h, _ in env.hosts] or [socket.gethostname()],
        "nodes": sorted({h for h, _ in env.hosts} or {socket.gethostname()}),
        "device": device_type, "precision": precision, "wall_clock_s": wall_before + wall,
        "wall_clock_s_this_attempt": wall, "resumed_from_step": resumed_from, "tokens_per_s": tok_s,
        "mfu": None if mfu_per_tok is None or tok_s is None else mfu_per_tok * tok_s, "peak_flops": peak,
        "heldout_tokens": None if vlm else source.num_examples("heldout") * T, "model_shape": shape,
        "versions": versions(), "git_revision": git_revision(), "config": cfg.to_dict(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    result.update(stage_fields)
    if env.is_main:
        if vlm:  # the student alone (+ the Recalibrator beside it for the next stage)
            stage.save(out / "model")
        else:
            save_pretrained(lm, out / "model", tokenizer=tok)
        if cfg.eval.benchmarks:  # before result.json: a cell killed while evaluating reruns it (predictions cached)
            heldout = {"loss": last_eval, "stderr": last_stderr,
                       "n": len(stage.heldout_items) if vlm else source.num_examples("heldout")}
            result["benchmarks"] = _evaluate(cfg, stage.student if vlm else lm, tok, heldout, out, device, progress)
        atomic_write_json(out / "result.json", result)
    barrier(env)
    return result


def _evaluate(cfg: CellConfig, model, tok, heldout: dict, out: Path, device, progress: bool) -> dict:
    """The cell's `eval:` benchmarks on its final model, a causal LM or a VLM (heldout: {loss, n} just measured)."""
    from ..eval.run import evaluate
    from ..models.vlm import VLM

    e = cfg.eval
    others = [b for b in e.benchmarks if b != "heldout"]
    (model.model if isinstance(model, VLM) else model).eval()
    res = evaluate(model, others, out_dir=out / "eval", tokenizer=tok, data_root=e.data_root, judge=e.judge,
                   num_fewshot=e.num_fewshot, limit=e.limit, batch_size=e.batch_size, prompt_style=e.prompt_style,
                   mmlu_task=e.mmlu_task, max_new_tokens=e.max_new_tokens, device=str(device),
                   model_name=cfg.name or cfg.cell_id,
                   progress=progress) if others else {}
    if "heldout" in e.benchmarks:
        res = {"heldout": heldout, **res}
    return res
