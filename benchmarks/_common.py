"""What the benchmarks share: the machine's name for their output, and synthetic per-video feature blocks."""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def blocks(seed: int, videos: int, frames: int, dim: int, shift: float) -> list[np.ndarray]:
    """Per-video feature blocks with a shared per-video offset (frames of one video are alike), non-negative
    like pooled CNN features."""
    rng = np.random.default_rng(seed)
    base = rng.gamma(2.0, 0.15, size=(videos, 1, dim))
    return [np.abs(base[v] + rng.normal(shift, 0.05, size=(frames, dim))) for v in range(videos)]
