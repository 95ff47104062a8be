"""BLIP-Sim: text-video alignment as AIGVE-Tool's BlipSimScore computes it. Per video, the mean over the
protocol's frames of BLIP's image-text contrastive (ITC) cosine similarity between the frame and the video's prompt
(`Salesforce/blip-itm-base-coco`, transformers' BlipForImageTextRetrieval with `use_itm_head=False`); the set
value is the mean over videos, with a bootstrap interval over videos.

The frame and prompt embeddings come from two backbones (features/blip.py) cached apart: a re-run with new prompts
for the same videos runs only the text encoder, and one prompt shared by many videos is encoded once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, ClassVar

import numpy as np

from ..errors import MetricError
from ..features.backbones import PRECISIONS
from .base import Metric, _mean_result
from .contract import BackboneRequest, InputsSpec, MetricInputs, MetricResult, require_rows
from .params import ParamSpec, choice, file_path, optional, positive_int

IMAGE_BACKBONE = "blip_itm_image"
TEXT_BACKBONE = "blip_itm_text"


class BlipSim(Metric):
    name: ClassVar[str] = "blip_sim"
    description: ClassVar[str] = ("BLIP ITC cosine similarity of each frame and the video's prompt "
                                  "(Salesforce/blip-itm-base-coco), mean over frames")
    higher_is_better: ClassVar[bool] = True
    value_range: ClassVar[tuple[float | None, float | None]] = (-1.0, 1.0)
    spec: ClassVar[InputsSpec] = InputsSpec("single", needs_prompts=True)
    precision: ClassVar[str] = "fp32"
    # AIGVE-Tool reads every native frame (cv2) and lets the processor resize
    reference_protocol: ClassVar[Mapping[str, Any]] = {"frames": None, "fps": None, "stride": 1, "resize": None,
                                                       "start": 0.0}
    reference_name: ClassVar[str] = "AIGVE-Tool BlipSimScore"
    params: ClassVar[Mapping[str, ParamSpec[Any]]] = {
        "weights": ParamSpec(None, file_path, "path to a blip-itm-base-coco style folder, relative to the suite "
                                              "file; default: the lookup order in the README",
                             affects_score=False),  # the folder's digest is recorded
        "precision": ParamSpec("fp32", choice(*PRECISIONS), "fp32 (default, comparable) or bf16 (CUDA only, "
                                                            "faster, recorded)"),
        "batch_size": ParamSpec(None, optional(positive_int), "frames (and prompts) per forward pass; default: "
                                                              "the backbones' (32 frames, 64 prompts)",
                                affects_score=False),
    }

    @classmethod
    def backbone_requests(cls, params: Mapping[str, Any]) -> tuple[BackboneRequest, ...]:
        weights, precision, batch = params.get("weights"), params.get("precision", "fp32"), params.get("batch_size")
        return (BackboneRequest(IMAGE_BACKBONE, weights, precision, batch),
                BackboneRequest(TEXT_BACKBONE, weights, precision, batch))

    def evaluate(self, inputs: MetricInputs) -> MetricResult:
        image_request, text_request = self.backbone_requests(self.options)
        frames = inputs.features("set", image_request)
        require_rows(frames, self.name, "set")
        prompts = inputs.text_features("set", text_request)
        text_by_label = {item.label: np.asarray(item.features, dtype=np.float64).ravel() for item in prompts.videos}
        scores: dict[str, float] = {}
        frame_count, dim = 0, 0
        for item in frames.videos:
            text = text_by_label.get(item.label)
            if text is None:  # suite loading lists videos without a prompt; reaching here is a bug
                raise MetricError(f"{self.name}: video {item.label} has no prompt")
            rows = np.atleast_2d(np.asarray(item.features, dtype=np.float64))  # unit rows: dot = cosine
            scores[item.label] = float((rows @ text).mean())
            frame_count, dim = frame_count + rows.shape[0], rows.shape[1]
        result = _mean_result(scores, self.name)
        # one record for both halves: the same folder, digest and precision; the input names both preprocessings
        backbone = replace(frames.backbone, name="blip-itm-itc",
                           input=f"{frames.backbone.input}; {prompts.backbone.input}")
        details = {**result.details, "frames": frame_count, "embedding_dim": dim}
        return replace(result, details=details, backbone=backbone)
