"""Experiment trackers beside metrics.jsonl, opt-in: TensorBoard, Weights & Biases, MLflow.

    train: {trackers: [tensorboard, wandb]}        # in a cell's config; or at run time, for any cell:
    SUITE_TRACKERS=wandb,tensorboard suite sweep submit sweeps/quickstart.yaml      # "none" turns them off
    tensorboard --logdir runs/quickstart           # every cell of the sweep, one run each

    tr = open_trackers(cfg, out_dir, is_main)      # what the training loop does
    tr.log(rec, step)                              # each metrics.jsonl record: "train/loss", "eval/heldout_loss", ...
    tr.summary(result)                             # the final numbers: "final/loss", "final/benchmarks/mmlu/overall"
    tr.close()                                     # or `with open_trackers(...) as tr:` (a failure closes it failed)

Trackers are logging only: they never enter the cell id, and a requeued or resumed cell continues the same
tracker run. `<cell>/trackers.json` (written atomically) holds each tracker's run and the last step it was
sent per record kind:
    {"wandb": {"id": "k3x9q2ab", "project": "suite", "entity": "...", "logged": {"train": 150, "eval": 140}},
     "mlflow": {"run_id": "...", "tracking_uri": "file:///.../runs/NAME/mlruns", "experiment": "NAME", ...},
     "tensorboard": {"logdir": "tensorboard", ...}}                        # logdir relative to the cell directory

Resume: wandb.init(id=..., resume="allow"); MLflow reopens the stored run id (status back to RUNNING);
TensorBoard writes a new event file into the same logdir, which it reads as one run. A resumed loop re-logs
the steps after its checkpoint, some of which a tracker already holds (and W&B refuses a step lower than the
last it saw), so a record goes to a tracker only when its step is past the last one that tracker was sent for
the record's kind and not below the last one it was sent for any kind. That state is saved after every record:
a kill can lose the last few records a tracker had buffered, never send one twice.

Defaults (each stored in trackers.json at the first open, so a resume finds the same run whatever the
environment says then): W&B project $WANDB_PROJECT or "suite", run name the cell's name, group the sweep's name
(the cell directory's parent holds sweep.json), config the cell's, files under the cell directory unless
$WANDB_DIR; MLflow $MLFLOW_TRACKING_URI, else a file store `mlruns/` in the sweep directory (the cell's
directory outside a sweep; many cells may write to it at once), experiment $MLFLOW_EXPERIMENT_NAME, else the
sweep's name, else "suite". MLflow 3 refuses file stores unless MLFLOW_ALLOW_FILE_STORE=true, which is set
(unless already set) for a file: store, the default. Packages: `pip install 'suite[trackers]'`, or each alone
(tensorboard, wandb, mlflow-skinny); they are imported when a run opens its trackers, never by the config.

A tracker that fails while logging (a server gone) is warned about once and left out for the rest of the
attempt: metrics.jsonl stays the record, and training goes on.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import secrets
import string
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from .._io import atomic_write_json
from ..config import CellConfig, ConfigError
from ..registry import Registry, UnknownNameError

STATE_FILE = "trackers.json"
ENV = "SUITE_TRACKERS"
# the final numbers summary() sends, under "final/" (nested ones flattened with "/": "final/flops/total")
SUMMARY_FIELDS = ("loss", "loss_stderr", "L_T", "N_S", "D_S", "flops", "wall_clock_s", "tokens_per_s", "mfu",
                  "benchmarks")
_FLOPS_FIELDS = ("total",)


class MissingPackage(ConfigError, ImportError):
    """A tracker asked for whose package is not installed; the message says what to pip install."""


@dataclass
class Context:
    """What a backend opens its run with."""
    cfg: CellConfig
    out: Path                          # the cell directory
    name: str                          # the run's name: the cell's, else its id
    sweep: str | None                  # the sweep's name when the cell directory's parent holds sweep.json
    store: Path                        # where a shared local store goes: the sweep directory, else the cell's
    save: Callable[[], None] = field(repr=False, default=lambda: None)   # write trackers.json now


class Tracker:
    """A backend: opens (or reopens) its run from `entry`, its slot of trackers.json, which it fills with
    what finds the run again. `metrics` are flat {name: float}."""
    package = ""                       # what `pip install` needs
    module = ""                        # what it imports (checked without importing it)

    def __init__(self, ctx: Context, entry: dict):
        raise NotImplementedError

    def log(self, metrics: dict[str, float], step: int) -> None:
        raise NotImplementedError

    def summary(self, metrics: dict[str, float], step: int) -> None:
        self.log(metrics, step)

    def close(self, failed: bool = False) -> None:
        pass


TRACKERS: Registry[type[Tracker]] = Registry("tracker")


@TRACKERS.register("tensorboard")
class TensorBoard(Tracker):
    """Event files in <cell>/tensorboard (torch.utils.tensorboard); each attempt adds one, read as one run."""
    package = module = "tensorboard"

    def __init__(self, ctx: Context, entry: dict):
        from torch.utils.tensorboard import SummaryWriter

        logdir = Path(entry.setdefault("logdir", "tensorboard"))
        self.writer = SummaryWriter(log_dir=str(logdir if logdir.is_absolute() else ctx.out / logdir))

    def log(self, metrics: dict[str, float], step: int) -> None:
        for k, v in metrics.items():
            self.writer.add_scalar(k, v, global_step=step)
        self.writer.flush()   # its default is every 120 s: a killed job would lose what trackers.json says was sent

    def close(self, failed: bool = False) -> None:
        self.writer.close()


@TRACKERS.register("wandb")
class WandB(Tracker):
    """A W&B run whose id is chosen here and stored before it starts, so any attempt resumes the same one."""
    package = module = "wandb"

    def __init__(self, ctx: Context, entry: dict):
        import wandb

        if "id" not in entry:   # 8 of [a-z0-9], as W&B's own; saved before init, so a kill during init reuses it
            entry["id"] = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))
            entry["project"] = os.environ.get("WANDB_PROJECT") or "suite"
            if ctx.sweep:
                entry["group"] = ctx.sweep
            ctx.save()
        self.run = wandb.init(
            id=entry["id"], resume="allow", project=entry["project"], entity=entry.get("entity"),
            group=entry.get("group"), name=ctx.name, config={**ctx.cfg.to_dict(), "cell_id": ctx.cfg.cell_id},
            job_type=ctx.cfg.method.name,
            dir=None if os.environ.get("WANDB_DIR") else str(ctx.out))
        if getattr(self.run, "entity", None) and not entry.get("entity"):   # known once online
            entry["entity"] = self.run.entity
            ctx.save()

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.run.log(metrics, step=step)

    def summary(self, metrics: dict[str, float], step: int) -> None:
        self.run.summary.update(metrics)

    def close(self, failed: bool = False) -> None:
        self.run.finish(exit_code=1 if failed else 0)


@TRACKERS.register("mlflow")
class MLflow(Tracker):
    """An MLflow run through MlflowClient (no global active run: several cells may share a process)."""
    package, module = "mlflow-skinny", "mlflow"
    MAX_PARAMS = 100   # params per log_batch call (MLflow's limit)

    def __init__(self, ctx: Context, entry: dict):
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        uri = entry.get("tracking_uri") or os.environ.get("MLFLOW_TRACKING_URI") \
            or (ctx.store / "mlruns").resolve().as_uri()
        if uri.startswith("file:"):
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")   # MLflow 3 refuses file stores without it
        self.client = client = MlflowClient(tracking_uri=uri)
        self.run_id = entry.get("run_id")
        if self.run_id is not None:
            try:
                client.update_run(self.run_id, status="RUNNING")
            except MlflowException as e:   # the store was wiped or moved: a new run, said out loud
                _warn(f"mlflow: run {self.run_id} of {uri} cannot be reopened ({str(e).splitlines()[0]}); "
                      f"starting a new run")
                self.run_id = None
        if self.run_id is None:
            name = entry.get("experiment") or os.environ.get("MLFLOW_EXPERIMENT_NAME") or ctx.sweep or "suite"
            run = client.create_run(_experiment_id(client, name), run_name=ctx.name,
                                    tags={"suite.cell_id": ctx.cfg.cell_id, "suite.method": ctx.cfg.method.name})
            self.run_id = run.info.run_id
            entry.update(run_id=self.run_id, tracking_uri=uri, experiment=name)
            ctx.save()
            self._log_params(ctx.cfg)

    def _log_params(self, cfg: CellConfig) -> None:
        from mlflow.entities import Param

        flat = _flatten(cfg.to_dict(), keep=lambda v: v is not None and not isinstance(v, dict))
        params = [Param(k, json.dumps(v) if isinstance(v, (list, tuple)) else str(v)) for k, v in flat.items()]
        for i in range(0, len(params), self.MAX_PARAMS):
            self.client.log_batch(self.run_id, params=params[i:i + self.MAX_PARAMS])

    def log(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(_mlflow_key(k), v, now, step) for k, v in metrics.items()])

    def close(self, failed: bool = False) -> None:
        self.client.set_terminated(self.run_id, "FAILED" if failed else "FINISHED")


def _experiment_id(client, name: str) -> str:
    """The id of experiment `name`, created when missing (two cells creating it at once: the loser reads it)."""
    from mlflow.exceptions import MlflowException

    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    try:
        return client.create_experiment(name)
    except MlflowException:
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def _mlflow_key(key: str) -> str:
    """MLflow keys take letters, digits, _ - . / and spaces."""
    return re.sub(r"[^\w\-./ ]", "_", key)


# ----------------------------------------------------------------------------- the loop's side


class Trackers:
    """The trackers a run opened (none: every method does nothing)."""

    def __init__(self, backends: Mapping[str, Tracker] | None = None, state: dict | None = None,
                 path: Path | None = None):
        self._backends = dict(backends or {})
        self._state = state if state is not None else {}
        self._path = path
        self._closed = False

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._backends)

    def __bool__(self) -> bool:
        return bool(self._backends)

    def log(self, rec: Mapping[str, Any], step: int) -> None:
        """One metrics.jsonl record: its numbers (nested ones flattened) as "<kind>/<field>" at `step`."""
        kind = str(rec.get("kind") or "train")
        metrics = _numbers({k: v for k, v in rec.items() if k not in ("kind", "step")}, f"{kind}/")
        self._send(kind, metrics, int(step), final=False)

    def summary(self, result: Mapping[str, Any]) -> None:
        """The result's final numbers (SUMMARY_FIELDS) as "final/<field>", at the run's last step."""
        picked = {k: result[k] for k in SUMMARY_FIELDS if k in result}
        if isinstance(picked.get("flops"), Mapping):
            picked["flops"] = {k: v for k, v in picked["flops"].items() if k in _FLOPS_FIELDS}
        step = result.get("steps")
        if not isinstance(step, int) or isinstance(step, bool):
            step = max((s for e in self._state.values() for s in e.get("logged", {}).values()), default=0)
        self._send("final", _numbers(picked, "final/"), step, final=True)

    def _send(self, kind: str, metrics: dict[str, float], step: int, final: bool) -> None:
        if not metrics or self._closed:
            return
        sent = False
        for name, backend in list(self._backends.items()):
            logged = self._state[name].setdefault("logged", {})
            if step <= logged.get(kind, -1) or step < max(logged.values(), default=-1):
                continue   # this tracker has it already (a resumed run re-logs the steps after its checkpoint)
            try:
                (backend.summary if final else backend.log)(metrics, step)
            except Exception as e:  # a tracker is logging only: it must not end a run
                _warn(f"{name}: logging failed at step {step} ({type(e).__name__}: {e}); "
                      f"{name} is left out for the rest of this attempt (metrics.jsonl has every record)")
                del self._backends[name]
                continue
            logged[kind] = step
            sent = True
        if sent:
            self._save()

    def close(self, failed: bool = False) -> None:
        """Finish every run (as failed when `failed`); a second call does nothing."""
        if self._closed:
            return
        self._closed = True
        for name, backend in self._backends.items():
            try:
                backend.close(failed)
            except Exception as e:  # noqa: BLE001 - closing the others still matters
                _warn(f"{name}: closing failed ({type(e).__name__}: {e})")
        self._save()

    def _save(self) -> None:
        if self._path is not None and self._state:
            atomic_write_json(self._path, self._state)

    def __enter__(self) -> "Trackers":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(failed=exc_type is not None)


def requested(cfg: CellConfig) -> tuple[str, ...]:
    """The trackers a run of `cfg` opens: $SUITE_TRACKERS when set ("wandb,tensorboard"; "none" for none),
    else train.trackers; unknown names fail with the valid ones."""
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return tuple(dict.fromkeys(cfg.train.trackers))
    if raw.lower() == "none":
        return ()
    names = tuple(dict.fromkeys(n.strip().lower() for n in raw.split(",") if n.strip()))
    for n in names:
        try:
            TRACKERS.get(n)
        except UnknownNameError as e:
            raise ConfigError(f"{ENV}={raw}: {e}") from None
    return names


def open_trackers(cfg: CellConfig, out_dir: str | os.PathLike, is_main: bool = True) -> Trackers:
    """Open (or reopen, on a resume) the run of each tracker `cfg` asks for, in `out_dir`, on the main process.

    Every process checks the names and that their packages are installed (without importing them), so a
    missing one fails on all of them at once, before anything is started; only the main process opens runs.
    """
    names = requested(cfg)
    if not names:
        return Trackers()
    source = ENV if os.environ.get(ENV, "").strip() else "train.trackers"
    for n in names:
        cls = TRACKERS.get(n)
        if importlib.util.find_spec(cls.module) is None:
            raise MissingPackage(f"{source}: {n} needs the {cls.package} package: pip install {cls.package} "
                                 f"(or pip install 'suite[trackers]' for every tracker)")
    if not is_main:
        return Trackers()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / STATE_FILE
    state = _read_state(path)
    sweep_meta = _read_json(out.parent / "sweep.json")
    sweep = None if sweep_meta is None else str(sweep_meta.get("name") or out.parent.name)
    ctx = Context(cfg=cfg, out=out, name=cfg.name or cfg.cell_id, sweep=sweep,
                  store=out.parent if sweep_meta is not None else out,
                  save=lambda: atomic_write_json(path, state))
    backends: dict[str, Tracker] = {}
    try:
        for n in names:
            entry = state.setdefault(n, {})
            backends[n] = TRACKERS.get(n)(ctx, entry)
            atomic_write_json(path, state)
    except BaseException:
        for b in backends.values():   # the ones opened already: closed as failed, not left running
            try:
                b.close(failed=True)
            except Exception:  # noqa: BLE001
                pass
        raise
    return Trackers(backends, state, path)


def _read_json(path: Path) -> dict | None:
    try:
        obj = json.loads(path.read_text())
    except (FileNotFoundError, NotADirectoryError, ValueError, UnicodeDecodeError):
        return None
    return obj if isinstance(obj, dict) else None


def _read_state(path: Path) -> dict:
    """trackers.json; a damaged one is moved aside (<name>.corrupt) with a warning, and new runs start."""
    if not path.exists():
        return {}
    state = _read_json(path)
    if state is None or not all(isinstance(v, dict) for v in state.values()):
        aside = path.with_name(path.name + ".corrupt")
        os.replace(path, aside)
        _warn(f"{path}: not a JSON object of trackers (damaged?); moved to {aside.name}, starting new tracker runs")
        return {}
    return state


def _flatten(d: Mapping[str, Any], prefix: str = "", keep: Callable[[Any], bool] = lambda v: True) -> dict:
    """{"a": {"b": 1}} → {"a.b": 1}: MLflow params."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping) and v:
            out.update(_flatten(v, f"{prefix}{k}.", keep))
        elif keep(v):
            out[f"{prefix}{k}"] = v
    return out


def _numbers(d: Mapping[str, Any], prefix: str) -> dict[str, float]:
    """The numbers of a record, nested mappings joined with "/"; None, booleans and text are left out."""
    out: dict[str, float] = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(_numbers(v, f"{prefix}{k}/"))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[f"{prefix}{k}"] = float(v)
    return out


def _warn(msg: str) -> None:
    print(f"suite: warning: trackers: {msg}", file=sys.stderr, flush=True)


__all__ = ["TRACKERS", "Tracker", "Trackers", "Context", "MissingPackage", "open_trackers", "requested",
           "STATE_FILE", "SUMMARY_FIELDS"]
