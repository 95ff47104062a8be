"""Background consistency as VBench defines it (vbench.background_consistency), on OpenAI CLIP ViT-B/32.

Each frame's CLIP image embedding is L2-normalised; every frame i >= 1 scores
(max(0, cos(frame i-1, frame i)) + max(0, cos(frame 0, frame i))) / 2.

The set value is frame-weighted, as VBench computes it: the sum of these scores over every frame of every video
divided by the number of scored frames of all videos (a long video weighs more than a short one), not the mean of
the videos' scores. Each video's own score is its mean over its frames (VBench's per-video `video_results`). The
bootstrap resamples videos and recomputes the frame-weighted value from their sums and counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from ..errors import MetricError
from .base import Metric
from .contract import BackboneRequest, InputsSpec, MetricInputs, MetricResult, require_rows
from .params import ParamSpec, choice, file_path, optional, positive_int

CLIP_PARAMS: dict[str, ParamSpec[Any]] = {
    "weights": ParamSpec(None, file_path, "path to the OpenAI CLIP checkpoint (.pt), relative to the suite file; "
                                          "default: the lookup order in the README", affects_score=False),
    "precision": ParamSpec("fp32", choice("fp32", "fp16"), "fp32 (default) or fp16 (CUDA only; VBench's own "
                                                           "precision on GPUs, recorded)"),
    "batch_size": ParamSpec(None, optional(positive_int), "frames per forward pass; default 32",
                            affects_score=False),
}

# VBench reads every native frame of the video, unresized
VBENCH_NATIVE_FRAMES: Mapping[str, Any] = {"frames": None, "fps": None, "stride": 1, "resize": None, "start": 0.0}


def frame_scores(embeddings: np.ndarray) -> np.ndarray:
    """Per frame i >= 1: (max(0, cos(i-1, i)) + max(0, cos(0, i))) / 2 on L2-normalised embeddings (float64)."""
    rows = np.asarray(embeddings, dtype=np.float64)
    unit = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
    previous = np.einsum("ij,ij->i", unit[:-1], unit[1:])
    first = unit[1:] @ unit[0]
    return (np.maximum(previous, 0.0) + np.maximum(first, 0.0)) / 2.0


class BackgroundConsistency(Metric):
    name: ClassVar[str] = "background_consistency"
    description: ClassVar[str] = ("VBench background consistency: CLIP ViT-B/32 similarity of each frame to the "
                                  "previous and the first frame, frame-weighted over the set")
    higher_is_better: ClassVar[bool] = True
    spec: ClassVar[InputsSpec] = InputsSpec("single", min_frames=2)
    params: ClassVar[Mapping[str, ParamSpec[Any]]] = CLIP_PARAMS
    precision: ClassVar[str] = "fp32"
    value_range: ClassVar[tuple[float | None, float | None]] = (0.0, 1.0)
    reference_protocol: ClassVar[Mapping[str, Any]] = VBENCH_NATIVE_FRAMES
    reference_name: ClassVar[str] = "VBench background_consistency"
    backbone: ClassVar[str] = "openai_clip_b32"

    @classmethod
    def backbone_requests(cls, params: Mapping[str, Any]) -> tuple[BackboneRequest, ...]:
        return (BackboneRequest(cls.backbone, params.get("weights"), params.get("precision", "fp32"),
                                params.get("batch_size"), "embedding"),)

    def evaluate(self, inputs: MetricInputs) -> MetricResult:
        found = inputs.features("set", self.backbone_requests(self.options)[0])
        blocks = require_rows(found, self.name, "set")
        sums = np.zeros(len(blocks))
        counts = np.zeros(len(blocks))
        per_video: dict[str, float] = {}
        for index, (label, block) in enumerate(zip(found.labels, blocks, strict=True)):
            if block.shape[0] < 2:
                raise MetricError(f"{label}: {self.name} needs at least 2 frames per video, the clip has "
                                  f"{block.shape[0]}; use longer videos or raise 'frames' in the protocol")
            scores = frame_scores(block)
            sums[index], counts[index] = scores.sum(), scores.size
            per_video[label] = float(scores.mean())

        def resample(rng: np.random.Generator) -> float:
            drawn = rng.integers(0, sums.size, sums.size)
            return float(sums[drawn].sum() / counts[drawn].sum())

        value = float(sums.sum() / counts.sum())
        details = {"aggregation": "frame-weighted as VBench: sum of frame scores over all videos / number of scored "
                                  "frames (frames after the first); per-video scores are each video's mean",
                   "scored_frames": int(counts.sum()), "videos": len(blocks),
                   "mean_of_videos": float(np.mean(list(per_video.values())))}
        return MetricResult(value, per_video, details, (), resample, backbone=found.backbone)
