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
from ..videos import prepare
from ..videos.prepare import Clip, frame_blocks, holds_uint8
from .base import PerVideoMetric, pixel_threads
from .contract import InputsSpec


class TemporalFlicker(PerVideoMetric):
    name: ClassVar[str] = "flicker"
    description: ClassVar[str] = "VBench temporal flickering: (255 - mean |frame[t+1] - frame[t]|) / 255"
    higher_is_better: ClassVar[bool] = True
    spec: ClassVar[InputsSpec] = InputsSpec("single", min_frames=2, frame_clips=True)
    value_range: ClassVar[tuple[float | None, float | None]] = (0.0, 1.0)
    default_tolerance: ClassVar[Tolerance | None] = Tolerance(abs=0.002)
    default_max_drop: ClassVar[Tolerance | None] = Tolerance(abs=0.02)
    reference_protocol: ClassVar[Mapping[str, Any]] = {"frames": None, "fps": None, "stride": 1, "resize": None,
                                                       "start": 0.0}
    reference_name: ClassVar[str] = "VBench temporal_flickering"


    def score_clip(self, clip: Clip) -> float:
        # cache-sized blocks of rows; groups of frames share their last frame with the next group, so every
        # consecutive pair is summed exactly once. uint8 frames stay uint8: |a - b| = max - min is exact in uint8 and
        # the sums are int64 (what VBench computes with int16, without converting); resized frames: float64
        frames, channels, height, width = (int(n) for n in clip.shape)
        exact = holds_uint8(clip)
        sums = torch.zeros(frames - 1, dtype=torch.float64, device=clip.device)
        with pixel_threads(clip.device):
            # 4x the default block: several frames per group, so that few frames are read twice
            for start, block in frame_blocks(clip, 4 * prepare.BLOCK_PIXELS, torch.uint8 if exact else torch.float64,
                                             overlap=1):
                after, before = block[1:], block[:-1]
                if exact:
                    diff = torch.maximum(after, before).sub_(torch.minimum(after, before))
                else:
                    diff = (after - before).abs_()
                sums[start: start + block.shape[0] - 1] += diff.sum(dim=(1, 2, 3))
        per_pair = sums / (channels * height * width)
        return float((255.0 - per_pair.mean()) / 255.0)
