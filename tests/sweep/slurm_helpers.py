"""Helpers shared by the Slurm test files: wait on a sweep's status, read a cell's final weights."""
import json
import subprocess
import time
from pathlib import Path

from safetensors.torch import load_file

from suite.sweep import status


def wait(sw, until, timeout=240, poll=1.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        st = status(sw)
        if until(st):
            return st
        time.sleep(poll)
    subprocess.run(["squeue"], check=False)
    raise AssertionError(f"timed out waiting; status: {json.dumps(st['cells'], indent=1)}")


def all_ended(st):
    return st["counts"]["pending"] == 0 and st["counts"]["running"] == 0


def weights(d):
    return load_file(str(Path(d) / "model" / "model.safetensors"))
