"""PSNR between frame-aligned reference and candidate clips.

Per frame: 10·log10(255² / MSE) over all pixels and channels, capped at `max_db` (identical frames
would be infinite). Per video: the mean over frames. Set score: the mean over pairs.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from ..gate import Tolerance
from ..videos.prepare import Clip, frame_blocks
from .base import PairedMetric, pixel_threads
from .contract import InputsSpec
from .params import ParamSpec, positive_float


class PSNR(PairedMetric):
    name: ClassVar[str] = "psnr"
    description: ClassVar[str] = "peak signal-to-noise ratio in dB, frame by frame, averaged"
    higher_is_better: ClassVar[bool] = True
    value_range: ClassVar[tuple[float | None, float | None]] = (0.0, None)
    default_tolerance: ClassVar[Tolerance | None] = Tolerance(abs=0.25)
    default_max_drop: ClassVar[Tolerance | None] = Tolerance(abs=3.0)
    params: ClassVar[dict[str, ParamSpec[Any]]] = {
        "max_db": ParamSpec(100.0, positive_float, "cap for identical frames, in dB"),
    }

    spec: ClassVar[InputsSpec] = InputsSpec("paired", frame_clips=True)

    def score_pair(self, reference: Clip, candidate: Clip) -> float:
        # float64, a cache-sized block of rows at a time: per-frame sums of squared errors are all that is kept
        # (sums of integer squares are exact in float64, so the block order does not change a uint8 clip's value)
        frames, channels, height, width = (int(n) for n in reference.shape)
        sse = torch.zeros(frames, dtype=torch.float64, device=reference.device)
        with pixel_threads(reference.device):
            for (start, x), (_, y) in zip(frame_blocks(reference), frame_blocks(candidate), strict=True):
                sse[start: start + x.shape[0]] += (x - y).square_().sum(dim=(1, 2, 3))
        mse = sse / (channels * height * width)
        max_db = float(self.options["max_db"])
        floor = 255.0**2 / 10 ** (max_db / 10)  # the MSE at which PSNR reaches the cap
        psnr = 10.0 * torch.log10(255.0**2 / mse.clamp_min(floor))
        return float(psnr.mean())
