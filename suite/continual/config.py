"""The `continual:` section of a cell config, and its checks (registered in suite/continual/__init__.py).

    continual: {tasks: synthetic-5, init: "@base", replay: 1000}    # in a grid: one chained cell per task
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from ..config import AT_LEAST_1, NON_NEGATIVE, POSITIVE, ConfigError, Domain
from ..methods import METHODS
from .tasks import SEQUENCES, sequence_tasks


@dataclass(frozen=True)
class ContinualConfig:
    """A stage of a continual-learning sequence (GeRe; suite/continual/): train on task `stage` of `tasks`
    from `init`, with the general replay set of `data`. A grid expands a cell with `tasks` into one cell per task.
    Ranges that depend on other fields (stage within the sequence, replay for a replay method) are in
    check_config below, which runs wherever the section is built."""
    tasks: str | None = None           # preset (synthetic-5 | olora-long | olora-order4 | olora-order5) or "a,b,c"
    data_dir: str | None = None        # O-LoRA CL_Benchmark root (DATA_DIR/<TYPE>/<task>/train.json, labels.json)
    stage: int = 0                     # this cell's task, 1..K (a sweep sets it)
    init: str | None = None            # model it starts from: path / HF id, "@group" in a grid, then the previous stage
    base: str | None = None            # model of the replay snapshot and thresholds (default: stage 1's init)
    epochs: float = 1.0                # passes over the task's rows (and the replay rows mixed in)
    train_limit: Annotated[int | None, AT_LEAST_1] = None   # at most this many training rows per task
    test_limit: Annotated[int | None, AT_LEAST_1] = None    # at most this many test rows per task when scoring
    max_source_len: int = 512          # prompt tokens, BOS included (methods.md B.7)
    max_target_len: int = 50           # label tokens, EOS included
    replay: int = 1000                 # N general samples replayed (drawn from `data`, see replay_sample); 0: none
    # how the N are drawn: "random" (seeded by replay_seed, as GeRe draws its fixed set from SlimPajama) or
    # "first" (the corpus' first N documents: what cells made before this field existed used)
    replay_sample: Annotated[str, Domain(choices=("random", "first"))] = "random"
    replay_seed: Annotated[int, NON_NEGATIVE] = 0  # the draw; fixed across the sequence's stages and seeds
    replay_len: int = 563              # tokens per replay sample (512 + 50 + 1)
    replay_per_batch: int = 0          # 0: each replay sample once per epoch, shuffled in; k: k in every global batch
    replay_bos: bool = False           # start replay samples with BOS (the reference adds no special tokens)
    lora: int = 0                      # LoRA rank (peft), merged into the weights after the stage; 0: full fine-tuning
    lora_alpha: Annotated[float, POSITIVE] = 16.0
    lora_dropout: Annotated[float, Domain(ge=0, lt=1)] = 0.0
    lora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    eval_batch_size: Annotated[int, AT_LEAST_1] = 32       # prompts per generation batch when scoring accuracy
    # how a task prompt reaches the model: "chat" renders it as one user turn with the tokenizer's chat
    # template and its generation prompt (instruct models, as their cards say); "plain" is [BOS] + prompt;
    # "auto" is chat when the tokenizer has a template (real instruct checkpoints), else plain (tiny models)
    prompt_format: Annotated[str, Domain(choices=("auto", "chat", "plain"))] = "auto"


def claims(cfg) -> bool:
    """A continual method's cell is checked even when it leaves the section out (it then lacks `tasks`)."""
    return bool(getattr(METHODS.get(cfg.method.name), "continual", False))


def check_config(cfg, source: str = "config") -> None:
    """Errors (ConfigError, naming the key) for a continual section or method that cannot run."""
    c, name = cfg.continual, cfg.method.name
    continual = [n for n, m in METHODS.items() if getattr(m, "continual", False)]
    if not getattr(METHODS.get(name), "continual", False):
        raise ConfigError(f"{source}: continual: method {name!r} does not train continual-learning stages; "
                          f"valid: {', '.join(continual)}")
    if not c.tasks:
        raise ConfigError(f"{source}: method {name!r} trains continual-learning stages: set continual.tasks "
                          f"(a preset such as {', '.join(SEQUENCES.names())}, or task names joined by commas)")
    try:
        names = sequence_tasks(c.tasks)
    except ValueError as e:
        raise ConfigError(f"{source}: continual.tasks: {e}") from None
    checks = [
        (not 0 <= c.stage <= len(names), "stage", f"must be in 1..{len(names)} (the sequence's tasks)"),
        (c.epochs <= 0, "epochs", "must be > 0"),
        (c.replay < 0, "replay", "must be >= 0"),
        (c.replay == 0 and getattr(METHODS.get(name), "uses_replay", False), "replay",
         f"must be >= 1 for method {name!r}, which replays general samples (with 0 it would train as seq-ft; "
         f"use method seq-ft for no replay)"),
        (c.replay_len < 2, "replay_len", "must be >= 2"),
        (not 0 <= c.replay_per_batch < cfg.train.batch_size, "replay_per_batch",
         f"must be in [0, train.batch_size = {cfg.train.batch_size})"),
        (c.lora < 0, "lora", "must be >= 0 (0: full fine-tuning)"),
        (c.max_source_len < 2, "max_source_len", "must be >= 2 (BOS and a prompt token)"),
        (c.max_target_len < 1, "max_target_len", "must be >= 1"),
        (any(not n.startswith("syn-") for n in names) and not c.data_dir, "data_dir",
         "the O-LoRA tasks are read from files: set it to the CL_Benchmark directory"),
    ]
    for bad, key, msg in checks:
        if bad:
            raise ConfigError(f"{source}: continual.{key}: {msg} (got {getattr(c, key)!r})")
