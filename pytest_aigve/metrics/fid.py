"""FID: Fréchet distance of TF-FID InceptionV3 pool3 features of frames (every frame of every clip is a
sample), covariance with N-1 as in pytorch-fid and torch-fidelity."""

from __future__ import annotations

from typing import ClassVar

from .distribution import FrechetMetric


class FID(FrechetMetric):
    name: ClassVar[str] = "fid"
    description: ClassVar[str] = "Fréchet Inception Distance over frames (TF-FID InceptionV3 pool3, 2048-d)"
    backbone: ClassVar[str] = "inception"
    ddof: ClassVar[int] = 1
    output: ClassVar[str | None] = "pool3"
