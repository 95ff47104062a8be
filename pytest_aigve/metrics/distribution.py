"""Shared parts of the set-level metrics (FID, KID, IS, FVD, CD-FVD): parameters, feature gathering, checks."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ..errors import MetricError
from ..features.backbones import PRECISIONS
from ..stats import FrechetBootstrap, frechet_distance_from_features
from .base import BackboneRequest, InputKind, Metric, MetricInputs, MetricResult, ParamSpec, SetSamples


def weights_path(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ValueError(f"must be a file path, got {value!r}")
    return value


def precision(value: Any) -> str:
    if value not in PRECISIONS:
        raise ValueError(f"must be one of {', '.join(PRECISIONS)}, got {value!r}")
    return str(value)


def positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"must be a positive integer, got {value!r}")
    return value


BACKBONE_PARAMS: dict[str, ParamSpec] = {
    "weights": ParamSpec(None, weights_path, "path to the weights file, relative to the suite file; "
                                             "default: the lookup order in the README"),
    "precision": ParamSpec("fp32", precision, "fp32 (default, comparable) or bf16 (faster on GPUs, recorded)"),
    "batch_size": ParamSpec(16, positive_int, "videos (or frames, for Inception) per forward pass"),
}


def small_set_warning(metric: str, counts: dict[str, int], dim: int) -> str | None:
    """One warning naming every set's sample count when any of them is too small for a full-rank covariance."""
    if all(count > dim for count in counts.values()):
        return None
    sizes = ", ".join(f"{role} {count}" for role, count in counts.items())
    return (f"{metric} on few samples ({sizes}) with {dim}-d features: a covariance from no more samples than "
            "dimensions is singular and the value is strongly biased upwards (Chong & Forsyth 2020); compare only "
            "runs with the same set sizes, or use KID")


class DistributionMetric(Metric):
    """A score of one set's feature distribution (IS) or of two sets' (FID, KID, FVD)."""

    inputs: ClassVar[InputKind] = "sets"
    backbone: ClassVar[str]
    params: ClassVar[dict[str, ParamSpec]] = BACKBONE_PARAMS
    precision: ClassVar[str] = "fp32"

    def request(self) -> BackboneRequest:
        return BackboneRequest(self.backbone, self.options.get("weights"), self.options.get("precision", "fp32"),
                               self.options.get("batch_size", 16))

    bootstrap_resamples: ClassVar[int] = 200

    def gather(self, inputs: MetricInputs, role: str, columns: slice = slice(None)
               ) -> tuple[list[np.ndarray], dict[str, Any]]:
        """Per-video feature blocks (rows: frames, or one clip) of a role's set, and the backbone's description."""
        per_video, backbone = inputs.features(role, self.request())
        if not per_video:
            raise MetricError(f"{self.name}: no video of the {role} set could be used")
        return [np.atleast_2d(f)[:, columns] for f in per_video], backbone


class FrechetMetric(DistributionMetric):
    """Fréchet distance between the reference and candidate feature distributions."""

    higher_is_better: ClassVar[bool] = False
    value_range: ClassVar[tuple[float | None, float | None]] = (0.0, None)
    ddof: ClassVar[int]  # the covariance normalisation of the reference implementation
    feature_slice: ClassVar[slice] = slice(None)

    def evaluate(self, inputs: MetricInputs) -> MetricResult:
        ref_blocks, backbone = self.gather(inputs, "reference", self.feature_slice)
        cand_blocks, _ = self.gather(inputs, "candidate", self.feature_slice)
        reference, candidate = np.concatenate(ref_blocks), np.concatenate(cand_blocks)
        try:
            result = frechet_distance_from_features(reference, candidate, self.ddof)
        except ValueError as exc:
            raise MetricError(f"{self.name}: {exc}") from None
        dim = reference.shape[1]
        small = small_set_warning(self.name, {"reference": reference.shape[0], "candidate": candidate.shape[0]},
                                  dim)
        warnings = [small] if small else []
        details = {"backbone": backbone, "samples": {"reference": int(reference.shape[0]),
                                                     "candidate": int(candidate.shape[0])},
                   "feature_dim": int(dim), "covariance_ddof": self.ddof, "trace_sqrt": result.trace_sqrt}
        # exact resamples that reuse the cross-Gram matrix and per-row norms (stats.FrechetBootstrap): the same
        # draws and values as recomputing the distance on resample_blocks, at a fraction of the cost; with
        # more samples than dimensions each resample still decomposes two d×d covariances
        resample = FrechetBootstrap(ref_blocks, cand_blocks, self.ddof).resample
        labels = inputs.used_labels("candidate")
        samples = None
        if len(labels) == len(cand_blocks):
            columns = self.feature_slice
            samples = SetSamples(ref_blocks, dict(zip(labels, cand_blocks, strict=True)),
                                 lambda first, second: frechet_distance_from_features(first, second, self.ddof).value,
                                 lambda raw: np.atleast_2d(raw)[:, columns], self.request())
        return MetricResult(result.value, {}, details, warnings, resample, samples)
