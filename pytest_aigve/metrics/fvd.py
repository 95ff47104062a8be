"""FVD (I3D): Fréchet distance of I3D-400 logits of clips, with cd-fvd's network and preprocessing (the
research-standard FVD of StyleGAN-V / TATS); covariance normalised by N, as cd-fvd does."""

from __future__ import annotations

from typing import ClassVar

from .distribution import FrechetMetric


class FVD(FrechetMetric):
    name: ClassVar[str] = "fvd"
    description: ClassVar[str] = "Fréchet Video Distance, I3D-400 logits (research standard)"
    backbone: ClassVar[str] = "i3d"
    ddof: ClassVar[int] = 0
