"""Shared parts of the set-level metrics (FID, KID, IS, FVD, CD-FVD): parameters, feature gathering, checks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from ..errors import MetricError
from ..features.backbones import PRECISIONS
from ..stats import FrechetBootstrap, frechet_distance_from_features
from .base import Metric
from .contract import (
    BackboneInfo,
    BackboneRequest,
    InputsSpec,
    MetricInputs,
    MetricResult,
    Role,
    SetSamples,
    require_rows,
)
from .params import ParamSpec, choice, file_path, optional, positive_int

BACKBONE_PARAMS: dict[str, ParamSpec[Any]] = {
    "weights": ParamSpec(None, file_path, "path to the weights file, relative to the suite file; default: the lookup "
                                          "order in the README", affects_score=False),  # its SHA-256 is recorded
    "precision": ParamSpec("fp32", choice(*PRECISIONS), "fp32 (default, comparable) or bf16 (faster on GPUs, "
                                                        "recorded)"),
    "batch_size": ParamSpec(None, optional(positive_int), "samples per forward pass (frames for Inception, clips "
                                                          "otherwise); default: the backbone's (Inception 64, as "
                                                          "torch-fidelity; 16 for video networks)",
                            affects_score=False),
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

    spec: ClassVar[InputsSpec] = InputsSpec("sets")
    backbone: ClassVar[str]
    output: ClassVar[str | None] = None  # the backbone's named output this metric reads; None: all
    params: ClassVar[Mapping[str, ParamSpec[Any]]] = BACKBONE_PARAMS
    precision: ClassVar[str] = "fp32"
    bootstrap_resamples: ClassVar[int] = 200

    @classmethod
    def backbone_requests(cls, params: Mapping[str, Any]) -> tuple[BackboneRequest, ...]:
        return (BackboneRequest(cls.backbone, params.get("weights"), params.get("precision", "fp32"),
                                params.get("batch_size"), cls.output),)

    def request(self) -> BackboneRequest:
        return self.backbone_requests(self.options)[0]

    def gather(self, inputs: MetricInputs, role: Role) -> tuple[list[np.ndarray], list[str], BackboneInfo]:
        """Per-video feature blocks (rows: frames, or one clip) of a role's set, their labels, and the backbone."""
        found = inputs.features(role, self.request())
        return require_rows(found, self.name, role), found.labels, found.backbone


class FrechetMetric(DistributionMetric):
    """Fréchet distance between the reference and candidate feature distributions."""

    higher_is_better: ClassVar[bool] = False
    value_range: ClassVar[tuple[float | None, float | None]] = (0.0, None)
    ddof: ClassVar[int]  # the covariance normalisation of the reference implementation

    def evaluate(self, inputs: MetricInputs) -> MetricResult:
        ref_blocks, _, backbone = self.gather(inputs, "reference")
        cand_blocks, labels, _ = self.gather(inputs, "candidate")
        reference, candidate = np.concatenate(ref_blocks), np.concatenate(cand_blocks)
        try:
            result = frechet_distance_from_features(reference, candidate, self.ddof)
        except ValueError as exc:
            raise MetricError(f"{self.name}: {exc}") from None
        dim = reference.shape[1]
        small = small_set_warning(self.name, {"reference": reference.shape[0], "candidate": candidate.shape[0]},
                                  dim)
        details = {"samples": {"reference": int(reference.shape[0]), "candidate": int(candidate.shape[0])},
                   "feature_dim": int(dim), "covariance_ddof": self.ddof, "trace_sqrt": result.trace_sqrt}
        # exact resamples that reuse the cross-Gram matrix and per-row norms (stats.FrechetBootstrap): the same
        # draws and values as recomputing the distance on resample_blocks, at a fraction of the cost
        resample = FrechetBootstrap(ref_blocks, cand_blocks, self.ddof).resample
        samples = SetSamples(ref_blocks, dict(zip(labels, cand_blocks, strict=True)),
                             lambda first, second: frechet_distance_from_features(first, second, self.ddof).value,
                             self.request())
        return MetricResult(result.value, {}, details, [small] if small else [], resample, backbone=backbone,
                            samples=samples)
