"""SSIM (Wang et al. 2004) between frame-aligned clips.

Gaussian window (sigma 1.5, truncated at 3.5 sigma: 11 taps), K1 = 0.01, K2 = 0.03, data range 255,
population (not sample) covariances, computed per RGB channel and averaged, over the region where
the window fits inside the frame. This equals scikit-image's
`structural_similarity(gaussian_weights=True, use_sample_covariance=False, data_range=255,
channel_axis=-1)` per frame. Per video: mean over frames; set score: mean over pairs.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from ..errors import MetricError
from ..gate import Tolerance
from .base import PairedMetric, ParamSpec

_TRUNCATE = 3.5
_K1, _K2, _RANGE = 0.01, 0.03, 255.0


def _sigma(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"must be a positive number, got {value!r}")
    return float(value)


def gaussian_window(sigma: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    radius = int(_TRUNCATE * sigma + 0.5)
    offsets = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    weights = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return weights / weights.sum()


class SSIM(PairedMetric):
    name: ClassVar[str] = "ssim"
    description: ClassVar[str] = "structural similarity, Gaussian window, per RGB channel, frame by frame"
    higher_is_better: ClassVar[bool] = True
    value_range: ClassVar[tuple[float | None, float | None]] = (-1.0, 1.0)
    default_tolerance: ClassVar[Tolerance | None] = Tolerance(abs=0.005)
    default_max_drop: ClassVar[Tolerance | None] = Tolerance(abs=0.1)
    params: ClassVar[dict[str, ParamSpec]] = {
        "sigma": ParamSpec(1.5, _sigma, "Gaussian window sigma in pixels"),
    }

    def _blur(self, images: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
        # separable 'valid' filtering of (N, 1, H, W)
        images = F.conv2d(images, window.view(1, 1, 1, -1))
        return F.conv2d(images, window.view(1, 1, -1, 1))

    def score_pair(self, reference: torch.Tensor, candidate: torch.Tensor) -> float:
        window = gaussian_window(float(self.options["sigma"]), reference.dtype, reference.device)
        frames, channels, height, width = reference.shape
        if min(height, width) < window.numel():
            raise MetricError(f"ssim: frames of {height}x{width} are smaller than the {window.numel()}-pixel "
                              "window; use larger videos or a smaller 'sigma'")
        x = reference.reshape(frames * channels, 1, height, width)
        y = candidate.reshape(frames * channels, 1, height, width)
        mu_x, mu_y = self._blur(x, window), self._blur(y, window)
        var_x = self._blur(x * x, window) - mu_x**2
        var_y = self._blur(y * y, window) - mu_y**2
        cov = self._blur(x * y, window) - mu_x * mu_y
        c1, c2 = (_K1 * _RANGE) ** 2, (_K2 * _RANGE) ** 2
        ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
        per_frame = ssim_map.reshape(frames, channels, -1).mean(dim=2).mean(dim=1)
        return float(per_frame.mean())
