"""DOVER: no-reference video quality in [0, 1] (Wu et al., ICCV 2023), equal to DOVER v0.1.0 as vendored by
objective-metrics 1.2.2 (`modules/nr_vqa/dover.py`) for the same sampled views.

Per video, the backbone `dover` (features/dover.py) draws DOVER's two views from every frame and returns the mean
raw output of each branch: t (technical: Swin-3D on 7x7 fragments of `clips` 32-frame clips) and a (aesthetic:
ConvNeXt-3D on 32 frames resized to 224²). Scores, with DOVER's own constants (`fuse_results`):

    technical = sigmoid((t - 0.1107) / 0.07355)
    aesthetic = sigmoid((a + 0.08285) / 0.03774)
    overall   = sigmoid((t - 0.1107) / 0.07355 * 0.6104 + (a + 0.08285) / 0.03774 * 0.3896)

`overall` is the vendored reference's score; the two branch scores are the upstream repository's later
`fuse_results`, from the same constants. The set value is the mean over videos.

Decisions:
  - one metric with `output: overall|technical|aesthetic` (as the issue suggests) rather than three names: the
    three are views of one network run, so checks on different outputs share one cached backbone row per video
    (a warm run computes nothing), and a suite switches output without learning new names.
  - DOVER samples at random and unseeded; here `seed` (default 0) seeds each video's own generators, so a score is
    reproducible and part of the baseline fingerprint. `clips` (default 3, DOVER's) is the technical view's
    number of clips; `antialias` (default true: what DOVER's torchvision Resize does since torchvision 0.17) is
    the aesthetic resize's. All three are recorded in `details` and name the backbone's identity, so cached
    features made with other settings are never reused.
  - the protocol should give every frame (`frames: null`): DOVER samples its own frames from the whole video.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from ..gate import Tolerance
from .base import Metric, _mean_result
from .contract import BackboneRequest, InputsSpec, MetricInputs, MetricResult, require_rows
from .distribution import BACKBONE_PARAMS
from .params import ParamSpec, choice, nonnegative_int, positive_int

TECHNICAL_MEAN, TECHNICAL_STD = 0.1107, 0.07355
AESTHETIC_MEAN, AESTHETIC_STD = -0.08285, 0.03774
TECHNICAL_WEIGHT, AESTHETIC_WEIGHT = 0.6104, 0.3896
OUTPUTS = ("overall", "technical", "aesthetic")
NATIVE_FRAMES: Mapping[str, Any] = {"frames": None, "fps": None, "stride": 1, "resize": None, "start": 0.0}


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, got {value!r}")
    return value


def sigmoid(x: float) -> float:
    return float(1 / (1 + np.exp(-x)))


def dover_scores(technical: float, aesthetic: float) -> dict[str, float]:
    """DOVER's scores from the raw branch outputs (in the reference's order of operations)."""
    t = (technical - TECHNICAL_MEAN) / TECHNICAL_STD
    a = (aesthetic - AESTHETIC_MEAN) / AESTHETIC_STD
    fused = (technical - TECHNICAL_MEAN) / TECHNICAL_STD * TECHNICAL_WEIGHT + \
        (aesthetic - AESTHETIC_MEAN) / AESTHETIC_STD * AESTHETIC_WEIGHT
    return {"overall": sigmoid(fused), "technical": sigmoid(t), "aesthetic": sigmoid(a)}


class Dover(Metric):
    name: ClassVar[str] = "dover"
    description: ClassVar[str] = "DOVER no-reference video quality in [0, 1] (overall, technical or aesthetic)"
    higher_is_better: ClassVar[bool] = True
    spec: ClassVar[InputsSpec] = InputsSpec("single")
    value_range: ClassVar[tuple[float | None, float | None]] = (0.0, 1.0)
    precision: ClassVar[str] = "fp32"
    params: ClassVar[Mapping[str, ParamSpec[Any]]] = {
        "output": ParamSpec("overall", choice(*OUTPUTS), "overall (DOVER's fused score, default), technical or "
                                                         "aesthetic"),
        "seed": ParamSpec(0, nonnegative_int, "seed of each video's frame and fragment sampling (DOVER samples "
                                              "unseeded); default 0"),
        "clips": ParamSpec(3, positive_int, "32-frame clips of the technical view (DOVER's 3)"),
        "antialias": ParamSpec(True, boolean, "antialiased resize of the aesthetic view (torchvision's default "
                                              "since 0.17: true)"),
        "weights": BACKBONE_PARAMS["weights"],
    }
    default_tolerance: ClassVar[Tolerance | None] = Tolerance(abs=0.01)
    default_max_drop: ClassVar[Tolerance | None] = Tolerance(abs=0.1)
    reference_protocol: ClassVar[Mapping[str, Any]] = NATIVE_FRAMES
    reference_name: ClassVar[str] = "DOVER v0.1.0 (objective-metrics 1.2.2)"

    @classmethod
    def settings(cls, params: Mapping[str, Any]) -> dict[str, Any]:
        return {"seed": params.get("seed", 0), "clips": params.get("clips", 3),
                "antialias": params.get("antialias", True)}

    @classmethod
    def backbone_requests(cls, params: Mapping[str, Any]) -> tuple[BackboneRequest, ...]:
        return (BackboneRequest("dover", params.get("weights"), options=tuple(sorted(cls.settings(params).items()))),)

    def evaluate(self, inputs: MetricInputs) -> MetricResult:
        found = inputs.features("set", self.backbone_requests(self.options)[0])
        blocks = require_rows(found, self.name, "set")
        output = self.options["output"]
        scores = {label: dover_scores(float(block[0, 0]), float(block[0, 1]))[output]
                  for label, block in zip(found.labels, blocks, strict=True)}
        result = _mean_result(scores, self.name)
        # the raw branch outputs (means over videos) show where a score sits on DOVER's sigmoids
        raw = {f"raw_{branch}": float(np.mean([block[0, column] for block in blocks]))
               for column, branch in enumerate(("technical", "aesthetic"))}
        details = {**result.details, "output": output, **self.settings(self.options), **raw}
        return dataclasses.replace(result, details=details, backbone=found.backbone)
