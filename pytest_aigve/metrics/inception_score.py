"""IS: Inception Score of one set's frames from the TF-FID Inception's unbiased 1008 logits, split and
shuffled by torch-fidelity's own routine."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from ..errors import MetricError
from ..stats import resample_blocks
from .contract import InputsSpec, MetricInputs, MetricResult
from .distribution import BACKBONE_PARAMS, DistributionMetric
from .params import ParamSpec, nonnegative_int, positive_int


class InceptionScore(DistributionMetric):
    name: ClassVar[str] = "is"
    description: ClassVar[str] = "Inception Score over frames (TF-FID InceptionV3 logits)"
    higher_is_better: ClassVar[bool] = True
    value_range: ClassVar[tuple[float | None, float | None]] = (1.0, None)
    spec: ClassVar[InputsSpec] = InputsSpec("single")
    backbone: ClassVar[str] = "inception"
    output: ClassVar[str | None] = "logits_unbiased"
    params: ClassVar[dict[str, ParamSpec[Any]]] = {
        **BACKBONE_PARAMS,
        "splits": ParamSpec(10, positive_int, "number of splits (torch-fidelity's default 10)"),
        "seed": ParamSpec(2020, nonnegative_int, "shuffle seed (torch-fidelity's default)"),
    }

    def evaluate(self, inputs: MetricInputs) -> MetricResult:
        from torch_fidelity.metric_isc import KEY_METRIC_ISC_MEAN, KEY_METRIC_ISC_STD, isc_features_to_metric

        blocks, _, backbone = self.gather(inputs, "set")
        logits = np.concatenate(blocks)
        if logits.shape[0] < self.options["splits"]:
            raise MetricError(f"is with {self.options['splits']} splits needs at least that many frames, have "
                              f"{logits.shape[0]}; lower 'splits' or raise 'frames'")

        def score(values: np.ndarray) -> dict[str, float]:
            return isc_features_to_metric(torch.from_numpy(values), splits=self.options["splits"],
                                          shuffle=True, rng_seed=self.options["seed"])

        def resample(rng: np.random.Generator) -> float:
            return float(score(resample_blocks(blocks, rng))[KEY_METRIC_ISC_MEAN])

        result = score(logits)
        details = {"std_over_splits": result[KEY_METRIC_ISC_STD], "splits": self.options["splits"],
                   "samples": int(logits.shape[0])}
        return MetricResult(float(result[KEY_METRIC_ISC_MEAN]), {}, details, (), resample, backbone=backbone)
