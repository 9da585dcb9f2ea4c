"""MFU: the Kaplan FLOPs a step must do over the chip's peak, logged per window and summarised in the result."""
import json

import pytest

from suite.config import config_from_dict
from suite.train import train
from suite.train.mfu import peak_flops


def tiny(tokens=2900):
    return config_from_dict({
        "name": "t", "student": "tiny-0.1M", "method": "supervised",
        "data": {"kind": "synthetic", "language": "synthetic-small", "seq_len": 32, "heldout_examples": 16},
        "train": {"tokens": tokens, "batch_size": 8, "eval_interval": 4, "checkpoint_interval": 3,
                  "log_interval": 2, "eval_batch_size": 8}}, "test")


def test_peak_table_names_the_chip_and_precision(monkeypatch):
    monkeypatch.delenv("SUITE_PEAK_TFLOPS", raising=False)
    assert peak_flops("NVIDIA H200", "bf16") == 989.4e12
    assert peak_flops("NVIDIA H100 PCIe", "bf16") == 756e12  # not the SXM figure
    assert peak_flops("NVIDIA A100-SXM4-80GB", "fp16") == 312e12
    assert peak_flops("NVIDIA H200", "fp32") is None  # no tensor-core peak to divide by
    assert peak_flops("Some Future Chip", "bf16") is None and peak_flops(None, "bf16") is None
    monkeypatch.setenv("SUITE_PEAK_TFLOPS", "2.5")
    assert peak_flops(None, "fp32") == 2.5e12


def test_mfu_is_flops_per_token_times_throughput_over_peak(tmp_path, monkeypatch):
    monkeypatch.setenv("SUITE_PEAK_TFLOPS", "0.001")  # a CPU has no table entry: say what to divide by
    res = train(tiny(), tmp_path, progress=False)
    fpt = res["flops"]["total"] / res["D_S"]
    recs = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    logged = [r for r in recs if r["kind"] == "train"]
    for r in logged:
        assert r["mfu"] == pytest.approx(fpt * r["tokens_per_s"] / 1e9, rel=1e-9)
    assert res["peak_flops"] == 1e9 and res["mfu"] == pytest.approx(fpt * res["tokens_per_s"] / 1e9, rel=1e-9)
    # the summary is the steady windows' token-weighted rate: between the slowest and fastest window
    rates = [r["tokens_per_s"] for r in logged[1:]]
    assert min(rates) <= res["tokens_per_s"] <= max(rates)


def test_no_peak_no_mfu(tmp_path, monkeypatch):
    monkeypatch.delenv("SUITE_PEAK_TFLOPS", raising=False)
    res = train(tiny(512), tmp_path, progress=False)
    assert res["mfu"] is None and res["peak_flops"] is None and res["tokens_per_s"] > 0
    recs = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert not any("mfu" in r for r in recs)
