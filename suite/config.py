"""The schema of a training cell: frozen dataclasses; YAML is only data.

    cfg = load_config("configs/quickstart.yaml", overrides=["student=tiny-1M", "train.tokens=500k"])
    cfg.cell_id       # content hash of everything that changes the result (not the name)

Unknown keys and wrong types fail with the file, the dotted key and the valid choices:
    configs/x.yaml: unknown key 'trian' (did you mean 'train'?); valid: continual, data, eval, method, name,
        optim, student, teacher, train, vlm
"""
from __future__ import annotations

import collections.abc
import copy
import math
import dataclasses
import hashlib
import json
import re
import types
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any, Callable, Mapping, Union

import yaml

from .registry import Registry, UnknownNameError, did_you_mean


class InputError(ValueError):
    """Input that cannot be used (a config, a data or benchmark file, a checkpoint); the message names the file.
    The CLI prints it as one line and exits 2."""


class ConfigError(InputError):
    """A config that cannot be used; the message names the file, the key and what is valid."""


# ----------------------------------------------------------------------------- domains


@dataclass(frozen=True)
class Domain:
    """The values a field accepts beyond its type, declared beside it: `lr: Annotated[float, POSITIVE] = 3e-3`.

    Checked wherever a config is built (a grid's expansion, `--dry-run`, each executor, the cell itself), so a
    bad value is rejected before anything is queued. None passes (optional fields say so in their type)."""
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    choices: tuple = ()
    parse: Callable[[Any], Any] | None = None    # must not raise, e.g. a token budget's syntax
    what: str = ""                               # the domain in words, when `parse` is the test

    def describe(self) -> str:
        if self.choices:
            return "one of " + ", ".join(map(str, self.choices))
        if self.what:
            return self.what
        lo = f"{'(' if self.gt is not None else '['}{self.gt if self.gt is not None else self.ge}" \
            if self.gt is not None or self.ge is not None else None
        hi = f"{self.lt if self.lt is not None else self.le}{')' if self.lt is not None else ']'}" \
            if self.lt is not None or self.le is not None else None
        if lo and hi:
            return f"in {lo}, {hi}"
        if lo:
            return f"> {self.gt:g}" if self.gt is not None else f">= {self.ge:g}"
        return f"< {self.lt:g}" if self.lt is not None else f"<= {self.le:g}"

    def check(self, value: Any, where: str) -> None:
        if value is None:
            return
        if self.choices:
            if value not in self.choices:
                raise ConfigError(f"{where}: {value!r} is not {self.describe()}{did_you_mean(value, self.choices)}")
            return
        if self.parse is not None:
            try:
                self.parse(value)
            except (ValueError, TypeError) as e:  # the parser's message names the value and shows the forms
                raise ConfigError(f"{where}: {e}") from None
            return
        bad = ((self.gt is not None and not value > self.gt) or (self.ge is not None and not value >= self.ge)
               or (self.lt is not None and not value < self.lt) or (self.le is not None and not value <= self.le))
        if bad:
            raise ConfigError(f"{where}: {value!r} is not {self.describe()}")


def _token_syntax(value: Any) -> int | None:
    """A token budget as a config may write it ('2M', 1.5e6, '20xN'); the count, or None for the ×N form."""
    per_param = tokens_per_parameter(value)
    if per_param is not None:
        if per_param <= 0:
            raise ValueError("tokens per parameter must be > 0")
        return None
    return parse_tokens(value)


POSITIVE = Domain(gt=0)
NON_NEGATIVE = Domain(ge=0)
AT_LEAST_1 = Domain(ge=1)
FRACTION = Domain(ge=0, le=1)                                   # [0, 1]
OPEN_FRACTION = Domain(gt=0, lt=1)                              # (0, 1)
TOKENS = Domain(parse=_token_syntax, what="a token budget (2000000, '2M', '500k', '1.5e6' or '20xN', > 0)")


# ----------------------------------------------------------------------------- schema


@dataclass(frozen=True)
class DataConfig:
    kind: Annotated[str, Domain(choices=("synthetic", "corpus"))] = "synthetic"   # data source
    language: str = "synthetic"        # synthetic language preset (kind: synthetic)
    path: str | None = None            # file, directory or hf:<id> (kind: corpus)
    tokenizer: str | None = None       # HF id or path; None: synthetic word-level / BPE trained on the corpus
    text_field: str = "text"
    seq_len: Annotated[int, Domain(ge=2)] = 128             # tokens per example (context length)
    heldout_examples: Annotated[int, AT_LEAST_1] = 256      # synthetic held-out set size (× seq_len tokens)
    heldout_fraction: Annotated[float, OPEN_FRACTION] = 0.05    # corpus held-out fraction
    tokenizer_vocab_size: Annotated[int, Domain(ge=16)] = 1024  # BPE vocabulary when training one
    seed: Annotated[int, NON_NEGATIVE] = 0  # which examples; the model init seed is train.seed


LR_SCALINGS = ("none", "width")


def scaled_lr(optim: "OptimConfig", d_model: int) -> float:
    """The peak lr a model `d_model` wide trains with under `optim.lr_scaling`."""
    if optim.lr_scaling == "width":
        return optim.lr * (optim.base_width / d_model) ** optim.width_exponent
    return optim.lr


@dataclass(frozen=True)
class OptimConfig:
    lr: Annotated[float, POSITIVE] = 3e-3       # peak lr; with lr_scaling "width" the lr of a model base_width wide
    lr_scaling: Annotated[str, Domain(choices=LR_SCALINGS)] = "none"   # width: lr × (base_width / d_model)^exponent
    base_width: Annotated[int, AT_LEAST_1] = 128        # d_model at which the scaled lr equals `lr`
    width_exponent: Annotated[float, NON_NEGATIVE] = 1.0   # 1 = μP's Adam rule for hidden matrices
    min_lr_ratio: Annotated[float, FRACTION] = 0.1      # final lr = lr × this
    warmup: Annotated[float, NON_NEGATIVE] = 0.05       # < 1: fraction of steps; >= 1: steps (within the run)
    warmup_tokens: Annotated[Union[int, str, None], TOKENS] = None   # warmup in tokens ("100k"); overrides warmup
    schedule: Annotated[str, Domain(choices=("cosine", "linear", "constant"))] = "cosine"
    weight_decay: Annotated[float, NON_NEGATIVE] = 0.1  # on matrices only, not norms or biases
    beta1: Annotated[float, Domain(ge=0, lt=1)] = 0.9
    beta2: Annotated[float, Domain(ge=0, lt=1)] = 0.95
    eps: Annotated[float, POSITIVE] = 1e-8
    grad_clip: Annotated[float, NON_NEGATIVE] = 1.0     # max global grad norm; 0 disables


# `train.trackers` names; suite/train/trackers.py registers a backend under each (TRACKERS; a test keeps the two
# equal) and imports its package only when a run opens it, so validating a config imports none of them
TRACKER_NAMES = ("mlflow", "tensorboard", "wandb")


@dataclass(frozen=True)
class TrainConfig:
    tokens: Annotated[Union[int, str], TOKENS] = "20xN"   # budget D: 2000000, "2M", "1.5e6", "20xN" (× non-emb. N)
    batch_size: Annotated[int, AT_LEAST_1] = 32           # sequences per optimizer step, all processes together
    micro_batch_size: Annotated[int, NON_NEGATIVE] = 0    # sequences per forward per process; 0 = batch / world
    eval_interval: Annotated[int, NON_NEGATIVE] = 0       # steps between held-out evals; 0 = 10 evals over the run
    eval_batch_size: Annotated[int, AT_LEAST_1] = 32
    checkpoint_interval: Annotated[int, NON_NEGATIVE] = 0  # steps between checkpoints; 0 = 10 per run
    keep_checkpoints: Annotated[int, AT_LEAST_1] = 2
    log_interval: Annotated[int, AT_LEAST_1] = 10
    precision: Annotated[str, Domain(choices=("auto", "fp32", "bf16", "fp16"))] = "auto"  # auto: bf16 on CUDA
    device: Annotated[str, Domain(choices=("auto", "cpu", "cuda"))] = "auto"
    seed: Annotated[int, NON_NEGATIVE] = 0                # model init
    deterministic: bool = True
    compile: bool = False              # torch.compile the student
    # experiment trackers beside metrics.jsonl, opt-in (suite/train/trackers.py); where a run reports, never what
    # it computes, so left out of the cell id; SUITE_TRACKERS=wandb,tensorboard overrides them at run time
    trackers: tuple[Annotated[str, Domain(choices=TRACKER_NAMES)], ...] = ()


@dataclass(frozen=True)
class EvalConfig:
    """Benchmarks a cell runs on its final model (`suite eval` takes the same keys)."""
    benchmarks: tuple[str, ...] = ()   # mmlu | ai2d | mmvet | mathvista | heldout (heldout is always measured)
    data_root: str | None = None       # MMLU: DIR/mmlu (cais/mmlu layout); VLM TSVs: DIR ($LMUData by default)
    # none | openai:MODEL[@BASE_URL] | hf:PATH_OR_ID | rule (no LLM: "The answer is X.")
    judge: str = "none"
    # MMLU shots from `dev` (first_n, as upstream); 5, the setting of the published MMLU numbers; 0 for zero-shot
    num_fewshot: Annotated[int, NON_NEGATIVE] = 5
    limit: Annotated[int | None, AT_LEAST_1] = None       # at most this many questions per task (smoke runs)
    batch_size: Annotated[int, AT_LEAST_1] = 16
    # VLM prompts: default (VLMEvalKit dataset prompts) | internvl | qwen2vl
    prompt_style: Annotated[str, Domain(choices=("default", "internvl", "qwen2vl"))] = "default"
    # local: our configs over data_root files | upstream: lm-eval's `mmlu` (hub)
    mmlu_task: Annotated[str, Domain(choices=("local", "upstream"))] = "local"
    max_new_tokens: Annotated[int | None, AT_LEAST_1] = None  # VLM answers; None: the benchmark's own


@dataclass(frozen=True)
class Benchmark:
    """A name `eval.benchmarks` may take. The evaluation package registers each one (suite/eval/benchmarks.py)."""
    name: str
    modality: str = "text"             # text: a causal LM | vlm: a vision-language model
    summary: str = ""                  # one line for --help
    run: Callable[..., dict] | None = None   # run(name, model, ctx: eval.benchmarks.EvalContext) -> summary dict


# Filled by the `suite.plugins` packages (registry.py, pyproject.toml): config validates names here and never
# imports them. Methods: suite/methods (supervised, kd), suite/continual (gere, ...), suite/vlm.
METHODS: Registry[type] = Registry("method", plugins=True)
BENCHMARKS: Registry[Benchmark] = Registry("benchmark", plugins=True)


def parse_benchmarks(value: str | Any, where: str = "--benchmarks") -> tuple[str, ...]:
    """'mmlu,heldout' or a list → the registered benchmark names, in order, without repeats."""
    names = [b.strip().lower() for b in (value.split(",") if isinstance(value, str) else value) if b.strip()]
    for b in names:
        if b not in BENCHMARKS:
            raise UnknownNameError(f"{where}: unknown benchmark {b!r}{did_you_mean(b, BENCHMARKS.names())}; "
                                   f"valid: {', '.join(BENCHMARKS.names())}")
    return tuple(dict.fromkeys(names))


@dataclass(frozen=True)
class Section:
    """A plugin's part of a cell: its config section (`continual:` for continual learning, `vlm:` for
    vision-language cells), the checks of that section and, where the plugin trains cells its own way, the stage
    hook the training loop runs them through.

    The plugin registers it under its YAML key: `SECTIONS.register("vlm", Section(VLMConfig, check, claims, ...))`.
    A cell reads it as an attribute (`cfg.vlm`), at the schema's defaults when the YAML leaves it out."""
    schema: type                                        # frozen dataclass; its defaults mean "not set"
    check: Callable[[Any, str], None] | None = None     # (cell config, source) -> raises ConfigError
    claims: Callable[[Any], bool] | None = None         # cells checked even at the defaults (e.g. its methods')
    # the loop's hook: owns(cfg, method) says which cells the plugin trains; stage(cfg, method, out, device, env,
    # teacher_path=..., autocast=...) opens the object that feeds, scores and saves them (train/loop.py: Stage)
    owns: Callable[[Any, Any], bool] | None = None
    stage: Callable[..., Any] | None = None
    # reads_teacher(raw grid cell) -> True: the cell uses its teacher though its method does not (a grid keeps it)
    reads_teacher: Callable[[Any], bool] | None = None
    # hash_view(cfg, section dict) -> the dict the cell id hashes: drops a value that resolves to the behaviour
    # cells had before the key existed (so upgrading never renames a cell whose training did not change)
    hash_view: Callable[[Any, dict], dict] | None = None
    # ---- grid expansion (sweep/grid.py runs these for every registered section and names no plugin)
    # expand(raw cell) -> one raw cell per stage, chained in order, or None (not a staged cell of this plugin);
    # a ValueError becomes a ConfigError naming the grid and the group
    expand: Callable[[dict], list[dict] | None] | None = None
    # first_parent(first stage's raw cell) -> the group the first stage starts from ("@g" -> "g"), or None
    first_parent: Callable[[dict], str | None] | None = None
    # is_stage(raw cell) -> True: a stage of this plugin, linked to the cell it starts from by `link`
    is_stage: Callable[[dict], bool] | None = None
    # link(raw cell, parent Cell): point a stage at the cell it starts from (its init, its Recalibrator, ...)
    link: Callable[[dict, Any], None] | None = None
    links_first: bool = False   # the first stage links to `first_parent`'s cell too (else that is its teacher)
    # name(cfg, teacher size label or None) -> the cell's readable name, or None when the cell is not this plugin's
    name: Callable[[Any, str | None], str | None] | None = None
    # own_vocabulary(cfg) -> True: the cell's models bring their own tokenizers (no shared-vocabulary check)
    own_vocabulary: Callable[[Any], bool] | None = None


def stage_section(cfg: "CellConfig", method: Any) -> str | None:
    """The name of the section whose plugin trains this cell through its own stage, or None (a plain cell)."""
    owners = [k for k, s in SECTIONS.items() if s.stage is not None and s.owns is not None and s.owns(cfg, method)]
    if len(owners) > 1:
        raise ConfigError(f"{cfg.name or 'cell'}: claimed by more than one stage kind ({', '.join(owners)}); "
                          f"a cell is one of them")
    return owners[0] if owners else None


SECTIONS: Registry[Section] = Registry("config section", plugins=True)


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
    sections: Mapping[str, Any] = field(default_factory=dict)   # plugin sections set away from their defaults

    def __getattr__(self, name: str) -> Any:
        """`cfg.continual`, `cfg.vlm`: a plugin's section (SECTIONS), at its defaults when the cell leaves it out."""
        if name.startswith("_") or name == "sections":
            raise AttributeError(name)
        sections = self.__dict__.get("sections") or {}
        if name in sections:
            return sections[name]
        if name in SECTIONS:
            return SECTIONS.get(name).schema()
        raise AttributeError(f"{type(self).__name__} has no field or section {name!r}")

    @property
    def cell_id(self) -> str:
        return cell_id(self)

    def to_dict(self) -> dict:
        """Plain data; every registered section under its own key (the YAML's shape)."""
        d = asdict(self)
        d.pop("sections")
        d["method"]["params"] = dict(self.method.params)
        for name in SECTIONS.names():
            d[name] = asdict(getattr(self, name))
        return d


# Sections added after cells were first hashed: left out of the hash while at their defaults, so adding a
# section never renames existing cells (and resubmitting an old grid still resumes it). Every plugin section
# is optional in this sense.
_OPTIONAL_SECTIONS = {"eval": EvalConfig}
# Fields added to a section after cells were first hashed, left out of the hash at their defaults for the same reason.
# fields added after cells were first run: at the value they implicitly had before (their default, or the
# behaviour the new default replaced) they leave the cell id as it was
_DEFAULT = object()
_OPTIONAL_FIELDS = {"optim": {"lr_scaling": _DEFAULT, "base_width": _DEFAULT, "width_exponent": _DEFAULT,
                              "warmup_tokens": _DEFAULT},
                    # replay was the first N documents before replay_sample existed; "random" is a new cell
                    "continual": {"prompt_format": _DEFAULT, "replay_sample": "first", "replay_seed": _DEFAULT},
                    # answers were the short ones before App. F's teacher answers existed
                    "vlm": {"answers": "short", "detail_tokens": _DEFAULT, "detail_prompt": _DEFAULT}}

# Fields that say where a run reports, never what it computes: left out of the id at every value, so turning a
# tracker on for a requeued cell resumes it instead of renaming it.
_NOT_IDENTITY = {"train": ("trackers",)}


def canonical_params(name: str, params: Mapping[str, Any]) -> dict:
    """A method's parameters as the cell id sees them: typed through the method's `Params` (1 → 1.0 for a float,
    a list → a tuple) and without those at their defaults, so `kd` and `{name: kd, kd_weight: 1.0}` are one cell."""
    P = getattr(METHODS.get(name), "Params", None)
    if P is None or not dataclasses.is_dataclass(P):
        return dict(params)
    typed = build_dataclass(P, params, f"method {name}")
    out = {}
    for f in dataclasses.fields(P):
        if f.name not in params:
            continue
        default = (f.default if f.default is not dataclasses.MISSING else
                   f.default_factory() if f.default_factory is not dataclasses.MISSING else _DEFAULT)
        value = getattr(typed, f.name)
        if value != default:
            out[f.name] = value
    return out


# Cells committed before ids hashed the canonical method parameters (their grids spelled some defaults out):
# canonical id -> the id they were run under, so every cell of sweeps/ keeps its directory and its reports' rows.
# Written by scripts/legacy_ids.py from sweeps/*.yaml; new cells never need an entry.
_LEGACY_IDS_FILE = Path(__file__).with_name("legacy_ids.json")
_legacy_ids: dict[str, str] | None = None


def _legacy_id(canonical: str) -> str:
    global _legacy_ids
    if _legacy_ids is None:
        _legacy_ids = json.loads(_LEGACY_IDS_FILE.read_text()) if _LEGACY_IDS_FILE.exists() else {}
    return _legacy_ids.get(canonical, canonical)


def cell_id(cfg: CellConfig, written: bool = False, legacy: bool = True) -> str:
    """12 hex chars of sha256 over the canonical JSON of everything but the name. The method parameters hash in
    their canonical form (`canonical_params`); `written=True` hashes them as written, the rule before it (what
    scripts/legacy_ids.py compares); `legacy=False` skips the table of committed cells."""
    d = cfg.to_dict()
    d.pop("name", None)
    if not written:
        d["method"]["params"] = canonical_params(cfg.method.name, cfg.method.params)
    for key, cls in _OPTIONAL_SECTIONS.items():
        if getattr(cfg, key) == cls():
            d.pop(key, None)
    for key in SECTIONS.names():
        if key not in cfg.sections:
            d.pop(key, None)
    for section, names in _NOT_IDENTITY.items():
        for n in names:
            d[section].pop(n, None)
    for section, names in _OPTIONAL_FIELDS.items():
        if section not in d:
            continue
        default = type(getattr(cfg, section))()
        for n, before in names.items():
            if getattr(getattr(cfg, section), n) == (getattr(default, n) if before is _DEFAULT else before):
                d[section].pop(n, None)
    for key, section in SECTIONS.items():
        if section.hash_view is not None and key in d:
            d[key] = section.hash_view(cfg, d[key])
    blob = json.dumps(d, sort_keys=True, separators=(",", ":"), default=str)
    digest = hashlib.sha256(blob.encode()).hexdigest()[:12]
    return _legacy_id(digest) if legacy and not written else digest


# ----------------------------------------------------------------------------- token budgets

_SUFFIX = {"k": 1e3, "K": 1e3, "M": 1e6, "B": 1e9, "G": 1e9, "T": 1e12}


def tokens_per_parameter(value: Any) -> float | None:
    """The multiplier of a budget written as "20xN" (tokens per non-embedding parameter), or None."""
    if isinstance(value, bool) or not isinstance(value, str):
        return None
    m = re.fullmatch(r"([0-9.]+(?:e[0-9]+)?)\s*[x×]\s*N", value.strip().replace("_", ""))
    return float(m.group(1)) if m else None


def parse_tokens(value: int | float | str, n_params: int | None = None) -> int:
    """A token budget: 2000000, "2M", "1.5e6", "500k", or "20xN" (tokens per non-embedding parameter)."""
    if isinstance(value, bool):
        raise ConfigError(f"token budget must be a number or string like '2M' or '20xN', got {value!r}")
    if isinstance(value, (int, float)):
        if value <= 0:
            raise ConfigError(f"token budget must be positive, got {value!r}")
        return int(value)
    per_param = tokens_per_parameter(value)
    if per_param is not None:
        if n_params is None:
            raise ConfigError(f"token budget {value!r} needs the model's parameter count")
        return int(round(per_param * n_params))
    s = str(value).strip().replace("_", "")
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
    hints = typing.get_type_hints(cls, include_extras=True)
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            raise ConfigError(f"{where}: unknown key {key!r}{did_you_mean(key, fields)}; "
                              f"valid: {', '.join(sorted(fields))}")
        kwargs[key] = _coerce(hints[key], value, _child(where, key))
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin is Annotated:  # a field's domain (Domain), checked after its type
        base, *meta = typing.get_args(tp)
        value = _coerce(base, value, where)
        for m in meta:
            if isinstance(m, Domain):
                m.check(value, where)
        return value
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


MAX_TOKENS = 10 ** 15   # 1e15 tokens: ~10x the largest published pretraining runs; more is a typo (1e30, 2e18)


def _non_finite(node: Any, where: str) -> str | None:
    """The dotted key of the first NaN or infinite number under `node`, or None. No setting of a cell means
    anything at NaN or infinity (an lr of .inf, a temperature of .nan): they are typos, refused up front."""
    if isinstance(node, float) and not math.isfinite(node):
        return where
    if isinstance(node, Mapping):
        for k, v in node.items():
            bad = _non_finite(v, f"{where}.{k}" if where else str(k))
            if bad:
                return bad
    if isinstance(node, (list, tuple)):
        for i, v in enumerate(node):
            bad = _non_finite(v, f"{where}[{i}]")
            if bad:
                return bad
    return None


def config_from_dict(data: Mapping[str, Any], source: str = "config") -> CellConfig:
    data = dict(data or {})
    bad = _non_finite(data, "")
    if bad:
        raise ConfigError(f"{source}: {bad}: a NaN or infinite value is not a setting (a typo for a number?)")
    method = _method_config(data.pop("method", "supervised"), f"{source}: method")
    core = {f.name for f in dataclasses.fields(CellConfig)} - {"sections"}
    for key in data:
        if key not in core and key not in SECTIONS:
            valid = sorted(core | set(SECTIONS.names()))
            raise ConfigError(f"{source}: unknown key {key!r}{did_you_mean(key, valid)}; valid: {', '.join(valid)}")
    sections = {}
    for key in [k for k in data if k not in core]:
        value = build_dataclass(SECTIONS.get(key).schema, data.pop(key), _child(source, key))
        if value != SECTIONS.get(key).schema():
            sections[key] = value
    cfg = build_dataclass(CellConfig, data, where=source)
    cfg = dataclasses.replace(cfg, method=method, sections=sections)
    if cfg.eval.benchmarks:
        try:
            parse_benchmarks(cfg.eval.benchmarks, where=f"{source}: eval.benchmarks")
        except UnknownNameError as e:
            raise ConfigError(str(e)) from None
    _check_run(cfg, source)
    if method.name and METHODS.get(method.name).requires_teacher(method.params) and not cfg.teacher:
        raise ConfigError(f"{source}: teacher: method {method.name!r} needs a teacher (teacher: PATH_OR_HF_ID, or "
                          f"\"@group\" in a grid)")
    for key, section in SECTIONS.items():  # each plugin checks its own section (and the cells it claims)
        if section.check and (key in cfg.sections or (section.claims and section.claims(cfg))):
            section.check(cfg, source)
    return cfg


def _check_run(cfg: CellConfig, source: str) -> None:
    """Cross-field checks of the run itself: warmup within the run, micro-batches that divide the batch."""
    o, t = cfg.optim, cfg.train
    tokens = _token_syntax(t.tokens)   # None for "20xN": its count needs the model, the loop checks it
    if tokens is not None and tokens > MAX_TOKENS:
        raise ConfigError(f"{source}: train.tokens: {t.tokens!r} is {tokens:.3g} tokens, more than {MAX_TOKENS:.0e} "
                          f"(about 10x the largest published pretraining runs): a typo?")
    if tokens is not None:
        steps = -(-tokens // (t.batch_size * cfg.data.seq_len))
        if o.warmup_tokens is not None and parse_tokens(o.warmup_tokens) > tokens:
            raise ConfigError(f"{source}: optim.warmup_tokens: {o.warmup_tokens!r} is not within the run "
                              f"(train.tokens = {t.tokens!r}); make it at most the budget")
        if o.warmup_tokens is None and o.warmup >= 1 and o.warmup > steps:
            raise ConfigError(f"{source}: optim.warmup: {o.warmup:g} steps is not within the run ({steps} steps of "
                              f"{t.batch_size} x {cfg.data.seq_len} tokens); use a fraction < 1 or fewer steps")
    if t.micro_batch_size and t.micro_batch_size > t.batch_size:
        raise ConfigError(f"{source}: train.micro_batch_size: {t.micro_batch_size} is larger than "
                          f"train.batch_size ({t.batch_size})")


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
        try:
            value = load_yaml(raw)
        except yaml.YAMLError as e:   # `--set train={tokens: 1M` : one line naming the flag, no traceback
            raise ConfigError(f"{source} {item!r}: the value is not valid YAML: "
                              f"{str(e).splitlines()[0]}") from None
        set_dotted(data, key, value, source)
    return data


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A key given twice in one YAML mapping (`key`, 1-based `line` of the second, `first` of the first)."""

    def __init__(self, node, key_node, key, first: int):
        self.key, self.line, self.first = key, key_node.start_mark.line + 1, first
        super().__init__("while constructing a mapping", node.start_mark,
                         f"found duplicate key {key!r} (first at line {first}); one would silently replace the "
                         f"other", key_node.start_mark)


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.safe_load, except that a key given twice in one mapping is an error (PyYAML keeps the last one
    silently, so a grid with two `cells.a` or two `train:` blocks would run half of what was written)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                continue   # an unhashable key: the base constructor reports it
            if key in seen:
                raise DuplicateKeyError(node, key_node, key, seen[key] + 1)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def load_yaml(stream):
    """yaml.safe_load that refuses duplicate keys (see _UniqueKeyLoader)."""
    return yaml.load(stream, Loader=_UniqueKeyLoader)


def read_yaml_mapping(path: str | Path, missing: str = "no such config file") -> dict:
    """A YAML file whose top level is a mapping; errors name the file (and a duplicated key, with its line)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: {missing}")
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory; expected a YAML file")
    try:
        with open(path) as f:  # a stream, so the error's mark names the file and line
            data = load_yaml(f) or {}
    except DuplicateKeyError as e:  # one line: the file, the key and both lines
        raise ConfigError(f"{path}: line {e.line}: key {e.key!r} given twice (first at line {e.first}); one "
                          f"would silently replace the other") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    except (OSError, UnicodeDecodeError) as e:   # unreadable (permissions) or not text
        raise ConfigError(f"{path}: cannot be read: {getattr(e, 'strerror', None) or e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def load_config(path: str | Path, overrides: list[str] | None = None) -> CellConfig:
    data = read_yaml_mapping(path)
    if not data and not overrides:   # every default: tiny-1M on 20xN tokens, surely not what was meant
        raise ConfigError(f"{path}: the config is empty; a cell needs at least `student:` "
                          f"(see configs/quickstart.yaml)")
    try:
        return config_from_dict(apply_overrides(data, overrides), source=str(path))
    except ConfigError as e:   # a bad key or value that came from the command line: say which --set
        msg = str(e)
        culprit = next((o for o in overrides or () if _names_override(msg, o.partition("=")[0].strip())), None)
        if culprit is None:
            raise
        raise ConfigError(f"{msg} (from --set {culprit})") from None


def _names_override(msg: str, key: str) -> bool:
    """Does a config error's message name the dotted key an override set (`train.tokenz`, or `'tokenz'`)?"""
    return bool(key) and (f"{key}:" in msg or f"{key} " in msg or f"'{key.split('.')[-1]}'" in msg)
