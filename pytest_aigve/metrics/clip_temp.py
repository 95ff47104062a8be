"""CLIPTemp: per video, the mean cosine between the CLIP image embeddings of consecutive frames of the protocol's
clip (temporal consistency; no prompt); the set's value is the mean over videos (bootstrap interval over videos).

It equals the AIGVE toolkit's CLIPTempScore (`resize: aigve`). It reads the same image backbone and feature
cache as clip_sim: both on one set run the image tower once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, ClassVar

import numpy as np

from ..errors import MetricError
from ..features.clip_hf import CLIP_MODELS
from .base import Metric, _mean_result
from .clip_sim import CLIP_PARAMS, DEFAULT_MODEL, image_request, unit_rows
from .contract import BackboneRequest, InputsSpec, MetricInputs, MetricResult, require_rows
from .params import ParamSpec


def consecutive_cosines(block: np.ndarray) -> np.ndarray:
    """Cosine of each frame's embedding with the next frame's: T - 1 values."""
    rows = unit_rows(block)
    return np.einsum("ij,ij->i", rows[:-1], rows[1:])


class CLIPTemp(Metric):
    name: ClassVar[str] = "clip_temp"
    description: ClassVar[str] = "temporal consistency: mean cosine of consecutive frames' CLIP image embeddings"
    higher_is_better: ClassVar[bool] = True
    value_range: ClassVar[tuple[float | None, float | None]] = (-1.0, 1.0)
    spec: ClassVar[InputsSpec] = InputsSpec("single", min_frames=2)
    precision: ClassVar[str] = "fp32"
    params: ClassVar[Mapping[str, ParamSpec[Any]]] = CLIP_PARAMS

    @classmethod
    def backbone_requests(cls, params: Mapping[str, Any]) -> tuple[BackboneRequest, ...]:
        image_key, _ = CLIP_MODELS[params.get("model", DEFAULT_MODEL)]
        return (image_request(params, image_key),)

    def evaluate(self, inputs: MetricInputs) -> MetricResult:
        images = inputs.features("set", self.backbone_requests(self.options)[0])
        blocks = require_rows(images, self.name, "set")
        scores: dict[str, float] = {}
        for video, block in zip(images.videos, blocks, strict=True):
            if block.shape[0] < self.spec.min_frames:
                raise MetricError(f"{video.video.path}: clip_temp needs at least 2 frames per clip, the protocol "
                                  f"gave {block.shape[0]}; raise 'frames' in the protocol")
            scores[video.label] = float(consecutive_cosines(block).mean())
        result = _mean_result(scores, self.name)
        return replace(result, backbone=images.backbone)
