"""Resumed runs when the disk lets them down: damaged checkpoints, a torn metrics.jsonl, the log window and the
wall clock across attempts. Tiny runs of 12 steps (checkpoints every 3, log lines every 4) on the CPU."""
import json
import re

import pytest
import torch
from safetensors.torch import load_file

from suite.config import config_from_dict
from suite.train import Interrupted, launch_local, train
from suite.train.checkpoint import (CheckpointError, latest_checkpoint, list_checkpoints, load_checkpoint,
                                    resume_checkpoint, verify_checkpoint)

# 8 sequences × 32 tokens = 256 tokens/step; 2,900 tokens = 11 full steps + a last step of 84 tokens
BUDGET = 2900


def tiny(**train_over):
    return config_from_dict({
        "name": "r", "student": "tiny-0.1M", "method": "supervised",
        "data": {"kind": "synthetic", "language": "synthetic-small", "seq_len": 32, "heldout_examples": 16},
        "optim": {"lr": 3e-3, "warmup": 2},
        "train": {"tokens": BUDGET, "batch_size": 8, "eval_interval": 4, "checkpoint_interval": 3,
                  "log_interval": 4, "eval_batch_size": 8, **train_over},
    }, "test")


def weights(run_dir):
    return load_file(str(run_dir / "model" / "model.safetensors"))


def records(run_dir, kind="train"):
    return [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines()
            if json.loads(ln)["kind"] == kind]


def interrupted(out, at):
    with pytest.raises(Interrupted):
        train(tiny(), out, progress=False, should_stop=lambda step: step == at)
    return out / "checkpoints"


def assert_same_weights(ref, out):
    a, b = weights(ref), weights(out)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    out = tmp_path_factory.mktemp("baseline")
    return train(tiny(), out, progress=False), out


# ---- 1. manifest, verification, fall back to an older checkpoint

def test_checkpoint_has_a_manifest_with_sizes_and_hashes(tmp_path):
    ckpts = interrupted(tmp_path, 7)
    assert [p.name for p in list_checkpoints(ckpts)] == ["step_00000006", "step_00000007"]  # keep 2
    man = json.loads((ckpts / "step_00000007" / "manifest.json").read_text())
    assert set(man["files"]) == {"model.safetensors", "trainer.pt", "state.json"}
    for name, e in man["files"].items():
        assert e["bytes"] == (ckpts / "step_00000007" / name).stat().st_size and len(e["sha256"]) == 64
    assert verify_checkpoint(ckpts / "step_00000007") is None


def test_truncated_newest_checkpoint_falls_back_to_the_older_one(baseline, tmp_path, capsys):
    _, ref = baseline
    ckpts = interrupted(tmp_path, 7)
    f = ckpts / "step_00000007" / "model.safetensors"
    size = f.stat().st_size
    f.write_bytes(f.read_bytes()[:1000])
    assert verify_checkpoint(ckpts / "step_00000007") == f"{f}: 1000 bytes, manifest says {size} (truncated?)"
    assert latest_checkpoint(ckpts).name == "step_00000006"  # sizes alone rule it out
    capsys.readouterr()
    result = train(tiny(), tmp_path, progress=False)
    err = capsys.readouterr().err
    assert f"damaged checkpoint: {f}: 1000 bytes, manifest says {size} (truncated?)" in err
    assert "moved it to step_00000007.damaged, resuming from step_00000006 instead" in err
    assert result["resumed_from_step"] == 6
    assert_same_weights(ref, tmp_path)  # resumed from step 6, bit-exact
    # kept for inspection, and neither retried nor pruned by keep=2 while the run went on to step 12
    assert (ckpts / "step_00000007.damaged" / "model.safetensors").stat().st_size == 1000
    assert [p.name for p in list_checkpoints(ckpts)] == ["step_00000009", "step_00000012"]
    steps = [r["step"] for r in records(tmp_path)]
    assert steps == [4, 8, 12]


def test_same_size_corruption_is_caught_by_the_hash(baseline, tmp_path, capsys):
    _, ref = baseline
    ckpts = interrupted(tmp_path, 7)
    f = ckpts / "step_00000007" / "trainer.pt"
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF
    f.write_bytes(bytes(data))
    assert verify_checkpoint(ckpts / "step_00000007", hashes=False) is None
    assert "trainer.pt: sha256" in verify_checkpoint(ckpts / "step_00000007")
    train(tiny(), tmp_path, progress=False)
    err = capsys.readouterr().err
    assert f"{f}: sha256" in err and "(corrupted)" in err and "resuming from step_00000006 instead" in err
    assert_same_weights(ref, tmp_path)


def test_old_checkpoint_without_manifest_resumes_and_a_load_error_falls_back(baseline, tmp_path, capsys):
    """Checkpoints written before manifests count as complete; one that cannot be loaded is damaged too."""
    _, ref = baseline
    ckpts = interrupted(tmp_path, 7)
    for p in list_checkpoints(ckpts):
        (p / "manifest.json").unlink()
        for k in ("log_window", "wall_clock_s"):  # nor did their state.json have these
            st = json.loads((p / "state.json").read_text())
            st.pop(k)
            (p / "state.json").write_text(json.dumps(st))
    assert [p.name for p in list_checkpoints(ckpts)] == ["step_00000006", "step_00000007"]
    assert verify_checkpoint(ckpts / "step_00000007") is None
    f = ckpts / "step_00000007" / "model.safetensors"
    f.write_bytes(b"\x00" * 64)  # a safetensors header error on load
    capsys.readouterr()
    result = train(tiny(), tmp_path, progress=False)
    err = capsys.readouterr().err
    assert f"damaged checkpoint: {f}: cannot be read" in err and "resuming from step_00000006 instead" in err
    assert result["resumed_from_step"] == 6
    assert_same_weights(ref, tmp_path)


def test_no_usable_checkpoint_starts_from_scratch(baseline, tmp_path, capsys):
    _, ref = baseline
    ckpts = interrupted(tmp_path, 7)
    for p in list_checkpoints(ckpts):
        (p / "trainer.pt").write_bytes(b"")
    capsys.readouterr()
    result = train(tiny(), tmp_path, progress=False)
    err = capsys.readouterr().err
    assert err.count("damaged checkpoint:") == 2
    assert "trainer.pt: 0 bytes, manifest says" in err and "training starts from scratch" in err
    assert result["resumed_from_step"] is None
    assert_same_weights(ref, tmp_path)  # nothing of the damaged checkpoints leaked into the fresh start
    assert [r["step"] for r in records(tmp_path)] == [4, 8, 12]  # metrics.jsonl reset as a fresh start does
    assert sorted(p.name for p in ckpts.glob("*.damaged")) == ["step_00000006.damaged", "step_00000007.damaged"]


def test_load_checkpoint_errors_name_the_file(tmp_path):
    ckpts = interrupted(tmp_path, 3)
    f = ckpts / "step_00000003" / "model.safetensors"
    f.write_bytes(b"\x00" * f.stat().st_size)  # same size, hash differs
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.AdamW(model.parameters())
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    before = model.weight.detach().clone()
    with pytest.raises(CheckpointError, match=re.escape(f"{f}: sha256") + r".*\(corrupted\)"):
        load_checkpoint(ckpts / "step_00000003", model, opt, sched)
    (ckpts / "step_00000003" / "manifest.json").unlink()  # unverified: the reader names the file
    with pytest.raises(CheckpointError, match=re.escape(f"{f}: cannot be read")):
        load_checkpoint(ckpts / "step_00000003", model, opt, sched)
    assert torch.equal(model.weight, before)  # nothing applied


def test_resume_checkpoint_keeps_damaged_names_apart(tmp_path):
    ckpts = interrupted(tmp_path, 3)
    (ckpts / "step_00000003.damaged").mkdir()
    (ckpts / "step_00000003" / "state.json").write_text("{")
    assert resume_checkpoint(ckpts) is None
    assert sorted(p.name for p in ckpts.iterdir()) == ["step_00000003.damaged", "step_00000003.damaged.2"]


# ---- 2. a torn metrics.jsonl

def test_torn_metrics_lines_are_dropped_with_a_warning(baseline, tmp_path, capsys):
    _, ref = baseline
    interrupted(tmp_path, 7)
    m = tmp_path / "metrics.jsonl"
    lines = m.read_text().splitlines()
    lines.insert(1, '{"kind": "eval", "st')          # a damaged line in the middle: line 2
    m.write_text("\n".join(lines) + '\n{"kind": "train", "step": 8, "lo')  # a kill mid-write: the last line
    n = len(lines) + 1
    capsys.readouterr()
    train(tiny(), tmp_path, progress=False)
    err = capsys.readouterr().err
    assert f"{m}: lines 2, {n} not a JSON record" in err and err.count("metrics.jsonl") == 1
    assert [r["step"] for r in records(tmp_path)] == [4, 8, 12]
    ref_recs = [json.loads(x) for x in (ref / "metrics.jsonl").read_text().splitlines()]
    got = [json.loads(x) for x in m.read_text().splitlines()]
    assert [(r["kind"], r["step"]) for r in got] == [(r["kind"], r["step"]) for r in ref_recs]


# ---- 3. the log window across a resume; 4. the wall clock over attempts

def _window_fields(rec):
    return {k: rec[k] for k in ("step", "tokens", "loss", "ce", "lr", "grad_norm")}


def test_first_log_line_after_resume_averages_the_whole_interval(baseline, tmp_path):
    _, ref = baseline
    ckpts = interrupted(tmp_path, 5)  # log lines at 4, 8: the checkpoint at 5 holds step 5 of the 5..8 window
    assert json.loads((ckpts / "step_00000005" / "state.json").read_text())["log_window"]["steps"] == 1
    train(tiny(), tmp_path, progress=False)
    got, want = records(tmp_path), records(ref)
    assert [r["step"] for r in got] == [4, 8, 12]
    for g, w in zip(got, want):
        assert _window_fields(g) == pytest.approx(_window_fields(w), rel=1e-12, abs=0)


def test_log_window_survives_a_resume_on_two_processes(baseline, tmp_path):
    """Saved summed over one process, restored into two: the line at step 8 is still the 5..8 average."""
    _, ref = baseline
    interrupted(tmp_path, 5)
    launch_local(tiny(), tmp_path, nprocs=2)
    got, want = records(tmp_path), records(ref)
    assert [r["step"] for r in got] == [4, 8, 12]
    for g, w in zip(got, want):
        assert _window_fields(g) == pytest.approx(_window_fields(w), rel=1e-4)
    a, b = weights(ref), weights(tmp_path)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)


def test_wall_clock_adds_up_over_attempts(baseline, tmp_path):
    import time

    base, _ = baseline
    assert base["resumed_from_step"] is None and base["wall_clock_s"] == base["wall_clock_s_this_attempt"]

    def slow_stop(step):  # 0.3 s a step for 5 steps: at least 1.5 s of the first attempt is in its checkpoint
        time.sleep(0.3)
        return step == 5

    with pytest.raises(Interrupted):
        train(tiny(), tmp_path, progress=False, should_stop=slow_stop)
    first = json.loads((tmp_path / "checkpoints" / "step_00000005" / "state.json").read_text())["wall_clock_s"]
    assert first >= 1.5
    result = train(tiny(), tmp_path, progress=False)
    assert result["resumed_from_step"] == 5
    assert result["wall_clock_s"] == pytest.approx(first + result["wall_clock_s_this_attempt"])
    assert json.loads((tmp_path / "result.json").read_text())["wall_clock_s"] == result["wall_clock_s"]
