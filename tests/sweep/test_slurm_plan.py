"""`suite sweep submit GRID --executor slurm --dry-run`: the job arrays, submitit parameters and #SBATCH lines a
grid would submit, with nothing submitted or written (no Slurm needed)."""
import json

import yaml

from suite.cli import main


def test_dry_run_prints_each_arrays_sbatch_lines_and_writes_nothing(tmp_path, capsys):
    grid = {"name": "plan",
            "defaults": {"data": {"language": "synthetic-small", "seq_len": 16}, "train": {"batch_size": 4}},
            "resources": {"timeout_min": 90, "cpus_per_task": 8, "mem_gb": 64, "partition": "gpu",
                          "account": "lab", "qos": "high", "gpus_per_node": 8,
                          "sbatch": {"exclusive": True, "comment": "kd study"}},
            "cells": {
                "teacher": {"set": {"student": "tiny-0.1M", "train": {"tokens": 1280}},
                            "resources": {"nodes": 2, "tasks_per_node": 8}},
                "students": {"axes": {"train.tokens": [320, 640]},
                             "set": {"student": "tiny-0.1M", "method": "kd", "teacher": "@teacher"}}}}
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(grid))
    assert main(["sweep", "submit", str(path), "--runs", str(tmp_path / "runs"), "--executor", "slurm",
                 "--dry-run", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert not (tmp_path / "runs").exists()
    teacher, students = plan["slurm"]
    assert teacher["cells"] == ["supervised-S0.1M-D1.28k-s0"] and teacher["after_array"] is None
    assert len(students["cells"]) == 2 and students["after_array"] == 0
    t = set(teacher["sbatch"])
    for line in ("#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=8", "#SBATCH --gpus-per-node=8",
                 "#SBATCH --partition=gpu", "#SBATCH --account=lab", "#SBATCH --qos=high",
                 "#SBATCH --cpus-per-task=8", "#SBATCH --mem=64GB", "#SBATCH --time=90", "#SBATCH --requeue",
                 "#SBATCH --exclusive", "#SBATCH --comment='kd study'", "#SBATCH --signal=USR2@60"):
        assert line in t, (line, sorted(t))
    assert "#SBATCH --nodes=1" in students["sbatch"] and any(x.startswith("#SBATCH --array=0-1")
                                                            for x in students["sbatch"])
    assert students["parameters"]["dependency"] == "afterok:<array 0>"
    # the text form names the arrays and prints the same lines
    assert main(["sweep", "submit", str(path), "--runs", str(tmp_path / "runs"), "--executor", "slurm",
                 "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "# array 1: 2 cell(s), after array 0 succeeds" in text and "#SBATCH --requeue" in text


def test_dry_run_plans_without_a_slurm_client(tmp_path, capsys, monkeypatch):
    """The README offers `--executor slurm --dry-run` to check a plan before queueing: it must not need `srun`
    on this machine (submitit's executor refuses to start without it; the plan bypasses only that check)."""
    import shutil

    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda cmd, *a, **k: None if cmd in ("srun", "sbatch", "squeue")
                        else real_which(cmd, *a, **k))
    grid = {"name": "laptop", "defaults": {"data": {"language": "synthetic-small", "seq_len": 16},
                                           "train": {"batch_size": 4, "tokens": 320}},
            "resources": {"timeout_min": 30, "gpus_per_node": 1},
            "cells": {"a": {"set": {"student": "tiny-0.1M"}}}}
    path = tmp_path / "laptop.yaml"
    path.write_text(yaml.safe_dump(grid))
    assert main(["sweep", "submit", str(path), "--runs", str(tmp_path / "runs"), "--executor", "slurm",
                 "--dry-run", "--json"]) == 0
    (array,) = json.loads(capsys.readouterr().out)["slurm"]
    assert "#SBATCH --gpus-per-node=1" in array["sbatch"] and not (tmp_path / "runs").exists()
    # the real submission still needs the cluster: the bypass does not outlive the plan
    from submitit.slurm.slurm import SlurmExecutor

    assert SlurmExecutor.affinity() == -1
