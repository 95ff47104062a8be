"""PSNR between frame-aligned reference and candidate clips.

Per frame: 10·log10(255² / MSE) over all pixels and channels, capped at `max_db` (identical frames
would be infinite). Per video: the mean over frames. Set score: the mean over pairs.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch

from ..gate import Tolerance
from .base import PairedMetric, ParamSpec


def _positive_float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"must be a positive number, got {value!r}")
    return float(value)


class PSNR(PairedMetric):
    name: ClassVar[str] = "psnr"
    description: ClassVar[str] = "peak signal-to-noise ratio in dB, frame by frame, averaged"
    higher_is_better: ClassVar[bool] = True
    value_range: ClassVar[tuple[float | None, float | None]] = (0.0, None)
    default_tolerance: ClassVar[Tolerance | None] = Tolerance(abs=0.25)
    default_max_drop: ClassVar[Tolerance | None] = Tolerance(abs=3.0)
    params: ClassVar[dict[str, ParamSpec]] = {
        "max_db": ParamSpec(100.0, _positive_float, "cap for identical frames, in dB"),
    }

    def score_pair(self, reference: torch.Tensor, candidate: torch.Tensor) -> float:
        mse = (reference - candidate).pow(2).mean(dim=(1, 2, 3))
        max_db = float(self.options["max_db"])
        floor = 255.0**2 / 10 ** (max_db / 10)  # the MSE at which PSNR reaches the cap
        psnr = 10.0 * torch.log10(255.0**2 / mse.clamp_min(floor))
        return float(psnr.mean())
