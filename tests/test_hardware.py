"""Capability detection: precisions are native by CPU feature (or CUDA compute capability), never by assumption."""

from __future__ import annotations

import platform

import pytest
import torch

from resnets.errors import ResnetsError
from resnets.hardware import (
    capabilities,
    cpu_capabilities,
    matmul_gflops,
    normalise_precision,
    onednn_isa,
)

SAPPHIRE_RAPIDS = ("Intel(R) Xeon(R) Platinum 8481C", {"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16",
                                                       "amx_tile", "amx_bf16", "amx_int8"})
ZEN4 = ("AMD EPYC 9B14", {"avx2", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16"})
ZEN3 = ("AMD EPYC 7B13", {"avx2", "fma"})


def test_amx_xeon_runs_bf16_and_int8_natively():
    caps = cpu_capabilities(SAPPHIRE_RAPIDS)
    assert caps.native["bf16"] == "amx_bf16" and caps.native["int8"] == "amx_int8"
    assert "amx_bf16" in caps.features and caps.is_native("fp32")


def test_zen4_has_avx512_bf16_and_vnni_but_no_fp16():
    caps = cpu_capabilities(ZEN4)
    assert caps.native["bf16"] == "avx512_bf16" and caps.native["int8"] == "avx512_vnni"
    assert not caps.is_native("fp16") and "avx512_fp16" in caps.why_not("fp16")


def test_avx2_only_cpu_emulates_bf16_and_says_so():
    caps = cpu_capabilities(ZEN3)
    assert set(caps.native) == {"fp32"}
    why = caps.why_not("bf16")
    assert "AMD EPYC 7B13" in why and "avx512_bf16" in why and "emulated" in why


def test_this_machine_is_read_from_its_own_flags():
    caps = capabilities("cpu")
    assert caps.is_native("fp32") and caps.name
    flags = set()
    try:
        with open("/proc/cpuinfo") as handle:
            flags = {f for line in handle if line.startswith(("flags", "Features")) for f in line.split(":")[1].split()}
    except OSError:
        pytest.skip("no /proc/cpuinfo")
    assert caps.is_native("bf16") == bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


@pytest.mark.parametrize("name, expected", [("float32", "fp32"), ("BF16", "bf16"), ("half", "fp16"), ("int8", "int8"),
                                            (torch.bfloat16, "bf16")])
def test_precision_names(name, expected):
    assert normalise_precision(name) == expected


def test_unknown_precision():
    with pytest.raises(ResnetsError, match="unknown precision 'fp8'"):
        normalise_precision("fp8")


def test_matmul_rate_is_measured():
    assert matmul_gflops(torch.float32, size=256, reps=2) > 0.1
    assert matmul_gflops(torch.bfloat16, size=256, reps=2) > 0.01


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="oneDNN ISA names are x86's here")
def test_onednn_reports_its_isa():
    isa = onednn_isa()
    assert isa is None or "Intel" in isa or "AVX" in isa
