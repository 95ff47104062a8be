"""KID: unbiased MMD² with the cubic polynomial kernel on TF-FID Inception pool3 features of frames,
averaged over random subsets, by torch-fidelity's own routine (same subsets for the same seed)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from ..errors import MetricError
from ..features.backbones import InceptionBackbone
from ..stats import resample_blocks
from .base import MetricInputs, MetricResult, ParamSpec
from .distribution import BACKBONE_PARAMS, DistributionMetric, positive_int


def _seed(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"must be an integer >= 0, got {value!r}")
    return value


class KID(DistributionMetric):
    name: ClassVar[str] = "kid"
    description: ClassVar[str] = "Kernel Inception Distance over frames (unbiased; may be slightly negative)"
    higher_is_better: ClassVar[bool] = False
    backbone: ClassVar[str] = "inception"
    params: ClassVar[dict[str, ParamSpec]] = {
        **BACKBONE_PARAMS,
        "subsets": ParamSpec(100, positive_int, "number of random subsets"),
        "subset_size": ParamSpec(1000, positive_int, "samples per subset; capped at the smaller set's size"),
        "seed": ParamSpec(2020, _seed, "subset sampling seed (torch-fidelity's default)"),
    }

    def evaluate(self, inputs: MetricInputs) -> MetricResult:
        from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

        columns = slice(0, InceptionBackbone.FEATURE_DIM)
        ref_blocks, backbone = self.gather(inputs, "reference", columns)
        cand_blocks, _ = self.gather(inputs, "candidate", columns)
        reference, candidate = np.concatenate(ref_blocks), np.concatenate(cand_blocks)
        subset_size = min(self.options["subset_size"], reference.shape[0], candidate.shape[0])
        if subset_size < 2:
            raise MetricError(f"kid needs at least 2 samples per set, have {reference.shape[0]} and "
                              f"{candidate.shape[0]}")

        def kid(first: np.ndarray, second: np.ndarray) -> dict[str, float]:
            return kid_features_to_metric(
                torch.from_numpy(first), torch.from_numpy(second), kid_subsets=self.options["subsets"],
                kid_subset_size=min(subset_size, first.shape[0], second.shape[0]), rng_seed=self.options["seed"],
                verbose=False, kid_kernel="poly", kid_kernel_poly_degree=3, kid_kernel_poly_gamma=None,
                kid_kernel_poly_coef0=1)

        def resample(rng: np.random.Generator) -> float:
            return float(kid(resample_blocks(ref_blocks, rng), resample_blocks(cand_blocks, rng))[KEY_METRIC_KID_MEAN])

        result = kid(reference, candidate)
        warnings = []
        if subset_size < self.options["subset_size"]:
            warnings.append(f"kid subset size capped at {subset_size} (the smaller set's sample count)")
        details = {"backbone": backbone, "std_over_subsets": result[KEY_METRIC_KID_STD],
                   "subsets": self.options["subsets"], "subset_size": subset_size, "seed": self.options["seed"],
                   "samples": {"reference": int(reference.shape[0]), "candidate": int(candidate.shape[0])}}
        return MetricResult(float(result[KEY_METRIC_KID_MEAN]), {}, details, warnings, resample)
