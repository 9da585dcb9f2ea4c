"""The schema of a training cell: frozen dataclasses; YAML is only data.

    cfg = load_config("configs/quickstart.yaml", overrides=["student=tiny-1M", "train.tokens=500k"])
    cfg.cell_id       # content hash of everything that changes the result (not the name)

Unknown keys and wrong types fail with the file, the dotted key and the valid choices:
    configs/x.yaml: unknown key 'trian' (did you mean 'train'?); valid: continual, data, eval, method, name, optim, student, teacher, train, vlm
"""
from __future__ import annotations

import collections.abc
import copy
import dataclasses
import hashlib
import json
import re
import types
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Union

import yaml

from .registry import did_you_mean


class ConfigError(ValueError):
    """A config that cannot be used; the message names the file, the key and what is valid."""


# ----------------------------------------------------------------------------- schema


@dataclass(frozen=True)
class DataConfig:
    kind: str = "synthetic"            # data source: synthetic | corpus
    language: str = "synthetic"        # synthetic language preset (kind: synthetic)
    path: str | None = None            # file, directory or hf:<id> (kind: corpus)
    tokenizer: str | None = None       # HF id or path; None: synthetic word-level / BPE trained on the corpus
    text_field: str = "text"
    seq_len: int = 128                 # tokens per example (context length)
    heldout_examples: int = 256        # synthetic held-out set size (× seq_len tokens)
    heldout_fraction: float = 0.05     # corpus held-out fraction
    tokenizer_vocab_size: int = 1024   # BPE vocabulary when training one
    seed: int = 0                      # which examples; the model init seed is train.seed


LR_SCALINGS = ("none", "width")


def scaled_lr(optim: "OptimConfig", d_model: int) -> float:
    """The peak lr a model `d_model` wide trains with under `optim.lr_scaling`."""
    if optim.lr_scaling == "width":
        return optim.lr * (optim.base_width / d_model) ** optim.width_exponent
    return optim.lr


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 3e-3                   # peak lr; with lr_scaling "width" the lr of a model base_width wide
    lr_scaling: str = "none"           # none | width: lr × (base_width / d_model)^width_exponent (μP-style)
    base_width: int = 128              # d_model at which the scaled lr equals `lr`
    width_exponent: float = 1.0        # 1 = μP's Adam rule for hidden matrices; fitted per world from lr scans
    min_lr_ratio: float = 0.1          # final lr = lr × this
    warmup: float = 0.05               # < 1: fraction of steps; >= 1: steps
    warmup_tokens: Union[int, str, None] = None   # warmup in tokens ("100k"), the same for every size; overrides warmup
    schedule: str = "cosine"           # cosine | linear | constant
    weight_decay: float = 0.1          # on matrices only, not norms or biases
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    grad_clip: float = 1.0             # max global grad norm; 0 disables


@dataclass(frozen=True)
class TrainConfig:
    tokens: Union[int, str] = "20xN"   # budget D: 2000000, "2M", "500k", "1.5e6", or "20xN" (× non-embedding N)
    batch_size: int = 32               # sequences per optimizer step, all processes together
    micro_batch_size: int = 0          # sequences per forward per process; 0 = batch_size / world_size
    eval_interval: int = 0             # steps between held-out evals; 0 = 10 evals over the run
    eval_batch_size: int = 32
    checkpoint_interval: int = 0       # steps between checkpoints; 0 = 10 per run
    keep_checkpoints: int = 2
    log_interval: int = 10
    precision: str = "auto"            # auto (bf16 on CUDA, fp32 on CPU) | fp32 | bf16 | fp16
    device: str = "auto"               # auto | cpu | cuda
    seed: int = 0                      # model init
    deterministic: bool = True
    compile: bool = False              # torch.compile the student


@dataclass(frozen=True)
class EvalConfig:
    """Benchmarks a cell runs on its final model (`suite eval` takes the same keys)."""
    benchmarks: tuple[str, ...] = ()   # mmlu | ai2d | mmvet | mathvista | heldout (heldout is always measured)
    data_root: str | None = None       # MMLU: DIR/mmlu (cais/mmlu layout); VLM TSVs: DIR ($LMUData by default)
    judge: str = "none"                # none | openai:MODEL[@BASE_URL] | hf:PATH_OR_ID
    num_fewshot: int = 0               # MMLU shots from `dev` (first_n, as upstream)
    limit: int | None = None           # at most this many questions per task / benchmark (smoke runs)
    batch_size: int = 16
    prompt_style: str = "default"      # VLM prompts: default (VLMEvalKit dataset prompts) | internvl | qwen2vl
    mmlu_task: str = "local"           # local: our configs over data_root files | upstream: lm-eval's `mmlu` (hub)
    max_new_tokens: int | None = None  # VLM answers; None: the benchmark's (16 AI2D, 1024 MM-Vet / MathVista)


@dataclass(frozen=True)
class ContinualConfig:
    """A stage of a continual-learning sequence (GeRe; suite/continual/): train on task `stage` of `tasks`
    from `init`, with the general replay set of `data`. A grid expands a cell with `tasks` into one cell per task."""
    tasks: str | None = None           # preset (synthetic-5 | olora-long | olora-order4 | olora-order5) or "a,b,c"
    data_dir: str | None = None        # O-LoRA CL_Benchmark root (DATA_DIR/<TYPE>/<task>/train.json, labels.json)
    stage: int = 0                     # this cell's task, 1..K (a sweep sets it)
    init: str | None = None            # model it starts from: path / HF id, "@group" in a grid, then the previous stage
    base: str | None = None            # model of the replay snapshot and thresholds (default: stage 1's init)
    epochs: float = 1.0                # passes over the task's rows (and the replay rows mixed in)
    train_limit: int | None = None     # at most this many training rows per task
    test_limit: int | None = None      # at most this many test rows per task when scoring accuracy
    max_source_len: int = 512          # prompt tokens, BOS included (methods.md B.7)
    max_target_len: int = 50           # label tokens, EOS included
    replay: int = 1000                 # N general samples replayed (the first N of `data`); 0: none
    replay_len: int = 563              # tokens per replay sample (512 + 50 + 1)
    replay_per_batch: int = 0          # 0: each replay sample once per epoch, shuffled in; k: k in every global batch
    replay_bos: bool = False           # start replay samples with BOS (the reference adds no special tokens)
    lora: int = 0                      # LoRA rank (peft), merged into the weights after the stage; 0: full fine-tuning
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    lora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    eval_batch_size: int = 32          # prompts per generation batch when scoring accuracy


@dataclass(frozen=True)
class VLMConfig:
    """A vision-language cell (GenRecal and its SFT / KD baselines; suite/genrecal/): the student is a VLM trained
    on visual-instruction items, whole epochs. A grid expands a genrecal cell with `stages` into one cell per stage."""
    train_items: int = 2000            # synthetic visual-instruction items (suite/data/visual.py; data.seed draws them)
    heldout_items: int = 64            # items held out for the loop's eval loss (the student's answer CE, nats/token)
    kinds: tuple[str, ...] = ("ai2d", "mathvista")   # synthetic item kinds: AI2D-style MCQ, MathVista-style values
    style: str = "default"             # prompt style of the items: default | internvl | qwen2vl (as eval.prompt_style)
    image_size: int = 64               # rendered side of the synthetic images
    path: str | None = None            # instead of synthetic items: LLaVA-format JSON/JSONL (image, conversations)
    image_root: str | None = None      # where `path`'s relative image paths live (default: beside the file)
    epochs: float = 1.0                # passes over the training items
    init: str | None = None            # student weights the cell starts from (path / HF id / cell:<id>); None: student
    recalibrator: str | None = None    # the Recalibrator a GenRecal stage starts from (a cell dir or cell:<id>)
    stages: tuple[int, ...] = ()       # genrecal in a grid: one chained cell per stage, e.g. [1, 2, 3] (or [2, 3])
    train_vision: bool = False         # also train the student's vision encoder (stages 2-3 and baselines): for a
                                       # from-scratch tiny VLM; a pretrained one keeps its encoder frozen (paper)


@dataclass(frozen=True)
class MethodConfig:
    name: str = "supervised"
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CellConfig:
    name: str = ""
    student: str = "tiny-1M"           # tiny name, local path or HF id
    teacher: str | None = None         # path or HF id (methods that need one)
    method: MethodConfig = field(default_factory=MethodConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    continual: ContinualConfig = field(default_factory=ContinualConfig)
    vlm: VLMConfig = field(default_factory=VLMConfig)

    @property
    def cell_id(self) -> str:
        return cell_id(self)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["method"]["params"] = dict(self.method.params)
        return d


# Sections added after cells were first hashed: left out of the hash while at their defaults, so adding a
# section never renames existing cells (and resubmitting an old grid still resumes it).
_OPTIONAL_SECTIONS = {"eval": EvalConfig, "continual": ContinualConfig, "vlm": VLMConfig}
# Fields added to a section after cells were first hashed, left out of the hash at their defaults for the same reason.
_OPTIONAL_FIELDS = {"optim": ("lr_scaling", "base_width", "width_exponent", "warmup_tokens")}


def cell_id(cfg: CellConfig) -> str:
    """12 hex chars of sha256 over the canonical JSON of everything but the name."""
    d = cfg.to_dict()
    d.pop("name", None)
    for key, cls in _OPTIONAL_SECTIONS.items():
        if getattr(cfg, key) == cls():
            d.pop(key, None)
    for section, names in _OPTIONAL_FIELDS.items():
        default = type(getattr(cfg, section))()
        for n in names:
            if getattr(getattr(cfg, section), n) == getattr(default, n):
                d[section].pop(n, None)
    blob = json.dumps(d, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


# ----------------------------------------------------------------------------- token budgets

_SUFFIX = {"k": 1e3, "K": 1e3, "M": 1e6, "B": 1e9, "G": 1e9, "T": 1e12}


def parse_tokens(value: int | float | str, n_params: int | None = None) -> int:
    """A token budget: 2000000, "2M", "1.5e6", "500k", or "20xN" (tokens per non-embedding parameter)."""
    if isinstance(value, bool):
        raise ConfigError(f"token budget must be a number or string like '2M' or '20xN', got {value!r}")
    if isinstance(value, (int, float)):
        if value <= 0:
            raise ConfigError(f"token budget must be positive, got {value!r}")
        return int(value)
    s = str(value).strip().replace("_", "")
    m = re.fullmatch(r"([0-9.]+(?:e[0-9]+)?)\s*[x×]\s*N", s)
    if m:
        if n_params is None:
            raise ConfigError(f"token budget {value!r} needs the model's parameter count")
        return int(round(float(m.group(1)) * n_params))
    m = re.fullmatch(r"([0-9.]+(?:e[+]?[0-9]+)?)\s*([kKMBGT]?)", s)
    if not m:
        raise ConfigError(f"cannot read token budget {value!r}; examples: 2000000, '2M', '500k', '1.5e6', '20xN'")
    n = float(m.group(1)) * _SUFFIX.get(m.group(2), 1)
    if n <= 0:
        raise ConfigError(f"token budget must be positive, got {value!r}")
    return int(round(n))


# ----------------------------------------------------------------------------- loading


def build_dataclass(cls: type, data: Mapping[str, Any] | None, where: str = "config"):
    """Instantiate frozen dataclass `cls` from a mapping, checking keys and types recursively."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping for {cls.__name__}, got {type(data).__name__} {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            raise ConfigError(f"{where}: unknown key {key!r}{did_you_mean(key, fields)}; "
                              f"valid: {', '.join(sorted(fields))}")
        kwargs[key] = _coerce(hints[key], value, _child(where, key))
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, where)
            except ConfigError as e:
                errors.append(str(e))
        names = " or ".join(_type_name(a) for a in args)
        raise ConfigError(f"{where}: expected {names}, got {type(value).__name__} {value!r}")
    if dataclasses.is_dataclass(tp):
        return build_dataclass(tp, value, where)
    if origin in (Mapping, dict, collections.abc.Mapping) or tp in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__} {value!r}")
        return dict(value)
    if tp is Any:
        return value
    if origin is tuple and len(typing.get_args(tp)) == 2 and typing.get_args(tp)[1] is Ellipsis:
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__} {value!r}")
        return tuple(_coerce(typing.get_args(tp)[0], v, f"{where}[{i}]") for i, v in enumerate(value))
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML reads "3e-3" as a string (YAML 1.1 needs a dot: 3.0e-3)
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
    elif isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ConfigError(f"{where}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")


def _child(where: str, key: str) -> str:
    """'f.yaml' + 'train' → 'f.yaml: train'; 'f.yaml: train' + 'tokens' → 'f.yaml: train.tokens'."""
    return f"{where}.{key}" if ": " in where else f"{where}: {key}"


def _type_name(tp: Any) -> str:
    return "null" if tp is type(None) else getattr(tp, "__name__", str(tp))


def _method_config(value: Any, where: str) -> MethodConfig:
    """`method: kd` or `method: {name: kd, temperature: 2}`; parameters validated against the method."""
    from .methods import METHODS
    from .registry import UnknownNameError

    if isinstance(value, str):
        name, params = value, {}
    elif isinstance(value, Mapping):
        params = dict(value)
        name = params.pop("name", None)
        if "params" in params:  # the to_dict() form {name, params: {...}}
            params = {**params.pop("params"), **params}
        if not isinstance(name, str):
            raise ConfigError(f"{where}: a method mapping needs 'name' (valid: {', '.join(METHODS.names())})")
    else:
        raise ConfigError(f"{where}: expected a method name or mapping, got {value!r}")
    try:
        cls = METHODS.get(name)
    except UnknownNameError as e:
        raise ConfigError(f"{where}: {e}") from None
    try:
        cls(build_dataclass(cls.Params, params, where))  # validate now; the loop builds its own
    except ValueError as e:
        raise ConfigError(str(e) if str(e).startswith(where) else f"{where}: {e}") from None
    return MethodConfig(name=name, params=params)


def config_from_dict(data: Mapping[str, Any], source: str = "config") -> CellConfig:
    data = dict(data or {})
    method = _method_config(data.pop("method", "supervised"), f"{source}: method")
    cfg = build_dataclass(CellConfig, data, where=source)
    cfg = dataclasses.replace(cfg, method=method)
    if cfg.eval.benchmarks:
        from .eval.run import parse_benchmarks
        from .registry import UnknownNameError

        try:
            parse_benchmarks(cfg.eval.benchmarks, where=f"{source}: eval.benchmarks")
        except UnknownNameError as e:
            raise ConfigError(str(e)) from None
    if cfg.optim.lr_scaling not in LR_SCALINGS:
        raise ConfigError(f"{source}: optim.lr_scaling: {cfg.optim.lr_scaling!r} is not one of "
                          f"{', '.join(LR_SCALINGS)}{did_you_mean(cfg.optim.lr_scaling, LR_SCALINGS)}")
    if cfg.optim.warmup_tokens is not None:
        try:
            parse_tokens(cfg.optim.warmup_tokens)
        except ValueError as e:
            raise ConfigError(f"{source}: optim.warmup_tokens: {e}") from None
    for key, valid in (("prompt_style", ("default", "internvl", "qwen2vl")), ("mmlu_task", ("local", "upstream"))):
        value = getattr(cfg.eval, key)
        if value not in valid:
            raise ConfigError(f"{source}: eval.{key}: {value!r} is not one of {', '.join(valid)}"
                              f"{did_you_mean(value, valid)}")
    if method.name and _needs_teacher(method.name) and not cfg.teacher:
        raise ConfigError(f"{source}: method {method.name!r} needs a teacher (teacher: PATH_OR_HF_ID)")
    if cfg.continual != ContinualConfig() or getattr(_method_class(method.name), "continual", False):
        from .continual import check_config

        check_config(cfg, source)
    if cfg.vlm != VLMConfig() or getattr(_method_class(method.name), "vlm_only", False):
        from .genrecal import check_config as check_vlm

        check_vlm(cfg, source)
    return cfg


def _method_class(name: str):
    from .methods import METHODS

    return METHODS.get(name)


def _needs_teacher(name: str) -> bool:
    from .methods import METHODS

    return bool(getattr(METHODS.get(name), "needs_teacher", False))


def set_dotted(data: dict, key: str, value: Any, source: str = "config") -> None:
    """data["a"]["b"] = value for key "a.b"; a method given as a string becomes {name: ...} when a
    parameter is set under it (`method.temperature=2`), and a new method name replaces its parameters."""
    node = data
    parts = key.strip().split(".")
    for p in parts[:-1]:
        if p == "method" and isinstance(node.get(p), str):
            node[p] = {"name": node[p]}
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{source} {key!r}: {p!r} is not a mapping")
    if parts[-1] == "method" and isinstance(node.get("method"), dict) and isinstance(value, str):
        node["method"] = {"name": value}
    else:
        node[parts[-1]] = copy.deepcopy(value)


def apply_overrides(data: dict, overrides: list[str] | None, source: str = "--set") -> dict:
    """`key.sub=value` overrides; the value is read as YAML (numbers, null, lists)."""
    data = copy.deepcopy(data)
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"{source} {item!r}: expected KEY=VALUE, e.g. train.tokens=2M")
        key, raw = item.split("=", 1)
        set_dotted(data, key, yaml.safe_load(raw), source)
    return data


def read_yaml_mapping(path: str | Path, missing: str = "no such config file") -> dict:
    """A YAML file whose top level is a mapping; errors name the file."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: {missing}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def load_config(path: str | Path, overrides: list[str] | None = None) -> CellConfig:
    data = read_yaml_mapping(path)
    return config_from_dict(apply_overrides(data, overrides), source=str(path))
