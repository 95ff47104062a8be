"""SSIM (Wang et al. 2004) between frame-aligned clips.

Gaussian window (sigma 1.5, truncated at 3.5 sigma: 11 taps), K1 = 0.01, K2 = 0.03, data range 255,
population (not sample) covariances, computed per RGB channel and averaged, over the region where
the window fits inside the frame. This equals scikit-image's
`structural_similarity(gaussian_weights=True, use_sample_covariance=False, data_range=255,
channel_axis=-1)` per frame. Per video: mean over frames; set score: mean over pairs.

Computed in float64 (a float32 variance loses ~1e-4 to cancellation), a chunk of frames and a band of rows at a time
(memory does not grow with the clip), with the separable window applied as shifted adds (no im2col copy).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch

from ..errors import MetricError
from ..gate import Tolerance
from ..videos.prepare import Clip, frame_range, frames_per_chunk, is_native
from .base import PairedMetric, pixel_threads
from .contract import InputsSpec
from .params import ParamSpec, positive_float

_TRUNCATE = 3.5
_K1, _K2, _RANGE = 0.01, 0.03, 255.0


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
    params: ClassVar[dict[str, ParamSpec[Any]]] = {
        "sigma": ParamSpec(1.5, positive_float, "Gaussian window sigma in pixels"),
    }

    spec: ClassVar[InputsSpec] = InputsSpec("paired", frame_clips=True)

    def score_pair(self, reference: Clip, candidate: Clip) -> float:
        height, width = (int(n) for n in reference.shape[-2:])
        taps = 2 * int(_TRUNCATE * float(self.options["sigma"]) + 0.5) + 1
        if min(height, width) < taps:
            raise MetricError(f"ssim: frames of {height}x{width} are smaller than the {taps}-pixel "
                              "window; use larger videos or a smaller 'sigma'")
        window = gaussian_window(float(self.options["sigma"]), torch.float64, torch.device("cpu")).tolist()
        frames = int(reference.shape[0])
        chunk = frames_per_chunk(reference, _BAND_PIXELS)
        per_frame: list[torch.Tensor] = []
        with pixel_threads(reference.device):
            for start in range(0, frames, chunk):
                stop = min(frames, start + chunk)
                per_frame.append(ssim_frames(_bands(reference, candidate, start, stop),
                                             (stop - start, int(reference.shape[1]), height, width),
                                             window, reference.device))
        return float(torch.cat(per_frame).mean())


Bands = Callable[[int, int], tuple[torch.Tensor, torch.Tensor]]


def _bands(reference: Clip, candidate: Clip, start: int, stop: int) -> Bands:
    """Float64 rows [top, bottom) of frames [start, stop) of both clips. Native clips: each band is converted from
    uint8 on its own (no float frame exists at all); resizing needs whole frames: the chunk is converted once and
    the bands are cut from it."""
    if is_native(reference) and is_native(candidate):
        def band(top: int, bottom: int) -> tuple[torch.Tensor, torch.Tensor]:
            return (frame_range(reference, start, stop, rows=(top, bottom)).contiguous(),
                    frame_range(candidate, start, stop, rows=(top, bottom)).contiguous())
        return band
    x = frame_range(reference, start, stop).contiguous()
    y = frame_range(candidate, start, stop).contiguous()
    return lambda top, bottom: (x[..., top:bottom, :], y[..., top:bottom, :])


# pixels per channel filtered at once (a chunk of small frames, or a band of rows of one large frame): a fixed
# working set whatever the clip's length, small enough for the shifted adds to run in cache (16-32 rows of 720p
# were fastest; whole 720p frames 1.3x slower)
_BAND_PIXELS = 1 << 15
_MIN_BAND_ROWS = 8  # each band re-reads taps - 1 rows above it: fewer rows per band would mostly redo work


def _blur_valid(maps: torch.Tensor, window: list[float]) -> torch.Tensor:
    """Separable 'valid' Gaussian filtering of (..., H, W) as a weighted sum of shifted views, rows then columns.

    Why not conv2d: float64 conv2d on the CPU lowers to im2col (a taps-fold copy) and runs 2.5x slower than
    scikit-image; shifted in-place adds touch each value once per tap and vectorise.
    """
    taps = len(window)
    rows = maps.shape[-2] - taps + 1
    out = maps[..., 0:rows, :] * window[0]
    for k in range(1, taps):
        out.add_(maps[..., k: k + rows, :], alpha=window[k])
    cols = maps.shape[-1] - taps + 1
    blurred = out[..., 0:cols] * window[0]
    for k in range(1, taps):
        blurred.add_(out[..., k: k + cols], alpha=window[k])
    return blurred


def ssim_frames(bands: Bands, shape: tuple[int, int, int, int],
                window: list[float], device: torch.device) -> torch.Tensor:
    """Per-frame SSIM (mean over channels of the mean over the valid region) of F frames of `shape` (F, C, H, W),
    whose float64 rows [top, bottom) `bands` gives, filtered a band of rows at a time so that all stays small."""
    frames, channels, height, width = shape
    taps = len(window)
    out_rows, out_cols = height - taps + 1, width - taps + 1
    band = max(_MIN_BAND_ROWS, _BAND_PIXELS // max(1, frames * out_cols))
    c1, c2 = (_K1 * _RANGE) ** 2, (_K2 * _RANGE) ** 2
    total = torch.zeros(frames, channels, dtype=torch.float64, device=device)
    for top in range(0, out_rows, band):
        bottom = min(out_rows, top + band)
        xs, ys = bands(top, bottom + taps - 1)
        # four maps, not five: the denominator needs var_x + var_y only, i.e. blur(x^2 + y^2) - mu_x^2 - mu_y^2
        blurred = _blur_valid(torch.stack((xs, ys, xs * xs + ys * ys, xs * ys)), window)
        mu_x, mu_y, squares, cross = blurred.unbind(0)
        mu_xy = mu_x * mu_y
        mu_sq = mu_x * mu_x + mu_y * mu_y
        ssim_map = ((2 * mu_xy + c1) * (2 * (cross - mu_xy) + c2)) / ((mu_sq + c1) * (squares - mu_sq + c2))
        total += ssim_map.sum(dim=(-2, -1))
    return (total / (out_rows * out_cols)).mean(dim=1)
