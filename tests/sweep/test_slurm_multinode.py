"""Cells on several Slurm nodes: DDP over gloo across the namespaced nodes of `scripts/local-slurm.sh up --nodes 3`
(node1..node3, each its own network namespace and address), launched by submitit, and the faults a cluster has:
a node lost mid-run, a preemption, a rank that dies alone."""
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
import yaml

from slurm_helpers import all_ended, wait, weights
from suite.config import config_from_dict
from suite.sweep import open_sweep, submit
from suite.train import launch_local

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("multinode_cluster")]

TWO_NODES = {"nodes": 2, "tasks_per_node": 1, "partition": "multi"}
DEFAULTS = {"data": {"language": "synthetic-small", "seq_len": 16, "heldout_examples": 4},
            "train": {"batch_size": 4, "checkpoint_interval": 20, "eval_interval": 1000}}


def write_grid(tmp_path, name, cells, **res):
    raw = {"name": name, "defaults": DEFAULTS,
           "resources": {"timeout_min": 5, "cpus_per_task": 1, "mem_gb": 1, **res}, "cells": cells}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def max_abs_diff(a, b):
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def local_two_process(cell_dir, out):
    """The same cell with 2 processes on this one machine (no Slurm): the reference for the 2-node runs."""
    spec = json.loads((Path(cell_dir) / "cell.json").read_text())
    return launch_local(config_from_dict(spec["config"], "cell.json"), out, nprocs=2)


SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "local-slurm.sh"


@pytest.fixture(autouse=True)
def nodes_back_up(multinode_cluster):
    """A node a test powered off comes back for the next one (its slurmd restarted, its state resumed)."""
    yield
    out = subprocess.run(["sinfo", "-h", "-N", "-p", "multi", "-o", "%N|%t"], capture_output=True, text=True).stdout
    if any(not ln.endswith(("|idle", "|mix", "|alloc")) for ln in out.splitlines() if ln):
        subprocess.run(["bash", str(SCRIPT), "up", "--nodes", str(len(multinode_cluster))], capture_output=True,
                       timeout=120)


def power_off(node):
    """What a lost node looks like to the cluster: every process in its network namespace (its slurmd, its
    slurmstepd and the job's task on it) is SIGKILLed at once."""
    ns = os.stat(f"/run/netns/slurm-{node}").st_ino
    killed = 0
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if os.stat(proc / "ns" / "net").st_ino == ns:
                    os.kill(int(proc.name), signal.SIGKILL)
                    killed += 1
            except OSError:
                pass
    return killed


def test_two_node_cell_equals_two_processes_on_one_node(tmp_path):
    path = write_grid(tmp_path, "ddp2n", {"c": {"set": {"student": "tiny-0.1M", "train": {"tokens": 2048}}}},
                      **TWO_NODES)
    sw = open_sweep(path, runs=tmp_path / "runs")
    submit(sw, executor="slurm", progress=False)
    st = wait(sw, all_ended, poll=0.5)
    assert st["counts"]["done"] == 1, st
    cell_dir = sw.root / sw.grid.cells[0].id
    res = json.loads((cell_dir / "result.json").read_text())
    assert res["world_size"] == 2
    assert len(res["nodes"]) == 2 and all(n.startswith("node") for n in res["nodes"])  # rank 0 and 1 apart
    assert res["rank_hosts"][0] != res["rank_hosts"][1]
    ref = local_two_process(cell_dir, tmp_path / "local2")
    assert ref["nodes"] != res["nodes"]
    # measured: identical to the bit (the same gloo ring allreduce over 2 ranks, TCP across namespaces or not)
    diff = max_abs_diff(weights(cell_dir), weights(tmp_path / "local2"))
    print(f"2 nodes vs 2 processes on 1 node: max |dw| = {diff}")
    assert diff == 0.0


def test_teacher_on_two_nodes_then_its_student(tmp_path):
    path = write_grid(tmp_path, "pair", {
        "teacher": {"set": {"student": "tiny-0.1M", "train": {"tokens": 1280}}, "resources": TWO_NODES},
        "student": {"set": {"student": "tiny-0.1M", "method": "kd", "teacher": "@teacher",
                            "train": {"tokens": 640}}}})
    sw = open_sweep(path, runs=tmp_path / "runs")
    submit(sw, executor="slurm", progress=False)
    st = wait(sw, all_ended, poll=0.5)
    assert st["counts"]["done"] == 2, st
    teacher = next(c for c in sw.grid.cells if not c.teacher_id)
    student = next(c for c in sw.grid.cells if c.teacher_id)
    t_res = json.loads((sw.root / teacher.id / "result.json").read_text())
    s_res = json.loads((sw.root / student.id / "result.json").read_text())
    assert t_res["world_size"] == 2 and len(t_res["nodes"]) == 2
    assert s_res["L_T"] is not None and s_res["world_size"] == 1
    start = json.loads((sw.root / student.id / "attempts.json").read_text())["starts"][0]
    assert start >= (sw.root / teacher.id / "result.json").stat().st_mtime


def _long(tokens=12_000):
    # 12,000 tokens / (4 x 16) = 188 steps over 2 ranks (~15 s on 2 cores); checkpoint every 20 steps
    return {"long": {"set": {"student": "tiny-0.1M", "train": {"tokens": tokens, "checkpoint_interval": 20}}}}


@pytest.fixture(scope="module")
def long_ref(tmp_path_factory):
    """The long cell's grid, and the cell trained uninterrupted with 2 processes on this machine."""
    tmp = tmp_path_factory.mktemp("long2")
    path = write_grid(tmp, "long2", _long(), **TWO_NODES)
    cell = open_sweep(path, runs=tmp / "expand").grid.cells[0]
    launch_local(cell.config, tmp / "ref", nprocs=2)
    return path, tmp / "ref"


def _start_and_wait_for_checkpoint(path, tmp_path, min_step=40):
    sw = open_sweep(path, runs=tmp_path / "runs")
    job_id = submit(sw, executor="slurm", progress=False)["jobs"][sw.grid.cells[0].id]
    cell_dir = sw.root / sw.grid.cells[0].id
    deadline = time.time() + 120
    while time.time() < deadline:
        steps = [int(p.parent.name.split("_")[1]) for p in (cell_dir / "checkpoints").glob("step_*/state.json")]
        if steps and max(steps) >= min_step:
            break
        time.sleep(0.2)
    assert not (cell_dir / "result.json").exists(), "finished before the fault; make the cell longer"
    return sw, job_id, cell_dir


def _job_nodes(job_id):
    out = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%N"], capture_output=True, text=True).stdout.strip()
    return subprocess.run(["scontrol", "show", "hostnames", out], capture_output=True, text=True).stdout.split()


def _checkpoint_steps(cell_dir):
    return {int(p.parent.name.split("_")[1]): p.stat().st_mtime
            for p in (cell_dir / "checkpoints").glob("step_*/state.json")}


def test_lost_node_requeues_and_resumes_on_the_nodes_left(long_ref, tmp_path):
    path, ref_dir = long_ref
    sw, job_id, cell_dir = _start_and_wait_for_checkpoint(path, tmp_path)
    nodes = _job_nodes(job_id)
    assert len(nodes) == 2, nodes
    lost = nodes[1]
    before = _checkpoint_steps(cell_dir)
    t_lost = time.time()
    assert power_off(lost) >= 2  # slurmd and the task, at least
    # what the controller does once the node misses SlurmdTimeout, or a health check does at once
    subprocess.run(["scontrol", "update", f"nodename={lost}", "state=down", "reason=suite test: node lost"],
                   check=True)
    resumed = {}  # the first checkpoint the restarted job writes (only the newest 2 are kept: watch for it)

    def ended(st):
        attempts = json.loads((cell_dir / "attempts.json").read_text())
        if not resumed and attempts["attempt"] >= 2:
            new = {s: t for s, t in _checkpoint_steps(cell_dir).items()
                   if s > max(before) and t > attempts["starts"][1]}
            if new:
                resumed.update(step=min(new), at=new[min(new)], restart=attempts["starts"][1])
        return all_ended(st)

    st = wait(sw, ended, timeout=300, poll=0.2)
    assert st["counts"]["done"] == 1, st
    assert json.loads((cell_dir / "attempts.json").read_text())["attempt"] >= 2
    res = json.loads((cell_dir / "result.json").read_text())
    assert lost not in res["nodes"] and len(res["nodes"]) == 2  # resumed on the two nodes still up
    assert resumed, "never saw a checkpoint of the resumed run"
    print(f"node {lost} lost: job restarted on {res['nodes']} after {resumed['restart'] - t_lost:.1f} s; its "
          f"first checkpoint (step {resumed['step']}, the last before the loss: {max(before)}) "
          f"{resumed['at'] - t_lost:.1f} s after the loss")
    a, b = weights(ref_dir), weights(cell_dir)
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_preemption_of_a_two_node_cell_stops_every_rank_at_one_step(long_ref, tmp_path):
    path, ref_dir = long_ref
    sw, job_id, cell_dir = _start_and_wait_for_checkpoint(path, tmp_path)
    subprocess.run(["scancel", "--signal=USR2", job_id], check=True)
    seen = set()  # checkpoint steps as they appear (only the newest 2 stay on disk)

    def ended(st):
        seen.update(_checkpoint_steps(cell_dir))
        return all_ended(st)

    st = wait(sw, ended, timeout=300, poll=0.2)
    assert st["counts"]["done"] == 1, st
    assert json.loads((cell_dir / "attempts.json").read_text())["attempt"] >= 2
    # each rank printed where it stopped (suite/sweep/runner.py), into its task's log
    logs = "".join(p.read_text() for p in (sw.root / ".submitit").glob(f"{job_id}/*_log.err"))
    stops = dict(re.findall(r"rank (\d) on \S+: stopped after step (\d+)/", logs))
    assert set(stops) == {"0", "1"} and stops["0"] == stops["1"], stops
    assert int(stops["0"]) in seen  # rank 0 wrote the checkpoint at that step
    a, b = weights(ref_dir), weights(cell_dir)
    for k in a:
        assert torch.equal(a[k], b[k]), k


def _task_pid(job_id, rank):
    """The pid of the job's task `rank` (the namespaced nodes share this machine's pid namespace)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            env = (proc / "environ").read_bytes().split(b"\0")
            cmd = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if (b"submitit.core._submit" in cmd and f"SLURM_JOB_ID={job_id}".encode() in env
                and f"SLURM_PROCID={rank}".encode() in env):
            return int(proc.name)
    return None


def test_a_rank_that_dies_alone_fails_the_cell_naming_it(tmp_path, monkeypatch):
    monkeypatch.setenv("SUITE_COLLECTIVE_TIMEOUT_S", "60")  # sbatch exports the environment to the job
    path = write_grid(tmp_path, "die", _long(), **TWO_NODES)
    sw, job_id, cell_dir = _start_and_wait_for_checkpoint(path, tmp_path, min_step=20)
    victim_node = _job_nodes(job_id)[1]
    pid = _task_pid(job_id, 1)
    assert pid is not None, "rank 1's process not found"
    t_kill = time.time()
    os.kill(pid, signal.SIGKILL)
    st = wait(sw, all_ended, timeout=120, poll=0.5)
    took = time.time() - t_kill
    assert st["counts"]["failed"] == 1, st
    err = json.loads((cell_dir / "error.json").read_text())
    print(f"rank 1 killed on {victim_node}: cell failed after {took:.1f} s: {err['message'][:160]}")
    assert err["lost_peer"]["failed_ranks"] == [1] and err["lost_peer"]["failed_nodes"] == [victim_node]
    assert f"rank 1 on {victim_node}" in err["message"] and err["rank"] == 0
    assert took < 90  # it failed, it did not hang
