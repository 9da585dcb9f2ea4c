"""suite.eval.heldout: the held-out loss is unchanged, and its standard error over blocks is the sample SD of the
per-block mean losses / sqrt(n), whatever the batch size."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from suite.data import make_source
from suite.eval.heldout import heldout_loss, heldout_stats
from suite.methods.base import ce_objective
from suite.methods.chunked import head_loss
from suite.models import HiddenStatesLM
from suite.models.build import build_model


@pytest.fixture(scope="module")
def lm_and_source():
    src = make_source("synthetic", seq_len=24, language="synthetic-small", heldout_examples=11)
    model = HiddenStatesLM(build_model("tiny-0.01M", vocab_size=len(src.tokenizer), seed=0)).eval()
    return model, src


@torch.no_grad()
def _per_block(model, src) -> tuple[np.ndarray, np.ndarray]:
    """Each held-out example on its own, through the plain CE objective: (loss sum, tokens) per block."""
    sums, toks = [], []
    for i in range(src.num_examples("heldout")):
        ex = torch.from_numpy(src.batch([i], split="heldout"))
        loss, _ = head_loss(model(ex[:, :-1]), model.head_weight, ex[:, 1:], ce_objective)
        sums.append(float(loss))
        toks.append(ex[:, 1:].numel())
    return np.array(sums), np.array(toks, dtype=float)


@torch.no_grad()
def _old_heldout_loss(model, src, batch_size) -> float:
    """The loss exactly as heldout_loss computed it before it kept per-token losses."""
    total = torch.zeros(2, dtype=torch.float64)
    n = src.num_examples("heldout")
    for start in range(0, n, batch_size):
        ex = torch.from_numpy(src.batch(list(range(start, min(n, start + batch_size))), split="heldout"))
        loss, _ = head_loss(model(ex[:, :-1]), model.head_weight, ex[:, 1:], ce_objective)
        total[0] += float(loss)
        total[1] += ex[:, 1:].numel()
    return float(total[0] / total[1])


def test_loss_is_bit_for_bit_unchanged(lm_and_source):
    model, src = lm_and_source
    for bs in (4, 32):
        stats = heldout_stats(model, src, batch_size=bs)
        assert stats["loss"] == _old_heldout_loss(model, src, bs)          # exact, not approx
        assert heldout_loss(model, src, batch_size=bs) == stats["loss"]


def test_stderr_is_the_sd_of_block_means_over_sqrt_n(lm_and_source):
    model, src = lm_and_source
    sums, toks = _per_block(model, src)
    means = sums / toks
    expect = float(np.std(means, ddof=1) / math.sqrt(len(means)))
    assert expect > 0
    for bs in (3, 4, 32):                                   # batch boundaries do not change it
        stats = heldout_stats(model, src, batch_size=bs)
        assert stats["n_blocks"] == 11 and stats["n_tokens"] == int(toks.sum())
        assert stats["stderr"] == pytest.approx(expect, rel=1e-5)
        assert stats["loss"] == pytest.approx(sums.sum() / toks.sum(), rel=1e-6)


def test_stderr_needs_two_blocks(lm_and_source):
    model, src = lm_and_source
    one = heldout_stats(model, src, max_examples=1)
    assert one["n_blocks"] == 1 and one["stderr"] is None and math.isfinite(one["loss"])
    two = heldout_stats(model, src, max_examples=2)
    sums, toks = _per_block(model, src)
    # float32 block sums: their difference is known to ~1e-7 nats
    assert two["stderr"] == pytest.approx(abs(sums[0] / toks[0] - sums[1] / toks[1]) / 2, abs=1e-6)


def test_run_heldout_reports_stderr_and_blocks(lm_and_source, tmp_path):
    from suite.eval.benchmarks import EvalContext, run_heldout, summary

    model, src = lm_and_source
    res = run_heldout("heldout", model, EvalContext(out=tmp_path, heldout_source=src, batch_size=5))
    stats = heldout_stats(model, src, batch_size=5)
    assert res == {"loss": stats["loss"], "stderr": stats["stderr"], "n_blocks": 11, "n": 11}
    assert summary(res) == res                                # result.json keeps every key
