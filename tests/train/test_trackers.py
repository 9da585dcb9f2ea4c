"""Experiment trackers: opt-in, out of the cell id, and a resumed cell continues ONE tracker run, no step twice.

    python -m pytest tests/train/test_trackers.py -p no:cacheprovider -q      # ~15 s on 2 CPU cores

Each backend test runs the real package offline (TensorBoard event files read back with TensorBoard's own
EventAccumulator; W&B in offline mode, its .wandb log read record by record; MLflow with a file store read back
through MlflowClient): a first attempt logs up to step 8 and dies, the second resumes from a checkpoint at
step 6, re-logs steps 7-8 with other values (as a real resumed loop does), and goes on to step 12.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from suite.config import TRACKER_NAMES, ConfigError, config_from_dict
from suite.train.trackers import STATE_FILE, TRACKERS, MissingPackage, Trackers, open_trackers

FIRST = list(range(1, 9))          # steps the first attempt logs before it is killed
CKPT = 6                           # the checkpoint the second attempt resumes from
LAST = 12


def cell(trackers=(), name="c"):
    return config_from_dict({"name": name, "student": "tiny-0.1M", "train": {"tokens": 4096, "batch_size": 8,
                                                                             "trackers": list(trackers)}}, "test")


def records(steps, offset=0.0):
    """metrics.jsonl records: a train line every step, an eval line every 4th (values tell the attempt apart)."""
    for s in steps:
        yield {"kind": "train", "step": s, "tokens": s * 256, "loss": 1.0 / s + offset, "ce": None, "lr": 3e-3}
        if s % 4 == 0:
            yield {"kind": "eval", "step": s, "tokens": s * 256, "heldout_loss": 2.0 / s + offset,
                   "heldout_stderr": 0.01}


def two_attempts(cfg, out: Path) -> None:
    """Attempt 1 logs steps 1-8 and dies; attempt 2 resumes at CKPT, re-logs 7-8 (+100), goes on to LAST."""
    tr = open_trackers(cfg, out, True)
    for rec in records(FIRST):
        tr.log(rec, rec["step"])
    tr.close(failed=True)          # a preempted job (a SIGKILL would close nothing: the next open copes too)
    with open_trackers(cfg, out, True) as tr:
        for rec in records(range(CKPT + 1, LAST + 1), offset=100.0):
            tr.log(rec, rec["step"])
        tr.summary({"loss": 0.5, "loss_stderr": 0.01, "L_T": None, "N_S": 1000, "D_S": 4096, "steps": LAST,
                    "flops": {"total": 1e9, "student_train": 1e9}, "wall_clock_s": 3.0, "method": "supervised",
                    "benchmarks": {"heldout": {"loss": 0.5, "n": 16}, "mmlu": {"overall": 0.25, "judge": "ll"}}})


def expected(key: str) -> dict[int, float]:
    """step -> value each tracker must hold: steps 1-8 from attempt 1 (sent once), 9-12 from attempt 2."""
    kind, field = key.split("/")
    first = {r["step"]: r[field] for r in records(FIRST) if r["kind"] == kind}
    later = {r["step"]: r[field] for r in records(range(9, LAST + 1), 100.0) if r["kind"] == kind}
    return {**first, **later}


def check_series(got: list[tuple[int, float]], key: str) -> None:
    """Every step once, in order, with the value of the attempt that sent it first (float32 in TensorBoard)."""
    want = sorted(expected(key).items())
    assert [s for s, _ in got] == [s for s, _ in want]
    assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-6)


def check_state(out: Path, name: str) -> dict:
    state = json.loads((out / STATE_FILE).read_text())
    assert state[name]["logged"] == {"train": LAST, "eval": LAST, "final": LAST}
    return state[name]


# ----------------------------------------------------------------------------- config and registry


def test_tracker_names_are_the_registry():
    assert tuple(TRACKERS.names()) == TRACKER_NAMES


def test_unknown_tracker_fails_with_did_you_mean(monkeypatch, tmp_path):
    with pytest.raises(ConfigError, match=r"x\.yaml: train\.trackers\[1\]: 'wandbb' is not one of mlflow, "
                                          r"tensorboard, wandb \(did you mean 'wandb'\?\)"):
        config_from_dict({"train": {"trackers": ["tensorboard", "wandbb"]}}, "x.yaml")
    monkeypatch.setenv("SUITE_TRACKERS", "tensorbord")
    with pytest.raises(ConfigError, match=r"SUITE_TRACKERS=tensorbord: unknown tracker 'tensorbord' \(did you "
                                          r"mean 'tensorboard'\?\); valid: mlflow, tensorboard, wandb"):
        open_trackers(cell(), tmp_path, True)


def test_trackers_never_enter_the_cell_id():
    # bd5dd7abaeab: the default cell's id since before trackers existed (tests/continual/test_sequence.py)
    assert config_from_dict({}).cell_id == "bd5dd7abaeab"
    assert config_from_dict({"train": {"trackers": ["wandb", "mlflow"]}}).cell_id == "bd5dd7abaeab"
    assert cell(["tensorboard"]).cell_id == cell().cell_id
    assert cell(["tensorboard"]).to_dict()["train"]["trackers"] == ("tensorboard",)


def test_no_trackers_no_files_no_imports(tmp_path):
    """Without trackers (or off the main process) nothing is written and no tracker package is imported."""
    code = f"""
import sys
from pathlib import Path
from suite.config import config_from_dict
from suite.train.trackers import open_trackers
plain = config_from_dict({{"student": "tiny-0.1M"}})
asked = config_from_dict({{"student": "tiny-0.1M", "train": {{"trackers": ["tensorboard", "wandb", "mlflow"]}}}})
for cfg, out, main in ((plain, "a", True), (asked, "b", False)):
    tr = open_trackers(cfg, Path({str(tmp_path)!r}) / out, main)
    assert not tr and tr.names == ()
    tr.log({{"kind": "train", "step": 1, "loss": 1.0}}, 1)
    tr.summary({{"loss": 1.0}})
    tr.close()
print(sorted(m for m in sys.modules if m.split(".")[0] in ("wandb", "mlflow", "tensorboard", "tensorboardX")
             or m.startswith("torch.utils.tensorboard")))
"""
    env = {k: v for k, v in os.environ.items() if k != "SUITE_TRACKERS"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    assert list(tmp_path.iterdir()) == []


def test_missing_package_fails_at_open_naming_pip(monkeypatch, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    cfg = cell(["wandb"])   # the config itself is valid: validation imports and checks no package
    for main in (True, False):   # every process fails, not only the one that would open the run
        with pytest.raises(MissingPackage, match=r"^train\.trackers: wandb needs the wandb package: "
                                                 r"pip install wandb") as e:
            open_trackers(cfg, tmp_path, main)
        assert isinstance(e.value, ImportError)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    monkeypatch.setenv("SUITE_TRACKERS", "mlflow")
    with pytest.raises(MissingPackage, match=r"^SUITE_TRACKERS: mlflow needs the mlflow-skinny package"):
        open_trackers(cell(), tmp_path, True)
    assert list(tmp_path.iterdir()) == []


def test_env_overrides_config(monkeypatch):
    from suite.train.trackers import requested

    monkeypatch.setenv("SUITE_TRACKERS", " WandB, tensorboard,wandb ")
    assert requested(cell(["mlflow"])) == ("wandb", "tensorboard")
    monkeypatch.setenv("SUITE_TRACKERS", "none")
    assert requested(cell(["mlflow"])) == ()
    monkeypatch.setenv("SUITE_TRACKERS", "")
    assert requested(cell(["mlflow", "mlflow"])) == ("mlflow",)


# ----------------------------------------------------------------------------- the step rule, with a fake backend


class Fake:
    def __init__(self, fail_at=None):
        self.got, self.fail_at, self.closed = [], fail_at, None

    def log(self, metrics, step):
        if step == self.fail_at:
            raise ConnectionError("server gone")
        self.got.append((step, dict(metrics)))

    def summary(self, metrics, step):
        self.got.append(("final", step, dict(metrics)))

    def close(self, failed=False):
        self.closed = failed


def test_step_rule_sends_each_record_once_and_persists(tmp_path):
    path = tmp_path / STATE_FILE
    a = Fake()
    tr = Trackers({"fake": a}, {"fake": {}}, path)
    for rec in records([2, 4, 6]):
        tr.log(rec, rec["step"])
    assert json.loads(path.read_text())["fake"]["logged"] == {"train": 6, "eval": 4}   # saved as it goes
    assert a.got[0] == (2, {"train/tokens": 512.0, "train/loss": 0.5, "train/lr": 3e-3})   # None left out
    # a new attempt (state read back from disk) resumed from step 2: re-logs 4 and 6, then goes on
    b = Fake()
    tr = Trackers({"fake": b}, json.loads(path.read_text()), path)
    for rec in records([4, 6, 8]):
        tr.log(rec, rec["step"])
    assert [g[0] for g in b.got] == [8, 8]           # train 8, eval 8: nothing before
    # an eval record of a step below the last train step the tracker saw is dropped too (W&B would refuse it)
    tr.log({"kind": "eval", "step": 7, "heldout_loss": 1.0}, 7)
    assert len(b.got) == 2
    tr.summary({"loss": 0.5, "steps": 8, "benchmarks": {"mmlu": {"overall": 0.3, "groups": {"stem": 0.2}}},
                "flops": {"total": 10.0, "teacher_logits": 0.0}, "method": "kd", "N_S": True})
    assert b.got[-1] == ("final", 8, {"final/loss": 0.5, "final/benchmarks/mmlu/overall": 0.3,
                                      "final/benchmarks/mmlu/groups/stem": 0.2, "final/flops/total": 10.0})
    tr.summary({"loss": 0.5, "steps": 8})           # a rerun of the end: not sent twice
    assert len(b.got) == 3
    tr.close()
    assert b.closed is False


def test_a_failing_tracker_is_dropped_not_fatal(tmp_path, capsys):
    bad, good = Fake(fail_at=4), Fake()
    tr = Trackers({"bad": bad, "good": good}, {"bad": {}, "good": {}}, tmp_path / STATE_FILE)
    for rec in records([2, 4, 6]):
        tr.log(rec, rec["step"])
    assert [g[0] for g in bad.got] == [2] and [g[0] for g in good.got] == [2, 4, 4, 6]
    assert "bad: logging failed at step 4 (ConnectionError: server gone)" in capsys.readouterr().err
    assert json.loads((tmp_path / STATE_FILE).read_text())["bad"]["logged"] == {"train": 2}
    tr.close()
    assert bad.closed is None and good.closed is False


def test_damaged_state_is_moved_aside(tmp_path, capsys):
    pytest.importorskip("tensorboard")
    (tmp_path / STATE_FILE).write_text('{"tensorboard": {"logdir": "tensorb')
    open_trackers(cell(["tensorboard"]), tmp_path, True).close()
    assert (tmp_path / (STATE_FILE + ".corrupt")).exists()
    assert json.loads((tmp_path / STATE_FILE).read_text()) == {"tensorboard": {"logdir": "tensorboard"}}
    assert "moved to trackers.json.corrupt" in capsys.readouterr().err


# ----------------------------------------------------------------------------- the real backends, offline


@pytest.fixture
def sweep_cell(tmp_path):
    """A cell directory inside a sweep directory (sweep.json names the sweep: the group / experiment)."""
    (tmp_path / "sweep.json").write_text(json.dumps({"name": "mysweep", "cells": []}))
    return tmp_path / "0123456789ab"


def test_tensorboard_resume_appends_to_one_logdir(sweep_cell):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    two_attempts(cell(["tensorboard"]), sweep_cell)
    assert check_state(sweep_cell, "tensorboard")["logdir"] == "tensorboard"
    logdir = sweep_cell / "tensorboard"
    assert len(list(logdir.glob("events.out.tfevents.*"))) == 2      # one file per attempt, one run
    acc = EventAccumulator(str(logdir))
    acc.Reload()
    for key in ("train/loss", "eval/heldout_loss"):
        got = [(e.step, e.value) for e in acc.Scalars(key)]
        check_series(got, key)
    assert [(e.step, e.value) for e in acc.Scalars("final/benchmarks/mmlu/overall")] == [(LAST, 0.25)]
    assert "train/ce" not in acc.Tags()["scalars"]                   # None is not a number


def wandb_records(path: Path):
    """The protobuf records of a .wandb file: W&B's LevelDB-style log (7-byte header ':W&B' + magic + version;
    32 KiB blocks of chunks: crc32 (4 bytes), length (2, little-endian), type (1: full, 2-4: first/middle/last))."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, block = path.read_bytes(), 32768
    assert data[:4] == b":W&B"
    pos, buf = 7, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:             # a block's tail too short for a chunk header is padding
            pos += left
            continue
        length, kind = int.from_bytes(data[pos + 4:pos + 6], "little"), data[pos + 6]
        payload, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 0:            # zero padding at the end of a block
            pos += block - pos % block if pos % block else 0
            continue
        buf = payload if kind in (1, 2) else buf + payload
        if kind in (1, 4):
            rec = pb.Record()
            rec.ParseFromString(buf)
            yield rec


def test_wandb_offline_resume_continues_one_run(sweep_cell, monkeypatch, tmp_path_factory):
    pytest.importorskip("wandb")
    home = tmp_path_factory.mktemp("wandb_home")
    for k in ("WANDB_DIR", "WANDB_PROJECT", "WANDB_ENTITY", "WANDB_RUN_ID", "WANDB_RESUME", "SUITE_TRACKERS"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")          # no network, no account
    monkeypatch.setenv("WANDB_SILENT", "true")
    for k in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(k, str(home / k.lower()))     # keep ~/.config/wandb and ~/.cache untouched

    two_attempts(cell(["wandb"], name="kd-1M"), sweep_cell)
    entry = check_state(sweep_cell, "wandb")
    assert entry["project"] == "suite" and entry["group"] == "mysweep" and len(entry["id"]) == 8
    runs = sorted((sweep_cell / "wandb").glob(f"offline-run-*-{entry['id']}"))
    assert len(runs) == 2                                # one per attempt, the same run id (`wandb sync` joins them)
    history: dict[str, list[tuple[int, float]]] = {}
    summary, run_ids, groups = {}, set(), set()
    for d in runs:
        for rec in wandb_records(d / f"run-{entry['id']}.wandb"):
            kind = rec.WhichOneof("record_type")
            if kind == "run":
                run_ids.add(rec.run.run_id)
                groups.add(rec.run.run_group)
                assert rec.run.display_name == "kd-1M" and rec.run.project == "suite"
            elif kind == "history":
                step = rec.history.step.num
                for item in rec.history.item:
                    key = item.key or "/".join(item.nested_key)
                    if not key.startswith("_"):
                        history.setdefault(key, []).append((step, json.loads(item.value_json)))
            elif kind == "summary":
                for item in rec.summary.update:
                    summary[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    assert run_ids == {entry["id"]} and groups == {"mysweep"}
    for key in ("train/loss", "eval/heldout_loss"):
        check_series(history[key], key)
    assert summary["final/loss"] == 0.5 and summary["final/flops/total"] == 1e9


def test_mlflow_resume_continues_one_run(sweep_cell, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    for k in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_ALLOW_FILE_STORE", "SUITE_TRACKERS"):
        monkeypatch.delenv(k, raising=False)             # also undoes the MLFLOW_ALLOW_FILE_STORE we set
    cfg = cell(["mlflow"], name="kd-1M")
    two_attempts(cfg, sweep_cell)
    entry = check_state(sweep_cell, "mlflow")
    store = sweep_cell.parent / "mlruns"
    assert entry["tracking_uri"] == store.resolve().as_uri() and entry["experiment"] == "mysweep"
    client = MlflowClient(tracking_uri=entry["tracking_uri"])
    exp = client.get_experiment_by_name("mysweep")
    runs = client.search_runs([exp.experiment_id])
    assert [r.info.run_id for r in runs] == [entry["run_id"]]   # ONE run for both attempts
    run = runs[0]
    assert run.info.status == "FINISHED" and run.info.run_name == "kd-1M"
    assert run.data.tags["suite.cell_id"] == cfg.cell_id
    assert run.data.params["train.tokens"] == "4096" and run.data.params["train.trackers"] == '["mlflow"]'
    for key in ("train/loss", "eval/heldout_loss"):
        got = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, key))
        check_series(got, key)
    assert run.data.metrics["final/benchmarks/heldout/loss"] == 0.5


def test_the_loop_logs_to_tensorboard_once_per_step_across_a_resume(tmp_path):
    """The training loop itself: a cell interrupted at step 5 and resumed sends every train and eval line of
    metrics.jsonl to TensorBoard exactly once, with metrics.jsonl's values, and the final numbers."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from suite.train import Interrupted, train

    cfg = config_from_dict({
        "name": "tb", "student": "tiny-0.007M", "method": "supervised",
        "data": {"kind": "synthetic", "language": "synthetic-small", "seq_len": 16, "heldout_examples": 4},
        "train": {"tokens": 640, "batch_size": 4, "eval_interval": 3, "checkpoint_interval": 2,
                  "log_interval": 2, "trackers": ["tensorboard"]}}, "test")
    with pytest.raises(Interrupted):
        train(cfg, tmp_path, progress=False, should_stop=lambda step: step == 5)
    result = train(cfg, tmp_path, progress=False)
    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    lines = [json.loads(ln) for ln in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    for kind, key in (("train", "loss"), ("eval", "heldout_loss")):
        want = [(r["step"], r[key]) for r in lines if r["kind"] == kind]
        got = [(e.step, e.value) for e in acc.Scalars(f"{kind}/{key}")]
        assert [s for s, _ in got] == [s for s, _ in want]
        assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-6)
    assert acc.Scalars("final/loss")[0].value == pytest.approx(result["loss"], rel=1e-6)
