"""FVD with torchvision's R3D-18 (Kinetics-400) 512-d features, over the whole set: what the AIGVE toolkit
calls its native FVD, done set-level. NOT comparable with I3D FVD numbers."""

from __future__ import annotations

from typing import ClassVar

from .distribution import FrechetMetric


class FVDR3D18(FrechetMetric):
    name: ClassVar[str] = "fvd_r3d18"
    description: ClassVar[str] = "Fréchet distance of R3D-18 features (not comparable with I3D FVD)"
    backbone: ClassVar[str] = "r3d18"
    ddof: ClassVar[int] = 0
