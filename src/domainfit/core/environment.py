"""What a bug report needs to carry: the versions of domainfit and the libraries that do the
work, and the CPU features that decide its speed. Read without importing any of them
(package metadata and ``/proc/cpuinfo``), so it answers at once."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from pathlib import Path

from .version import __version__

__all__ = ["environment", "cpu_features", "native_bf16", "SPEED_FEATURES"]

LIBRARIES = ("torch", "transformers", "onnxruntime", "peft", "tokenizers")
SPEED_FEATURES = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_bf16", "amx_int8")
"""Instruction sets that decide training and inference speed: bf16 (AVX512-BF16, AMX) makes
``--precision auto`` train in bf16; VNNI speeds up int8 inference; AVX2 is the baseline."""


def cpu_features() -> dict:
    """The CPU's model name and which of :data:`SPEED_FEATURES` it has (Linux; elsewhere
    the model name from ``platform`` and no feature list)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {"cpu_model": platform.processor() or platform.machine(), "instruction_sets": None}
    model = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")), "")
    flags = set(next((ln.split(":", 1)[1].split() for ln in info.splitlines() if ln.startswith("flags")), []))
    return {"cpu_model": model, "instruction_sets": [f for f in SPEED_FEATURES if f in flags]}


def native_bf16(features: list[str] | None = None) -> bool:
    """True when the CPU computes bf16 natively (AVX512-BF16 or AMX): where ``--precision
    auto`` trains in bf16. ``features``: from :func:`cpu_features` (read when not given)."""
    if features is None:
        features = cpu_features()["instruction_sets"]
    return bool(features) and ("avx512_bf16" in features or "amx_bf16" in features)


def environment() -> dict:
    """domainfit's version, Python, the platform, the libraries' versions (None when not
    installed), the CPU and its speed features."""
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {"domainfit": __version__, "python": sys.version.split()[0], "platform": platform.platform(),
            **versions, "cpu_count": os.cpu_count(), **cpu_features()}
