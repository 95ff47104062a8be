"""Decoded uint8 clips to float tensors on the compute device, resized per the protocol."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..protocol import ClipProtocol


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
    clip = clip_to_tensor(frames, protocol, device, dtype=torch.float32)
    return clip.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
