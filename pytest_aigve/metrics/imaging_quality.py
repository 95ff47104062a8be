"""Imaging quality as VBench defines it (vbench 0.1.5 `imaging_quality.technical_quality`).

Every frame, preprocessed as VBench does (`preprocess`: by default the longer side to 512 when longer), is scored by
MUSIQ with pyiqa's SPAQ checkpoint (features/musiq.py, backbone musiq_spaq with the `preprocess` option): about
0-100, higher is better.
Per video: the mean of its frames' scores; VBench keeps that on the 0-100 scale and divides the mean over videos by
100. Here every video's value is divided by 100 too (the per-video values are on the set value's scale); the set
value, their mean, is VBench's number. Frame scores go through the feature cache: a warm re-run computes nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

from ..features.musiq import PREPROCESS_MODES
from ..gate import Tolerance
from .base import Metric, _mean_result
from .contract import BackboneRequest, InputsSpec, MetricInputs, MetricResult, require_rows
from .distribution import BACKBONE_PARAMS
from .params import ParamSpec, choice

MUSIQ_SCALE = 100.0  # VBench divides by 100: SPAQ's MOS range is 0-100


class ImagingQuality(Metric):
    name: ClassVar[str] = "imaging_quality"
    description: ClassVar[str] = ("VBench imaging quality: MUSIQ (SPAQ) score per frame, mean over frames and videos, "
                                  "/ 100")
    higher_is_better: ClassVar[bool] = True
    spec: ClassVar[InputsSpec] = InputsSpec("single")
    params: ClassVar[Mapping[str, ParamSpec[Any]]] = {
        "preprocess": ParamSpec("longer", choice(*PREPROCESS_MODES),
                                "VBench's imaging_quality_preprocessing_mode: longer (default: the longer side to "
                                "512 when longer), shorter, shorter_centercrop (shorter, then a 512x512 crop), "
                                "none (native frames)"),
        "weights": BACKBONE_PARAMS["weights"],
        "batch_size": ParamSpec(None, BACKBONE_PARAMS["batch_size"].check,
                                "frames per forward pass (default 8; frames of one size share a batch)",
                                affects_score=False),
    }
    precision: ClassVar[str] = "fp32"
    default_tolerance: ClassVar[Tolerance | None] = Tolerance(abs=0.005)  # half a MUSIQ point
    default_max_drop: ClassVar[Tolerance | None] = Tolerance(abs=0.05)  # five MUSIQ points on one video
    reference_protocol: ClassVar[Mapping[str, Any]] = {"frames": None, "fps": None, "stride": 1, "resize": None,
                                                       "start": 0.0}
    reference_name: ClassVar[str] = "VBench imaging_quality"

    @classmethod
    def backbone_requests(cls, params: Mapping[str, Any]) -> tuple[BackboneRequest, ...]:
        return (BackboneRequest("musiq_spaq", params.get("weights"), "fp32", params.get("batch_size"), "score",
                                options=(("preprocess", params.get("preprocess", "longer")),)),)

    def evaluate(self, inputs: MetricInputs) -> MetricResult:
        found = inputs.features("set", self.backbone_requests(self.options)[0])
        blocks = require_rows(found, self.name, "set")
        scores = {label: float(block[:, 0].mean()) / MUSIQ_SCALE
                  for label, block in zip(found.labels, blocks, strict=True)}
        result = _mean_result(scores, self.name)
        details = {**result.details, "frames": sum(int(block.shape[0]) for block in blocks),
                   "preprocess": self.options["preprocess"]}
        return dataclasses.replace(result, details=details, backbone=found.backbone)
