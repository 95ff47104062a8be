"""IS: Inception Score of one set's frames from the TF-FID Inception's unbiased 1008 logits, split and
shuffled by torch-fidelity's own routine."""

from __future__ import annotations

from typing import ClassVar

import torch

from ..errors import MetricError
from ..features.backbones import InceptionBackbone
from .base import InputKind, MetricInputs, MetricResult, ParamSpec
from .distribution import BACKBONE_PARAMS, DistributionMetric, positive_int
from .kid import _seed


class InceptionScore(DistributionMetric):
    name: ClassVar[str] = "is"
    description: ClassVar[str] = "Inception Score over frames (TF-FID InceptionV3 logits)"
    higher_is_better: ClassVar[bool] = True
    inputs: ClassVar[InputKind] = "single"
    backbone: ClassVar[str] = "inception"
    params: ClassVar[dict[str, ParamSpec]] = {
        **BACKBONE_PARAMS,
        "splits": ParamSpec(10, positive_int, "number of splits (torch-fidelity's default 10)"),
        "seed": ParamSpec(2020, _seed, "shuffle seed (torch-fidelity's default)"),
    }

    def evaluate(self, inputs: MetricInputs) -> MetricResult:
        from torch_fidelity.metric_isc import KEY_METRIC_ISC_MEAN, KEY_METRIC_ISC_STD, isc_features_to_metric

        features, backbone = self.gather(inputs, "set")
        logits = features[:, InceptionBackbone.FEATURE_DIM:]
        if logits.shape[0] < self.options["splits"]:
            raise MetricError(f"is with {self.options['splits']} splits needs at least that many frames, have "
                              f"{logits.shape[0]}; lower 'splits' or raise 'frames'")
        result = isc_features_to_metric(torch.from_numpy(logits), splits=self.options["splits"], shuffle=True,
                                        rng_seed=self.options["seed"])
        details = {"backbone": backbone, "std_over_splits": result[KEY_METRIC_ISC_STD],
                   "splits": self.options["splits"], "samples": int(logits.shape[0])}
        return MetricResult(float(result[KEY_METRIC_ISC_MEAN]), {}, details)
