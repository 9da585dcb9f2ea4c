"""`suite bench train`: tokens/s of our loop vs a plain Hugging Face Trainer loop, same model, data and batch.

    suite bench train --json                       # tiny-1M, batch 16 × 128 tokens, 40 steps each
Both loops train the same freshly initialised tiny model (same seed) on the same synthetic examples
in the same order, with AdamW, no evaluation or checkpoints inside the timed window. Throughput is
measured the same way for both: wall time between the end of step `warmup` and the end of the last
step, from a per-step callback. Field `speed_ratio` = ours / HF (goal >= 1.0). On a GPU whose bf16 peak is
known (suite/train/mfu.py) both sides also get an MFU from the same Kaplan FLOPs per token.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path


def _ours(model_name: str, steps: int, batch: int, seq_len: int, lr: float,
          out: Path) -> tuple[list[float], float, dict]:
    from ..config import config_from_dict
    from ..train import train

    cfg = config_from_dict({
        "name": "bench-ours", "student": model_name, "method": "supervised",
        "data": {"kind": "synthetic", "seq_len": seq_len, "heldout_examples": batch},
        "optim": {"lr": lr, "warmup": 0, "schedule": "constant", "grad_clip": 1.0},
        "train": {"tokens": steps * batch * seq_len, "batch_size": batch, "eval_interval": 10**9,
                  "checkpoint_interval": 10**9, "log_interval": 10**9, "eval_batch_size": batch},
    }, "bench")
    stamps: list[float] = []

    def stamp(step: int) -> bool:
        stamps.append(time.perf_counter())
        return False

    result = train(cfg, out, progress=False, should_stop=stamp)
    return stamps, result["loss"], result


def _hf(model_name: str, steps: int, batch: int, seq_len: int, lr: float, out: Path) -> tuple[list[float], float, None]:
    import torch
    from transformers import Trainer, TrainerCallback, TrainingArguments
    from transformers.trainer_callback import PrinterCallback

    from ..data import make_source
    from ..models import build_model

    source = make_source("synthetic", seq_len=seq_len, seed=0, language="synthetic", heldout_examples=batch)
    model = build_model(model_name, vocab_size=len(source.tokenizer), seed=0)

    class Examples(torch.utils.data.Dataset):
        def __len__(self):
            return steps * batch

        def __getitem__(self, i):
            ex = torch.from_numpy(source.example(i))
            return {"input_ids": ex[:-1], "labels": ex[1:]}

    stamps: list[float] = []

    class Stamp(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            stamps.append(time.perf_counter())

    def collate(items):
        ids = torch.stack([it["input_ids"] for it in items])
        labels = torch.stack([it["labels"] for it in items])
        return {"input_ids": ids, "labels": labels}

    class NoShiftTrainer(Trainer):  # our labels are already shifted; HF models would shift them again
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            logits = model(input_ids=inputs["input_ids"]).logits
            loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), inputs["labels"].flatten())
            return (loss, logits) if return_outputs else loss

    args = TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=batch, max_steps=steps, learning_rate=lr,
        lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.1, adam_beta2=0.95, max_grad_norm=1.0,
        logging_steps=10**9, save_strategy="no", report_to=[], use_cpu=not torch.cuda.is_available(),
        bf16=torch.cuda.is_available() and torch.cuda.is_bf16_supported(),  # as ours: bf16 autocast on such a GPU
        dataloader_num_workers=0, disable_tqdm=True, seed=0, data_seed=0)
    trainer = NoShiftTrainer(model=model, args=args, train_dataset=Examples(), data_collator=collate,
                             callbacks=[Stamp()])
    trainer.remove_callback(PrinterCallback)  # it prints the final log dict to stdout, into our --json output
    trainer.train()
    model.eval()
    with torch.no_grad():
        ex = torch.from_numpy(source.batch(list(range(source.num_examples("heldout"))), split="heldout"))
        ex = ex.to(next(model.parameters()).device)  # the Trainer moved the model (to CUDA when there is one)
        logits = model(input_ids=ex[:, :-1]).logits
        loss = float(torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), ex[:, 1:].flatten()))
    return stamps, loss, None


def bench(model: str = "tiny-1M", steps: int = 40, batch: int = 16, seq_len: int = 128, warmup: int = 5,
          lr: float = 1e-3) -> dict:
    if steps <= warmup + 1:
        raise ValueError(f"steps ({steps}) must exceed warmup ({warmup}) + 1")
    tokens_per_step = batch * seq_len
    out = {"model": model, "steps": steps, "batch": batch, "seq_len": seq_len, "warmup_steps": warmup}
    res: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, fn in (("hf", _hf), ("ours", _ours)):
            stamps, loss, result = fn(model, steps, batch, seq_len, lr, Path(tmp) / name)
            res = result or res
            timed = stamps[warmup:]
            out[f"{name}_tokens_per_s"] = round(tokens_per_step * (len(timed) - 1) / (timed[-1] - timed[0]), 1)
            out[f"{name}_heldout_loss"] = round(loss, 4)
    out["speed_ratio"] = round(out["ours_tokens_per_s"] / out["hf_tokens_per_s"], 4)
    if res.get("peak_flops"):  # same model and tokens on both sides: the same FLOPs per token (suite/train/mfu.py)
        fpt = res["flops"]["total"] / res["D_S"]
        for name in ("hf", "ours"):
            out[f"{name}_mfu"] = round(fpt * out[f"{name}_tokens_per_s"] / res["peak_flops"], 4)
        out["peak_tflops"] = res["peak_flops"] / 1e12
    out["goal"] = "speed_ratio >= 1.0"
    out["goal_met"] = out["speed_ratio"] >= 1.0
    return out
