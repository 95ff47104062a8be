"""In-memory inputs for a metric's unit tests: clips and feature blocks from arrays, fed the way the engine feeds
them (uint8 FrameClips on the device, or float64 tensors; features per video with a stand-in backbone). A
plugin author tests a metric with it without files, weights or pytest-aigve's engine:

    from pytest_aigve.metrics.testing import MemoryInputs
    result = MyMetric(MyMetric.validate_params({}), torch.device("cpu")).evaluate(MemoryInputs({"set": clips}))
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from ..protocol import ClipProtocol
from ..videos.prepare import Clip, clip_frames
from ..videos.sources import Video
from .contract import BackboneInfo, BackboneRequest, FeatureSet, MetricInputs, Role, VideoFeatures

STAND_IN = BackboneInfo("stand-in", "none", "0" * 64, "", "in-memory features", "fp32", "cpu")


class MemoryInputs(MetricInputs):
    """`clips`: per role, uint8 (T, H, W, 3) arrays; `features`: per role, per-video feature blocks (rows: frames
    or one clip), returned whatever the request; `prompts`: per role, one per video (None: no prompt).
    Videos are labelled v0.mp4, v1.mp4, ... in every role, so a reference and a candidate of one index pair up."""

    def __init__(self, clips: Mapping[Role, Sequence[np.ndarray]] | None = None, *,
                 features: Mapping[Role, Sequence[np.ndarray]] | None = None,
                 prompts: Mapping[Role, Sequence[str | None]] | None = None,
                 protocol: ClipProtocol | None = None, device: torch.device | None = None,
                 frame_clips: bool = True) -> None:
        self._clips = dict(clips or {})
        self._features = dict(features or {})
        self._prompts = dict(prompts or {})
        self.protocol = protocol or ClipProtocol(frames=None)
        self.device = device or torch.device("cpu")
        self.frame_clips = frame_clips  # False: whole float64 tensors, as a metric without spec.frame_clips gets

    def video(self, role: Role, index: int) -> Video:
        prompts = self._prompts.get(role, ())
        prompt = prompts[index] if index < len(prompts) else None
        return Video(Path(f"{role}/v{index}.mp4"), f"v{index}", f"v{index}.mp4", prompt)

    def _clip(self, frames: np.ndarray) -> Clip:
        clip = clip_frames(frames, self.protocol, self.device)
        return clip if self.frame_clips else clip.materialise(torch.float64)

    def clips(self, role: Role = "set") -> Iterator[tuple[Video, Clip]]:
        for index, frames in enumerate(self._clips.get(role, ())):
            yield self.video(role, index), self._clip(frames)

    def pairs(self) -> Iterator[tuple[Video, Clip, Video, Clip]]:
        pairs = zip(self._clips.get("reference", ()), self._clips.get("candidate", ()), strict=True)
        for index, (reference, candidate) in enumerate(pairs):
            yield (self.video("reference", index), self._clip(reference),
                   self.video("candidate", index), self._clip(candidate))

    def features(self, role: Role, request: BackboneRequest) -> FeatureSet:
        blocks = self._features.get(role, ())
        return FeatureSet(tuple(VideoFeatures(self.video(role, index), np.atleast_2d(block))
                                for index, block in enumerate(blocks)), STAND_IN)

    def prompts(self, role: Role = "set") -> dict[str, str]:
        return {f"v{index}.mp4": prompt for index, prompt in enumerate(self._prompts.get(role, ())) if prompt}
