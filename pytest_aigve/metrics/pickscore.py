"""PickScore: per frame, PickScore_v1's `logit_scale.exp() * cos(text embedding, image embedding)` as the
official PickScore README computes it (the model read with the laion/CLIP-ViT-H-14-laion2B-s32B-b79K processor);
per video the mean over the protocol's frames, for the set the mean over videos (bootstrap interval over videos).
This is the AIGVE toolkit's PickScore with its logit_scale option (`resize: aigve` for its stretched frames).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, ClassVar

from ..features.clip_hf import PICKSCORE_KEYS
from .base import Metric, _mean_result
from .clip_sim import FOLDER_PARAMS, frame_text_cosines, image_request, text_request
from .contract import BackboneRequest, InputsSpec, MetricInputs, MetricResult
from .params import ParamSpec


class PickScore(Metric):
    name: ClassVar[str] = "pickscore"
    description: ClassVar[str] = "text-video preference: PickScore_v1 (scaled prompt-frame cosine), mean over frames"
    higher_is_better: ClassVar[bool] = True
    spec: ClassVar[InputsSpec] = InputsSpec("single", needs_prompts=True)
    precision: ClassVar[str] = "fp32"
    params: ClassVar[Mapping[str, ParamSpec[Any]]] = FOLDER_PARAMS

    @classmethod
    def backbone_requests(cls, params: Mapping[str, Any]) -> tuple[BackboneRequest, ...]:
        image_key, text_key = PICKSCORE_KEYS
        return image_request(params, image_key), text_request(params, text_key)

    def evaluate(self, inputs: MetricInputs) -> MetricResult:
        image, text = self.backbone_requests(self.options)
        images = inputs.features("set", image)
        texts = inputs.text_features("set", text)
        scores: dict[str, float] = {}
        logit_scale = float("nan")
        for label, (cosines, logit_scale) in frame_text_cosines(images, texts, self.name).items():
            scores[label] = float((logit_scale * cosines).mean())
        result = _mean_result(scores, self.name)
        details = {**result.details, "logit_scale": logit_scale, "text_encoder": texts.backbone.name}
        return replace(result, details=details, backbone=images.backbone)
