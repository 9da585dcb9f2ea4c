"""Naming the rank that went away, from a collective's error (gloo names the peer's address)."""
import json

from suite.distributed import DistEnv, peer_failure
from suite.sweep.state import cell_state, write_error

ENV = DistEnv(rank=0, world_size=3, hosts=(("node1", "10.0.0.11"), ("node2", "10.0.0.12"), ("node3", "10.0.0.13")))
GLOO = ("[../third_party/gloo/gloo/transport/tcp/pair.cc:537] Read error [10.0.0.12]:48211: Connection reset by "
        "peer")


def test_gloo_error_names_the_rank_and_node_by_address():
    lost = peer_failure(RuntimeError(GLOO), ENV)
    assert lost["failed_ranks"] == [1] and lost["failed_nodes"] == ["node2"] and lost["certain"]
    assert lost["summary"].startswith("rank 1 on node2 stopped answering; rank 0 on node1")


def test_a_timeout_names_every_other_rank_as_a_suspect():
    lost = peer_failure(RuntimeError("Timed out waiting 60000ms for recv operation to complete"), ENV)
    assert lost["failed_ranks"] == [1, 2] and not lost["certain"]
    assert "one of: rank 1 on node2, rank 2 on node3" in lost["summary"]


def test_ordinary_errors_and_single_processes_are_not_peer_failures():
    assert peer_failure(ValueError("lr must be > 0"), ENV) is None
    assert peer_failure(RuntimeError(GLOO), DistEnv()) is None


def test_a_lost_rank_error_waits_while_slurm_still_holds_the_job(tmp_path):
    (tmp_path / "job.json").write_text(json.dumps({"executor": "slurm", "job_id": "42"}))
    write_error(tmp_path, RuntimeError(GLOO), 1, lost_peer=peer_failure(RuntimeError(GLOO), ENV))
    assert cell_state(tmp_path, {"42": "REQUEUED"})[0] == "pending"  # a lost node: Slurm requeues it
    assert cell_state(tmp_path, {"42": "RUNNING"})[0] == "running"
    assert cell_state(tmp_path, {"42": "FAILED"})[0] == "failed"
    assert cell_state(tmp_path, {})[0] == "failed"
    write_error(tmp_path, ValueError("bad"), 1)  # an ordinary error: failed whatever the queue says
    assert cell_state(tmp_path, {"42": "RUNNING"})[0] == "failed"
