"""The precision of inference: which dtype `phenom embed --dtype` runs the forward pass in, and whether the hardware
has native bf16 (docs/performance.md, "bf16").

`auto` picks bf16 only where the hardware computes it natively, float32 elsewhere:

- CUDA: `torch.cuda.is_bf16_supported()` (Ampere and newer);
- CPU: the x86 instruction set extensions for bf16 dot products, `avx512_bf16` (AVX512-BF16: Cooper Lake, Zen 4 and
  newer) or `amx_bf16` (AMX: Sapphire Rapids and newer), read from `/proc/cpuinfo` (PyTorch's own
  `torch.backends.cpu.get_cpu_capability()` says only "AVX512", whether or not it has bf16). Without them PyTorch
  emulates bf16 through float32 conversions, which is slower than float32.

Reduced precision means float32 weights under `torch.autocast`: matmuls, convolutions and attention run in bf16, the
residual stream, the self-standardization and the pooled embeddings stay float32.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch

DTYPE_CHOICES = ("auto", "float32", "bfloat16", "float16")
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str]:
    """The CPU's feature flags (the first `flags` line of `/proc/cpuinfo`); empty where that file cannot be read."""
    try:
        for line in Path(cpuinfo).read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def native_bf16(device: torch.device | str, flags: set[str] | None = None) -> tuple[bool, str]:
    """Whether `device` computes bf16 natively, and the evidence (a short sentence for the provenance).

    Args:
        flags: CPU feature flags (default: this machine's, `cpu_flags()`).
    """
    device = torch.device(device)
    if device.type == "cuda":
        supported = torch.cuda.is_bf16_supported()
        name = torch.cuda.get_device_name(device)
        return supported, f"{name}: torch.cuda.is_bf16_supported() is {supported}"
    if device.type == "cpu":
        flags = cpu_flags() if flags is None else flags
        found = [flag for flag in CPU_BF16_FLAGS if flag in flags]
        if found:
            return True, f"CPU flags {', '.join(found)}"
        return False, f"CPU without {' or '.join(CPU_BF16_FLAGS)}"
    return False, f"no native bf16 check for device type {device.type!r}"


@dataclass(frozen=True)
class InferencePrecision:
    """The dtype a forward pass runs in (`autocast` is None for float32) and why it was chosen."""

    requested: str
    dtype: str
    reason: str

    @property
    def autocast(self) -> torch.dtype | None:
        return None if self.dtype == "float32" else getattr(torch, self.dtype)

    def record(self) -> dict:
        """For the embeddings' provenance: `{"requested", "dtype", "reason"}`."""
        return asdict(self)


def resolve_precision(requested: str, device: torch.device | str, flags: set[str] | None = None) -> InferencePrecision:
    """`--dtype` -> the precision to run: `auto` becomes bfloat16 where `native_bf16(device)`, float32 elsewhere;
    any other choice is taken as asked.

    Raises:
        ValueError: `requested` is not one of `DTYPE_CHOICES`.
    """
    if requested not in DTYPE_CHOICES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPE_CHOICES)}, got {requested!r}")
    if requested != "auto":
        return InferencePrecision(requested, requested, "asked for")
    native, evidence = native_bf16(device, flags)
    return InferencePrecision(requested, "bfloat16" if native else "float32",
                              f"auto: {evidence}" + ("" if native else ", so float32"))


__all__ = [
    "DTYPE_CHOICES",
    "CPU_BF16_FLAGS",
    "cpu_flags",
    "native_bf16",
    "InferencePrecision",
    "resolve_precision",
]
