"""Model FLOPs utilisation: the FLOPs a step must do (the Kaplan count the results record) over what the chip
could do in the same time.

MFU = train_flops_per_token · tokens/s / (peak · processes). The peak is the vendor's dense bf16/fp16
tensor-core figure (no 2:4 sparsity) for the chips below; fp32 runs and unknown chips get no MFU unless
`SUITE_PEAK_TFLOPS` (per device, TFLOP/s) says what to divide by. CPU runs get none.
"""
from __future__ import annotations

import os

# dense bf16 TFLOP/s per GPU, vendor data sheets (SXM parts unless named)
_PEAK_BF16_TFLOPS = (
    ("H200", 989.4), ("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.4), ("GH200", 989.4),
    ("B200", 2250.0), ("A100", 312.0), ("A800", 312.0), ("L40S", 362.1), ("L4", 121.0), ("A10G", 70.0),
    ("A10", 125.0), ("RTX 4090", 165.2), ("RTX 3090", 71.0), ("V100", 125.0),
)


def peak_flops(device_name: str | None, precision: str) -> float | None:
    """Peak FLOP/s of one device for this precision, or None when unknown (no MFU is reported then)."""
    env = os.environ.get("SUITE_PEAK_TFLOPS")
    if env:
        return float(env) * 1e12
    if not device_name or precision not in ("bf16", "fp16"):
        return None
    for key, tflops in _PEAK_BF16_TFLOPS:  # most specific names first ("H100 PCIe" before "H100")
        if key in device_name:
            return tflops * 1e12
    return None


def device_peak_flops(device_type: str, precision: str) -> float | None:
    import torch

    return peak_flops(torch.cuda.get_device_name() if device_type == "cuda" else None, precision)
