"""Decoded uint8 clips to float tensors on the compute device, resized per the protocol."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import MetricError
from ..protocol import ClipProtocol


def _cdfvd_resolution(protocol: ClipProtocol) -> int:
    resize = protocol.resize
    if isinstance(resize, int):
        return resize
    if isinstance(resize, tuple) and resize[0] == resize[1]:
        return resize[0]
    raise MetricError(f"resize_mode cdfvd (cd-fvd's resize and square crop) needs a square size; the protocol has "
                      f"resize {resize!r}: give [n, n] or set the cd_fvd metric's 'resolution'")


def cdfvd_resize(frames: np.ndarray, resolution: int) -> torch.Tensor:
    """cd-fvd's resize and crop, bit for bit: (T, H, W, 3) uint8 -> (T, resolution, resolution, 3) uint8, on the CPU.

    What cd-fvd 0.1.1 does between decoding and its models (`cdfvd.utils.data_utils.preprocess`, then
    `(video * 255).byte()` in `compute_real_stats` / `compute_fake_stats`): float32 / 255; the shorter side to
    `resolution` and the longer to ceil(longer * scale) (ceil, not round: 720p at 112 is 112x200), bilinear with
    antialias; a centred crop (offsets floored); back to uint8 by truncation (not rounding). It runs on the CPU, where
    cd-fvd runs it: the same kernels give the same bytes (a GPU's interpolation may differ in the last bit, and
    truncation turns that into a whole grey level).
    """
    video = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0  # (T, 3, H, W)
    height, width = int(video.shape[-2]), int(video.shape[-1])
    scale = resolution / min(height, width)
    target = (resolution, math.ceil(width * scale)) if height < width else (math.ceil(height * scale), resolution)
    video = F.interpolate(video, size=target, mode="bilinear", align_corners=False, antialias=True)
    top, left = (video.shape[-2] - resolution) // 2, (video.shape[-1] - resolution) // 2
    video = video[:, :, top: top + resolution, left: left + resolution]
    return (video * 255).byte().permute(0, 2, 3, 1).contiguous()


def _target_size(height: int, width: int, protocol: ClipProtocol) -> tuple[int, int]:
    resize = protocol.resize
    if resize is None:
        return height, width
    if isinstance(resize, int):
        scale = resize / min(height, width)
        return max(1, round(height * scale)), max(1, round(width * scale))
    if protocol.resize_mode == "center_crop":
        scale = max(resize[0] / height, resize[1] / width)
        return max(resize[0], round(height * scale)), max(resize[1], round(width * scale))
    return resize


def clip_to_tensor(frames: np.ndarray, protocol: ClipProtocol, device: torch.device,
                   dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> (T, 3, H', W') in [0, 255], on `device`; uint8 travels, floats are made there."""
    if protocol.resize is not None and protocol.resize_mode == "cdfvd":
        resized = cdfvd_resize(frames, _cdfvd_resolution(protocol))
        return resized.to(device).permute(0, 3, 1, 2).to(dtype)
    clip = torch.from_numpy(np.ascontiguousarray(frames)).to(device).permute(0, 3, 1, 2).to(dtype)
    height, width = clip.shape[-2:]
    target = _target_size(int(height), int(width), protocol)
    if target != (height, width):
        clip = F.interpolate(clip, size=target, mode="bilinear", align_corners=False, antialias=True)
        clip = clip.clamp_(0.0, 255.0)
    if isinstance(protocol.resize, tuple) and protocol.resize_mode == "center_crop":
        top = (clip.shape[-2] - protocol.resize[0]) // 2
        left = (clip.shape[-1] - protocol.resize[1]) // 2
        clip = clip[..., top: top + protocol.resize[0], left: left + protocol.resize[1]]
    return clip


def clip_to_uint8(frames: np.ndarray, protocol: ClipProtocol, device: torch.device) -> torch.Tensor:
    """(T, H, W, 3) uint8 on `device`, resized per the protocol (rounded back to uint8), for backbones
    whose reference preprocessing starts from uint8 frames."""
    if protocol.resize is None:
        return torch.from_numpy(np.ascontiguousarray(frames)).to(device)
    if protocol.resize_mode == "cdfvd":
        return cdfvd_resize(frames, _cdfvd_resolution(protocol)).to(device)
    clip = clip_to_tensor(frames, protocol, device, dtype=torch.float32)
    return clip.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
