"""Aesthetic quality as VBench defines it (vbench.aesthetic_quality.laion_aesthetic): the LAION aesthetic
predictor v1 on every frame.

Per frame: the OpenAI CLIP ViT-L/14 image embedding (VBench's clip_transform(224) input), cast to float32 and
L2-normalised, through LAION's Linear(768, 1) head (sa_0_4_vit_l_14_linear.pth), divided by 10. Per video: the mean
over its frames. Set value: the mean over videos (each video weighs the same, as in VBench).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from .background_consistency import CLIP_PARAMS, VBENCH_NATIVE_FRAMES
from .base import Metric, _mean_result
from .contract import BackboneRequest, InputsSpec, MetricInputs, MetricResult, require_rows
from .params import ParamSpec

SCORE_SCALE = 10.0  # VBench divides the head's score (about 1..10) by 10


class AestheticQuality(Metric):
    name: ClassVar[str] = "aesthetic_quality"
    description: ClassVar[str] = ("VBench aesthetic quality: LAION aesthetic predictor v1 on CLIP ViT-L/14 frame "
                                  "embeddings, / 10, mean over frames and videos")
    higher_is_better: ClassVar[bool] = True
    spec: ClassVar[InputsSpec] = InputsSpec("single")
    params: ClassVar[Mapping[str, ParamSpec[Any]]] = {
        **CLIP_PARAMS,
        "weights": ParamSpec(None, CLIP_PARAMS["weights"].check,
                             "path to OpenAI's ViT-L-14.pt, relative to the suite file; LAION's head "
                             "(sa_0_4_vit_l_14_linear.pth) is read from the same folder, else $AIGVE_WEIGHTS_DIR or "
                             "the torch hub cache; default: the lookup order in the README", affects_score=False),
    }
    precision: ClassVar[str] = "fp32"
    reference_protocol: ClassVar[Mapping[str, Any]] = VBENCH_NATIVE_FRAMES
    reference_name: ClassVar[str] = "VBench aesthetic_quality"
    backbone: ClassVar[str] = "laion_aesthetic"

    @classmethod
    def backbone_requests(cls, params: Mapping[str, Any]) -> tuple[BackboneRequest, ...]:
        return (BackboneRequest(cls.backbone, params.get("weights"), params.get("precision", "fp32"),
                                params.get("batch_size"), "score"),)

    def evaluate(self, inputs: MetricInputs) -> MetricResult:
        found = inputs.features("set", self.backbone_requests(self.options)[0])
        blocks = require_rows(found, self.name, "set")
        scores = {label: float(np.mean(np.asarray(block, dtype=np.float64)[:, 0] / SCORE_SCALE))
                  for label, block in zip(found.labels, blocks, strict=True)}
        result = _mean_result(scores, self.name)
        details = {**result.details, "precision": self.options["precision"],
                   "aggregation": "per frame: head score / 10; per video: mean over frames; set: mean over videos"}
        return MetricResult(result.value, scores, details, (), result.resample, backbone=found.backbone)
