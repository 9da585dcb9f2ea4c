"""The sweep engine on this machine: inline and local executors, failures, resume, status, collect."""
import json

import pandas as pd
import yaml

from suite.cli import main
from suite.sweep import collect, open_sweep, status, submit


def grid(tmp_path, name="eng", extra_cells=None, **res):
    raw = {
        "name": name,
        "defaults": {"data": {"language": "synthetic-small", "seq_len": 16, "heldout_examples": 4},
                     "train": {"batch_size": 4, "checkpoint_interval": 2}},
        "resources": {"timeout_min": 5, "cpus_per_task": 1, "mem_gb": 2, **res},
        "cells": {"teacher": {"set": {"student": "tiny-0.1M", "train": {"tokens": 640}}},
                  "students": {"axes": {"method": ["supervised", "kd"]},
                               "set": {"student": "tiny-0.1M", "teacher": "@teacher", "train": {"tokens": 320}}},
                  **(extra_cells or {})},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_inline_runs_teacher_then_students_and_resubmit_is_a_noop(tmp_path):
    sw = open_sweep(grid(tmp_path), runs=tmp_path / "runs")
    out = submit(sw, executor="inline", progress=False)
    assert len(out["submitted"]) == 3
    st = status(sw)
    assert st["counts"] == {"pending": 0, "running": 0, "done": 3, "failed": 0, "corrupt": 0}
    again = submit(open_sweep(grid(tmp_path), runs=tmp_path / "runs"), executor="inline", progress=False)
    assert again["submitted"] == [] and again["skipped_done"] == 3
    kd = next(c for c in st["cells"] if c["method"] == "kd")
    res = json.loads((sw.root / kd["id"] / "result.json").read_text())
    assert res["L_T"] is not None and res["D_T"] == 640 and res["teacher"].startswith("cell:")


def test_a_failing_cell_is_recorded_and_the_others_finish(tmp_path):
    bad = {"broken": {"set": {"student": str(tmp_path / "no-such-model")}}}
    sw = open_sweep(grid(tmp_path, extra_cells=bad), runs=tmp_path / "runs")
    submit(sw, executor="inline", progress=False)
    st = status(sw)
    assert st["counts"]["done"] == 3 and st["counts"]["failed"] == 1
    broken = next(c for c in st["cells"] if c["group"] == "broken")
    err = json.loads((sw.root / broken["id"] / "error.json").read_text())
    assert err["type"] == "FileNotFoundError" and "Traceback" in err["traceback"] and err["attempt"] == 1
    # resume without --retry-failed leaves it; with it, only that cell runs again
    assert submit(sw, executor="inline", progress=False)["submitted"] == []
    again = submit(sw, executor="inline", retry_failed=True, progress=False)
    assert again["submitted"] == [broken["id"]]
    assert json.loads((sw.root / broken["id"] / "error.json").read_text())["attempt"] == 2


def test_students_of_a_failed_teacher_fail_without_running(tmp_path):
    raw = yaml.safe_load(grid(tmp_path).read_text())
    raw["cells"]["teacher"]["set"]["student"] = str(tmp_path / "missing")
    path = tmp_path / "g2.yaml"
    path.write_text(yaml.safe_dump(raw))
    sw = open_sweep(path, runs=tmp_path / "runs")
    submit(sw, executor="inline", progress=False)
    st = status(sw)
    kd = next(c for c in st["cells"] if c["method"] == "kd")
    assert kd["state"] == "failed" and "teacher" in kd["detail"]
    assert not (sw.root / kd["id"] / "metrics.jsonl").exists()


def test_local_executor_matches_inline_and_collect_writes_parquet(tmp_path):
    inline = open_sweep(grid(tmp_path, name="a"), runs=tmp_path / "runs")
    submit(inline, executor="inline", progress=False)
    local = open_sweep(grid(tmp_path, name="a"), runs=tmp_path / "runs-local")
    submit(local, executor="local", progress=False)
    assert status(local)["counts"]["done"] == 3
    for c in local.grid.cells:  # same cell ids, same numbers, whichever executor ran them
        a = json.loads((inline.root / c.id / "result.json").read_text())["loss"]
        b = json.loads((local.root / c.id / "result.json").read_text())["loss"]
        assert a == b
    df = pd.read_parquet(collect(local))
    assert len(df) == 3
    for col in ["cell_id", "name", "method", "N_S", "D_S", "loss", "L_T", "flops.total", "config.train.tokens",
                "versions.torch", "group"]:
        assert col in df.columns, col
    assert df.loc[df.method == "kd", "L_T"].notna().all()


def test_cli_dry_run_json_and_status_json(tmp_path, capsys):
    path = grid(tmp_path)
    assert main(["sweep", "submit", str(path), "--dry-run", "--json", "--runs", str(tmp_path / "r")]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["sweep"] == "eng" and len(plan["cells"]) == 3
    assert {"id", "name", "method"} <= set(plan["cells"][0])
    assert not (tmp_path / "r").exists()  # a dry run writes nothing
    assert main(["sweep", "submit", str(path), "--executor", "inline", "--runs", str(tmp_path / "r"),
                 "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["sweep", "status", str(tmp_path / "r" / "eng"), "--json"]) == 0
    st = json.loads(capsys.readouterr().out)
    assert {c["state"] for c in st["cells"]} == {"done"} and all("id" in c for c in st["cells"])


def test_cli_errors_name_the_grid_file(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("cells:\n  a:\n    axes:\n      studnet: [tiny-0.1M]\n")
    assert main(["sweep", "submit", str(bad), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "did you mean 'student'" in err


def test_local_executor_pins_one_gpu_per_cell_and_caps_concurrency(tmp_path, monkeypatch):
    """With 2 (pretend) GPUs and 3 one-GPU cells: each cell sees exactly one GPU, never more than 2 at once."""
    import torch

    from suite.bench.sweep import NoopCell

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    path = tmp_path / "gpu.yaml"
    path.write_text(yaml.safe_dump({"name": "gpu", "resources": {"gpus_per_node": 1, "timeout_min": 2},
                                    "cells": {"c": {"axes": {"train.seed": [0, 1, 2]}}}}))
    sw = open_sweep(path, runs=tmp_path / "runs")
    submit(sw, executor="local", progress=False, job_factory=NoopCell)
    results = sorted((json.loads((sw.root / c.id / "result.json").read_text()) for c in sw.grid.cells),
                     key=lambda r: r["start"])
    seen = [r["cuda_visible_devices"] for r in results]
    assert set(seen) == {"0", "1"}
    assert seen[0] != seen[1]  # the two cells started together got different GPUs
    jobs = [json.loads((sw.root / c.id / "job.json").read_text()) for c in sw.grid.cells]
    assert all(len(j["gpus"]) == 1 for j in jobs)


def test_a_diverging_cell_is_recorded_as_failed(tmp_path):
    """NaN/inf loss stops the cell with FloatingPointError in error.json; the rest of the grid is unaffected."""
    raw = yaml.safe_load(grid(tmp_path).read_text())
    raw["cells"] = {"diverge": {"set": {"student": "tiny-0.1M", "train": {"tokens": 640},
                                        "optim": {"lr": 1.0e+30, "grad_clip": 0.0}}}}
    path = tmp_path / "nan.yaml"
    path.write_text(yaml.safe_dump(raw))
    sw = open_sweep(path, runs=tmp_path / "runs")
    submit(sw, executor="inline", progress=False)
    err = json.loads((sw.root / sw.grid.cells[0].id / "error.json").read_text())
    assert err["type"] == "FloatingPointError" and "loss is" in err["message"]
