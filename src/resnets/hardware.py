"""What this machine computes natively: the precisions each device runs in hardware, found by capability.

A precision is *native* when the device has instructions for its dot products: on x86, AVX512-BF16 or
AMX-BF16 for bf16, AVX512-FP16 or AMX-FP16 for fp16, AVX512-VNNI, AVX-VNNI or AMX-INT8 for int8 (read
from /proc/cpuinfo, where the kernel lists what the CPU reports); on Arm the `bf16`, `fphp`/`asimdhp` and
`asimddp`/`i8mm` features; on CUDA the compute capability (bf16 from 8.0, fp16 tensor cores from 7.0).
Without them PyTorch and oneDNN still run bf16 or fp16, but by converting to fp32 and back: slower than
fp32 itself. `best` never picks such a path; an explicit request runs it and says so.
"""

from __future__ import annotations

import functools
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .errors import ResnetsError

PRECISIONS = ("fp32", "bf16", "fp16", "int8")
EXACT = ("fp32",)
_ALIASES = {"float32": "fp32", "f32": "fp32", "float": "fp32", "bfloat16": "bf16", "float16": "fp16",
            "half": "fp16", "f16": "fp16"}
TORCH_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
DTYPE_NAMES = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}

# precision -> CPU features (as /proc/cpuinfo spells them) any one of which makes it native
NATIVE_CPU_FEATURES = {
    "bf16": ("amx_bf16", "avx512_bf16", "bf16"),
    "fp16": ("amx_fp16", "avx512_fp16", "fphp", "asimdhp"),
    "int8": ("amx_int8", "avx512_vnni", "avx_vnni", "asimddp", "i8mm"),
}
REPORTED_FEATURES = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16",
                     "amx_tile", "amx_bf16", "amx_int8", "amx_fp16", "asimd", "sve", "bf16", "i8mm")


def normalise_precision(value: str | torch.dtype) -> str:
    """'fp32' | 'bf16' | 'fp16' | 'int8' from a name (float32, bfloat16, ...) or a torch dtype."""
    if isinstance(value, torch.dtype):
        if value not in DTYPE_NAMES:
            raise ResnetsError(f"unsupported dtype {value}; choose from {', '.join(PRECISIONS)}")
        return DTYPE_NAMES[value]
    name = _ALIASES.get(str(value).strip().lower(), str(value).strip().lower())
    if name not in PRECISIONS:
        raise ResnetsError(f"unknown precision {value!r}; choose from {', '.join(PRECISIONS)} "
                           "(or float32, bfloat16, float16)")
    return name


@dataclass(frozen=True)
class Capabilities:
    """One device's name, its relevant features and which precisions it runs natively (and why)."""

    device: str
    name: str
    features: tuple[str, ...]
    native: dict[str, str] = field(default_factory=dict)
    """precision -> what makes it native here (a CPU feature, a compute capability)."""
    missing: dict[str, str] = field(default_factory=dict)
    """precision -> why it is not native here."""
    torch_isa: str = ""

    def is_native(self, precision: str) -> bool:
        return precision in self.native

    def why_not(self, precision: str) -> str:
        return self.missing.get(precision, f"{precision} is not native on this {self.device}")

    def summary(self) -> str:
        native = ", ".join(f"{p} ({why})" for p, why in self.native.items())
        return (f"{self.name} [{self.device}]: features {' '.join(self.features) or 'none of note'}; "
                f"torch ISA {self.torch_isa or '-'}; native: {native}")


def _read_cpuinfo() -> tuple[str, set[str]]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine(), set()
    name = re.search(r"^(?:model name|Hardware|CPU part)\s*:\s*(.+)$", text, re.MULTILINE)
    flags = re.search(r"^(?:flags|Features)\s*:\s*(.+)$", text, re.MULTILINE)
    return (name.group(1).strip() if name else platform.machine()), set(flags.group(1).split()) if flags else set()


def cpu_capabilities(cpuinfo: tuple[str, set[str]] | None = None) -> Capabilities:
    """The CPU's capabilities (`cpuinfo` = (model name, flags) overrides /proc/cpuinfo, for tests)."""
    name, flags = cpuinfo if cpuinfo is not None else _cpuinfo_cached()
    native = {"fp32": "always"}
    missing = {}
    for precision, features in NATIVE_CPU_FEATURES.items():
        present = [f for f in features if f in flags]
        if present:
            native[precision] = present[0]
        else:
            missing[precision] = (f"{precision} is not native on this CPU ({name}: no "
                                  f"{'/'.join(f for f in features if '_' in f or f == 'bf16')}); "
                                  "it would be emulated through fp32, slower than fp32 itself")
    if "fp16" in native and not _torch_fp16_ok():
        missing["fp16"] = f"this CPU has {native.pop('fp16')} but PyTorch's oneDNN build does not use it for fp16"
    reported = tuple(f for f in REPORTED_FEATURES if f in flags)
    return Capabilities("cpu", name, reported, native, missing, torch.backends.cpu.get_cpu_capability())


@functools.cache
def _cpuinfo_cached() -> tuple[str, set[str]]:
    return _read_cpuinfo()


def _torch_fp16_ok() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_fp16_supported())
    except (AttributeError, RuntimeError):
        return False


def cuda_capabilities(device: torch.device) -> Capabilities:
    major, minor = torch.cuda.get_device_capability(device)
    name = torch.cuda.get_device_name(device)
    cc = f"compute capability {major}.{minor}"
    native, missing = {"fp32": "always"}, {}
    if major >= 8 and torch.cuda.is_bf16_supported():
        native["bf16"] = f"tensor cores, {cc}"
    else:
        missing["bf16"] = f"bf16 needs compute capability 8.0+ for tensor cores; this GPU has {major}.{minor}"
    if major >= 7:
        native["fp16"] = f"tensor cores, {cc}"
    else:
        missing["fp16"] = f"fp16 tensor cores need compute capability 7.0+; this GPU has {major}.{minor}"
    missing["int8"] = "int8 runs on the CPU backends (onnx, openvino) only"
    return Capabilities(str(device), name, (cc,), native, missing, "cuda")


def capabilities(device: str | torch.device = "cpu") -> Capabilities:
    device = torch.device(device)
    return cuda_capabilities(device) if device.type == "cuda" else cpu_capabilities()


def matmul_gflops(dtype: torch.dtype = torch.float32, size: int = 2048, reps: int = 5,
                  device: str | torch.device = "cpu") -> float:
    """Best-of-`reps` rate of a size x size matmul in `dtype` with torch at the current thread count."""
    device = torch.device(device)
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    a @ b
    sync()
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        a @ b
        sync()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def onednn_isa() -> str | None:
    """The instruction set oneDNN (PyTorch's CPU convolutions) dispatches to, from its own verbose report.

    oneDNN prints it only to stdout of the process that runs a primitive, so a child process runs one
    small bf16 convolution with ONEDNN_VERBOSE=1 (~2 s). None when that fails.
    """
    code = ("import torch\nx = torch.randn(1, 8, 8, 8, dtype=torch.bfloat16)\n"
            "torch.nn.functional.conv2d(x, torch.randn(8, 8, 3, 3, dtype=torch.bfloat16))\n")
    env = {**os.environ, "ONEDNN_VERBOSE": "1", "DNNL_VERBOSE": "1"}
    try:
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    isa = re.search(r"info,cpu,isa:(.+)", out)
    impl = re.search(r"convolution,(jit[^,]*|brg[^,]*|gemm[^,]*|ref[^,]*)", out)
    if not isa:
        return None
    return isa.group(1).strip() + (f" (bf16 convolution kernel: {impl.group(1)})" if impl else "")


def openvino_capabilities() -> list[str] | None:
    """OpenVINO's own list for its CPU plugin (FP32, BF16, FP16, INT8, ...), or None without openvino."""
    try:
        import openvino as ov
    except ImportError:
        return None
    return list(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
