"""FasterVQA: no-reference video quality in [0, 1] (Wu et al., FAST-VQA / FasterVQA), equal to FasterVQA as
vendored by objective-metrics 1.2.2 (`modules/nr_vqa/fastvqa.py`, metric "FasterVQA") for the same fragments.

Per video, the backbone `fastervqa` (features/dover.py) takes 32 consecutive frames centred in the video (the
reference script's test sampling), splices 7x7 fragments of 32 px (one random offset per fragment and 8 frames)
and returns the mean of the head's outputs r. The score is FAST-VQA's `sigmoid_rescale` with the published
FasterVQA statistics: sigmoid((r - 0.14759505) / 0.03613452). The set value is the mean over videos.

The reference draws fragment offsets unseeded; `seed` (default 0) seeds each video's own generator (recorded in
`details` and part of the backbone identity, so cached features made with another seed are never reused). The
protocol should give every frame (`frames: null`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

from ..gate import Tolerance
from .base import Metric, _mean_result
from .contract import BackboneRequest, InputsSpec, MetricInputs, MetricResult, require_rows
from .distribution import BACKBONE_PARAMS
from .dover import NATIVE_FRAMES, sigmoid
from .params import ParamSpec, nonnegative_int

FASTERVQA_MEAN, FASTERVQA_STD = 0.14759505, 0.03613452  # FAST-VQA's mean_stds["FasterVQA"]


def fastervqa_score(raw: float) -> float:
    return sigmoid((raw - FASTERVQA_MEAN) / FASTERVQA_STD)


class FasterVQA(Metric):
    name: ClassVar[str] = "fastvqa"
    description: ClassVar[str] = "FasterVQA no-reference video quality in [0, 1]"
    higher_is_better: ClassVar[bool] = True
    spec: ClassVar[InputsSpec] = InputsSpec("single")
    value_range: ClassVar[tuple[float | None, float | None]] = (0.0, 1.0)
    precision: ClassVar[str] = "fp32"
    params: ClassVar[Mapping[str, ParamSpec[Any]]] = {
        "seed": ParamSpec(0, nonnegative_int, "seed of each video's fragment offsets (FasterVQA draws them "
                                              "unseeded); default 0"),
        "weights": BACKBONE_PARAMS["weights"],
    }
    default_tolerance: ClassVar[Tolerance | None] = Tolerance(abs=0.01)
    default_max_drop: ClassVar[Tolerance | None] = Tolerance(abs=0.1)
    reference_protocol: ClassVar[Mapping[str, Any]] = NATIVE_FRAMES
    reference_name: ClassVar[str] = "FasterVQA (FAST-VQA v2.0.0, objective-metrics 1.2.2)"

    @classmethod
    def backbone_requests(cls, params: Mapping[str, Any]) -> tuple[BackboneRequest, ...]:
        return (BackboneRequest("fastervqa", params.get("weights"), options=(("seed", params.get("seed", 0)),)),)

    def evaluate(self, inputs: MetricInputs) -> MetricResult:
        found = inputs.features("set", self.backbone_requests(self.options)[0])
        blocks = require_rows(found, self.name, "set")
        scores = {label: fastervqa_score(float(block[0, 0])) for label, block in zip(found.labels, blocks, strict=True)}
        result = _mean_result(scores, self.name)
        raw = float(sum(float(block[0, 0]) for block in blocks) / len(blocks))  # mean raw output over videos
        details = {**result.details, "seed": self.options["seed"], "raw": raw}
        return dataclasses.replace(result, details=details, backbone=found.backbone)
