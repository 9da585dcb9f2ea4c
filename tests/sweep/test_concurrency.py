"""Several submitters of one sweep at the same instant: every cell trains exactly once and the grid's
`max_concurrent` holds across the processes (the sweep's flock covers "is it live?" through "job.json")."""
from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

# each process imports everything first, then waits for the same wall-clock instant before it submits
_AT_ONCE = ("import sys, time\n"
            "from suite.cli import main\n"
            "import suite.sweep.api, suite.sweep.executors, suite.train  # noqa: F401 (imports before the start line)\n"
            "time.sleep(max(0.0, float(sys.argv[1]) - time.time()))\n"
            "sys.exit(main(sys.argv[2:]))\n")


def _grid(tmp: Path, cap: int) -> Path:
    raw = {
        "name": "race",
        "defaults": {"data": {"language": "synthetic-small", "seq_len": 16, "heldout_examples": 4},
                     "train": {"batch_size": 4, "checkpoint_interval": 2, "log_interval": 1}},
        "resources": {"timeout_min": 5, "cpus_per_task": 1, "mem_gb": 2, "max_concurrent": cap},
        "cells": {"teacher": {"set": {"student": "tiny-0.01M", "train": {"tokens": 384}}},
                  "students": {"axes": {"train.seed": [0, 1, 2]},
                               "set": {"student": "tiny-0.007M", "method": "kd", "teacher": "@teacher",
                                       "train": {"tokens": 256}}}},
    }
    path = tmp / "race.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _submitters(grid: Path, runs: Path, n: int) -> list[subprocess.CompletedProcess]:
    start = time.time() + 8.0  # every process has imported torch and suite by then (2 cores, 3 processes)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", _AT_ONCE, str(start), "sweep", "submit", str(grid), "--runs",
                               str(runs), "--executor", "local", "--no-progress"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(n)]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        outs.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    return outs


def test_simultaneous_submitters_train_each_cell_once_within_the_cap(tmp_path):
    grid, runs = _grid(tmp_path, cap=1), tmp_path / "runs"
    outs = _submitters(grid, runs, n=3)
    for o in outs:
        assert o.returncode == 0, o.stderr[-3000:]
        assert "Traceback" not in o.stderr, o.stderr[-3000:]
    root = runs / "race"
    cells = json.loads((root / "sweep.json").read_text())["cells"]
    assert len(cells) == 4
    spans = []
    for c in cells:
        d = root / c["id"]
        assert (d / "result.json").exists(), f"{c['name']}: {sorted(p.name for p in d.iterdir())}"
        attempts = json.loads((d / "attempts.json").read_text())
        assert attempts["attempt"] == 1, f"{c['name']} trained {attempts['attempt']} times"
        steps = [json.loads(ln)["step"] for ln in (d / "metrics.jsonl").read_text().splitlines()
                 if json.loads(ln)["kind"] == "train"]
        assert steps == sorted(set(steps)), f"{c['name']}: metrics.jsonl has repeated steps {steps}"
        spans.append((attempts["starts"][0], (d / "result.json").stat().st_mtime, c["name"]))
    # max_concurrent: 1 across the three processes: no two cells' training overlapped in time
    for (a0, a1, an), (b0, b1, bn) in itertools.combinations(sorted(spans), 2):
        assert a1 <= b0, f"{an} ({a0:.1f}-{a1:.1f}) and {bn} ({b0:.1f}-{b1:.1f}) ran at the same time"
    # the students started only after their teacher's result (all in whichever process took them)
    teacher = next(s for s in spans if s[2].startswith("supervised"))
    assert all(s[0] >= teacher[1] for s in spans if s is not teacher)
    said = "".join(o.stdout for o in outs)
    assert said.count("start: ") == 4, said   # one start line per cell over the three submitters
