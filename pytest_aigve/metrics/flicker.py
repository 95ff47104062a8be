"""Temporal flickering as VBench defines it.

Per video: the mean absolute difference of consecutive frames (over pixels and channels, 0-255),
averaged over frame pairs. Set score: (255 - mean over videos) / 255, so 1.0 is a perfectly
static video and higher is better. VBench applies this to its static-scene prompts; on moving
content the score also falls with motion.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch

from ..gate import Tolerance
from .base import PerVideoMetric


class TemporalFlicker(PerVideoMetric):
    name: ClassVar[str] = "flicker"
    description: ClassVar[str] = "VBench temporal flickering: (255 - mean |frame[t+1] - frame[t]|) / 255"
    higher_is_better: ClassVar[bool] = True
    min_frames: ClassVar[int] = 2
    value_range: ClassVar[tuple[float | None, float | None]] = (0.0, 1.0)
    default_tolerance: ClassVar[Tolerance | None] = Tolerance(abs=0.002)
    default_max_drop: ClassVar[Tolerance | None] = Tolerance(abs=0.02)
    reference_protocol: ClassVar[Mapping[str, Any]] = {"frames": None, "fps": None, "stride": 1, "resize": None,
                                                       "start": 0.0}
    reference_name: ClassVar[str] = "VBench temporal_flickering"

    def score_clip(self, clip: torch.Tensor) -> float:
        mean_abs_diff = (clip[1:] - clip[:-1]).abs().mean(dim=(1, 2, 3)).mean()
        return float((255.0 - mean_abs_diff) / 255.0)
