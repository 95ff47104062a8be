"""DOVER and FasterVQA: networks, view samplers and backbones, equal to the reference implementations.

Reference: DOVER (Wu et al., ICCV 2023; VQAssessment/DOVER, MIT at v0.1.0) and FasterVQA (Wu et al., FAST-VQA
and FasterVQA, VQAssessment/FAST-VQA-and-FasterVQA, MIT) as vendored by objective-metrics 1.2.2
(`modules/nr_vqa/{dover,fastvqa}.py`, `models/_dover.py`, `models/_fastvqa.py`, `utils/_dover.py`,
`utils/_fastvqa.py`). Written anew here; the tests compare every piece with those classes on identical tensors.

Networks (state-dict keys as the official checkpoints):
  - Swin-3D tiny "grpb" (window (8, 7, 7), fragment position biases in stages 1-3): DOVER's technical backbone and
    FasterVQA's `fragments_backbone`. Its attention adds a "gated" relative-position bias: for each token pair the
    L1 distance g between their fragment indices mixes the two tables as rel * g + frag * (1 - g), as the
    reference does (g is a distance, not a 0/1 gate).
  - ConvNeXt-3D tiny (inflation "131"): DOVER's aesthetic backbone.
  - VQA heads: 1x1x1 conv 768 -> 64, GELU, conv 64 -> 1 per spatio-temporal position (dropout is inert in eval).

Views (DOVER's `val-l1080p` and FasterVQA's `f3dvqa-b` test settings):
  - DOVER technical: `clips` temporal segments of 32 frames at stride 2, one random start per segment
    (UnifiedFrameSampler), then 7x7 fragments of 32 px spliced into 224x224 with one random offset per fragment
    and 32-frame group. Videos whose short side is under 224 are first upsampled bilinearly to it (and the
    fragment grid is then laid out, as in the reference, on the ORIGINAL size: small videos are sampled from the
    upper-left part of the upsampled frames).
  - DOVER aesthetic: 32 segments of one frame (random frame in each), resized to 224x224 (torchvision bilinear;
    `antialias` as torchvision >= 0.17 defaults, True).
  - FasterVQA: 32 consecutive frames centred in the video (SampleFrames, test mode: the reference script's
    path), fragments as above with one offset per fragment and 8-frame group.
The reference draws its offsets from the global NumPy (temporal) and torch (spatial) generators, unseeded. Here
each video gets its own `np.random.RandomState(seed)` and `torch.Generator().manual_seed(seed)`, drawn in the
reference's order, so a seed reproduces exactly what the reference gives after `np.random.seed(seed)` and
`torch.manual_seed(seed)`; a video's score never depends on the other videos.

Each backbone returns one row per video: the raw head outputs averaged over positions and clips (the
reference's `r.mean()`), DOVER [technical, aesthetic], FasterVQA [fragments]. The fusion into scores is the
metrics' (metrics/dover.py, metrics/fastvqa.py).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import MetricError
from .backbones import Backbone
from .weights import REGISTRY, load_into, mark_random

# ImageNet statistics on the 0-255 scale, as both references normalise their views
PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)

FRAGMENTS = 7  # fragments per side
FRAGMENT_SIZE = 32  # pixels per fragment side
VIEW_SIZE = FRAGMENTS * FRAGMENT_SIZE  # 224
CLIP_FRAMES = 32  # frames per clip fed to each network


# ---------------------------------------------------------------------------------------------------------------
# Swin-3D (the "grpb" variant with fragment position biases)


def _partition(x: torch.Tensor, window: tuple[int, int, int]) -> torch.Tensor:
    """(B, D, H, W, C) -> (B * windows, tokens per window, C)."""
    b, d, h, w, c = x.shape
    x = x.view(b, d // window[0], window[0], h // window[1], window[1], w // window[2], window[2], c)
    return x.permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(-1, window[0] * window[1] * window[2], c)


def _unpartition(windows: torch.Tensor, window: tuple[int, int, int], b: int, d: int, h: int, w: int) -> torch.Tensor:
    x = windows.view(b, d // window[0], h // window[1], w // window[2], window[0], window[1], window[2], -1)
    return x.permute(0, 1, 4, 2, 5, 3, 6, 7).reshape(b, d, h, w, -1)


def _fit_window(size: tuple[int, ...], window: tuple[int, int, int],
                shift: tuple[int, int, int]) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """A window no larger than the feature map along each axis; no shift along an axis the window covers."""
    fitted, shifted = list(window), list(shift)
    for axis in range(3):
        if size[axis] <= window[axis]:
            fitted[axis], shifted[axis] = size[axis], 0
    return (fitted[0], fitted[1], fitted[2]), (shifted[0], shifted[1], shifted[2])


@functools.lru_cache(maxsize=64)
def _shift_mask(d: int, h: int, w: int, window: tuple[int, int, int], shift: tuple[int, int, int],
                device: torch.device) -> torch.Tensor:
    """(windows, N, N): 0 within a region of the cyclically shifted map, -100 across regions (Swin's SW-MSA)."""
    regions = torch.zeros((1, d, h, w, 1), device=device)
    label = 0
    # the reference's three slices per axis, including the empty ones when the shift is 0
    spans = [(slice(-window[i]), slice(-window[i], -shift[i]), slice(-shift[i], None)) for i in range(3)]
    for ds in spans[0]:
        for hs in spans[1]:
            for ws in spans[2]:
                regions[:, ds, hs, ws, :] = label
                label += 1
    labels = _partition(regions, window).squeeze(-1)
    mask = labels.unsqueeze(1) - labels.unsqueeze(2)
    return mask.masked_fill(mask != 0, -100.0).masked_fill(mask == 0, 0.0)


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class _WindowAttention(nn.Module):
    def __init__(self, dim: int, window: tuple[int, int, int], heads: int, fragment_bias: bool) -> None:
        super().__init__()
        self.window = window
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        table_size = (2 * window[0] - 1) * (2 * window[1] - 1) * (2 * window[2] - 1)
        self.relative_position_bias_table = nn.Parameter(torch.zeros(table_size, heads))
        if fragment_bias:
            self.fragment_position_bias_table = nn.Parameter(torch.zeros(table_size, heads))
        self.fragment_bias = fragment_bias
        # index of each token pair's relative offset (d, h, w) into the tables
        coords = torch.stack(torch.meshgrid(*(torch.arange(n) for n in window), indexing="ij")).flatten(1)
        offsets = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)
        offsets = offsets + torch.tensor([window[0] - 1, window[1] - 1, window[2] - 1])
        index = (offsets[..., 0] * (2 * window[1] - 1) * (2 * window[2] - 1)
                 + offsets[..., 1] * (2 * window[2] - 1) + offsets[..., 2])
        self.register_buffer("relative_position_index", index)
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def _pair_index(self, tokens: int, resized: tuple[int, int, int] | None) -> torch.Tensor:
        index = self.get_buffer("relative_position_index")
        if resized is None:
            return index[:tokens, :tokens]  # the reference's slice, also for windows shrunk to the map
        d, h, w = resized
        return index.reshape(*self.window, *self.window)[:d, :h, :w, :d, :h, :w]

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, distance: torch.Tensor,
                resized: tuple[int, int, int] | None) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q * self.scale) @ k.transpose(-2, -1)
        index = self._pair_index(n, resized).reshape(-1)
        bias = self.relative_position_bias_table[index].reshape(n, n, -1).permute(2, 0, 1).unsqueeze(0)
        windows = distance.shape[0]
        gate = distance.unsqueeze(1)  # (windows, 1, N, N)
        if self.fragment_bias:
            fragment = self.fragment_position_bias_table[index].reshape(n, n, -1).permute(2, 0, 1)
            bias = bias * gate + fragment * (1 - gate)
        attn = (attn.view(b // windows, windows, self.heads, n, n) + bias.unsqueeze(0)).view(-1, self.heads, n, n)
        if mask is not None:
            regions = mask.shape[0]
            attn = attn.view(b // regions, regions, self.heads, n, n) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, self.heads, n, n)
        attn = attn.softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class _SwinBlock(nn.Module):
    def __init__(self, dim: int, heads: int, window: tuple[int, int, int], shift: tuple[int, int, int],
                 fragment_bias: bool) -> None:
        super().__init__()
        self.window = window
        self.shift = shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = _WindowAttention(dim, window, heads, fragment_bias)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = _Mlp(dim, 4 * dim)

    def _attend(self, x: torch.Tensor, mask: torch.Tensor, resized: tuple[int, int, int] | None) -> torch.Tensor:
        b, d, h, w, c = x.shape
        window, shift = _fit_window((d, h, w), resized or self.window, self.shift)
        x = self.norm1(x)
        pads = [(window[i] - size % window[i]) % window[i] for i, size in enumerate((d, h, w))]
        x = F.pad(x, (0, 0, 0, pads[2], 0, pads[1], 0, pads[0]))
        _, dp, hp, wp, _ = x.shape
        shifted = any(s > 0 for s in shift)
        if shifted:
            x = torch.roll(x, shifts=(-shift[0], -shift[1], -shift[2]), dims=(1, 2, 3))
        # the fragment grid has window_h x window_w fragments and one along time, as in the reference
        distance = _fragment_distance(dp, hp, wp, (1, window[1], window[2]), window, shift, x.device)
        out = self.attn(_partition(x, window), mask if shifted else None, distance,
                        window if resized is not None else None)
        x = _unpartition(out.view(-1, *window, c), window, b, dp, hp, wp)
        if shifted:
            x = torch.roll(x, shifts=shift, dims=(1, 2, 3))
        return x[:, :d, :h, :w, :].contiguous()

    def forward(self, x: torch.Tensor, mask: torch.Tensor, resized: tuple[int, int, int] | None) -> torch.Tensor:
        x = x + self._attend(x, mask, resized)
        return x + self.mlp(self.norm2(x))


@functools.lru_cache(maxsize=64)
def _fragment_distance(d: int, h: int, w: int, fragments: tuple[int, int, int], window: tuple[int, int, int],
                            shift: tuple[int, int, int], device: torch.device) -> torch.Tensor:
    """(windows, N, N): the L1 distance between the fragment indices (a nearest-neighbour map of the fragment
    grid onto the feature map) of each token pair of each window."""
    grid = torch.stack(torch.meshgrid(*(torch.arange(n) for n in fragments), indexing="ij")).float()
    coords = F.interpolate(grid[None].to(device), size=(d, h, w)).long().permute(0, 2, 3, 4, 1)
    coords = torch.roll(coords, shifts=(-shift[0], -shift[1], -shift[2]), dims=(1, 2, 3))
    tokens = _partition(coords, window)
    return (tokens[:, None, :] - tokens[:, :, None]).abs().sum(-1)


class _PatchMerging(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2], x.shape[3]
        if h % 2 or w % 2:
            x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2))
        x = torch.cat([x[:, :, 0::2, 0::2], x[:, :, 1::2, 0::2], x[:, :, 0::2, 1::2], x[:, :, 1::2, 1::2]], -1)
        return self.reduction(self.norm(x))


class _SwinStage(nn.Module):
    def __init__(self, dim: int, depth: int, heads: int, window: tuple[int, int, int], fragment_bias: bool,
                 downsample: bool) -> None:
        super().__init__()
        self.window = window
        self.shift = (window[0] // 2, window[1] // 2, window[2] // 2)
        self.blocks = nn.ModuleList(
            _SwinBlock(dim, heads, window, (0, 0, 0) if i % 2 == 0 else self.shift, fragment_bias)
            for i in range(depth))
        self.downsample = _PatchMerging(dim) if downsample else None

    def forward(self, x: torch.Tensor, resized: tuple[int, int, int] | None) -> torch.Tensor:
        d, h, w = x.shape[2:]
        window, shift = _fit_window((d, h, w), resized or self.window, self.shift)
        x = x.permute(0, 2, 3, 4, 1)
        padded = [-(-size // window[i]) * window[i] for i, size in enumerate((d, h, w))]
        mask = _shift_mask(padded[0], padded[1], padded[2], window, shift, x.device)
        for block in self.blocks:
            x = block(x, mask, resized)
        if self.downsample is not None:
            x = self.downsample(x)
        return x.permute(0, 4, 1, 2, 3)


class _PatchEmbed(nn.Module):
    def __init__(self, patch: tuple[int, int, int] = (2, 4, 4), dim: int = 96) -> None:
        super().__init__()
        self.patch = patch
        self.proj = nn.Conv3d(3, dim, kernel_size=patch, stride=patch)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d, h, w = x.shape[2:]
        pd, ph, pw = ((p - size % p) % p for p, size in zip(self.patch, (d, h, w), strict=True))
        if pw or ph or pd:
            x = F.pad(x, (0, pw, 0, ph, 0, pd))
        x = self.proj(x)
        return self.norm(x.permute(0, 2, 3, 4, 1)).permute(0, 4, 1, 2, 3)


class Swin3D(nn.Module):
    """Swin-3D tiny as FAST-VQA's `swin_tiny_grpb`: (B, 3, T, H, W) normalised -> (B, 768, T/2, H/32, W/32).
    `adaptive_window`: FAST-VQA's forward scales the window with the input size relative to 32x224x224 (the
    same window at that size); DOVER's does not."""

    def __init__(self, adaptive_window: bool = False, window: tuple[int, int, int] = (8, 7, 7),
                 depths: tuple[int, ...] = (2, 2, 6, 2), heads: tuple[int, ...] = (3, 6, 12, 24),
                 fragment_biases: tuple[bool, ...] = (True, True, True, False), dim: int = 96) -> None:
        super().__init__()
        self.window = window
        self.adaptive_window = adaptive_window
        self.patch_embed = _PatchEmbed(dim=dim)
        self.layers = nn.ModuleList(
            _SwinStage(dim * 2 ** i, depth, heads[i], window, fragment_biases[i], i < len(depths) - 1)
            for i, depth in enumerate(depths))
        self.norm = nn.LayerNorm(dim * 2 ** (len(depths) - 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        resized = None
        if self.adaptive_window:
            base = (32, 224, 224)
            resized = tuple(self.window[i] * x.shape[2 + i] // base[i] for i in range(3))
        x = self.patch_embed(x)
        for layer in self.layers:
            x = layer(x.contiguous(), resized)
        return self.norm(x.permute(0, 2, 3, 4, 1)).permute(0, 4, 1, 2, 3)


# ---------------------------------------------------------------------------------------------------------------
# ConvNeXt-3D tiny (DOVER's aesthetic backbone)


class _ChannelsFirstNorm(nn.Module):
    """LayerNorm over dim 1 of (B, C, T, H, W), computed as the reference does (mean, biased variance, eps 1e-6)."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None, None] * x + self.bias[:, None, None, None]


class _ConvNeXtBlock(nn.Module):
    def __init__(self, dim: int, temporal_kernel: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv3d(dim, dim, kernel_size=(temporal_kernel, 7, 7), padding=(temporal_kernel // 2, 3, 3),
                                groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), 1e-6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x).permute(0, 2, 3, 4, 1)
        y = self.gamma * self.pwconv2(self.act(self.pwconv1(self.norm(y))))
        return x + y.permute(0, 4, 1, 2, 3)


class ConvNeXt3D(nn.Module):
    """ConvNeXt-3D tiny, temporal kernels 1, 3, 1, ... per stage ("131"): (B, 3, T, H, W) -> (B, 768, T/2, H/32,
    W/32), the final LayerNorm over channels at every position (the reference's `return_spatial` path)."""

    def __init__(self, depths: tuple[int, ...] = (3, 3, 9, 3), dims: tuple[int, ...] = (96, 192, 384, 768),
                 inflation: str = "131") -> None:
        super().__init__()
        self.downsample_layers = nn.ModuleList([nn.Sequential(
            nn.Conv3d(3, dims[0], kernel_size=(2, 4, 4), stride=(2, 4, 4)), _ChannelsFirstNorm(dims[0]))])
        for i in range(3):
            self.downsample_layers.append(nn.Sequential(
                _ChannelsFirstNorm(dims[i]), nn.Conv3d(dims[i], dims[i + 1], kernel_size=(1, 2, 2), stride=(1, 2, 2))))
        self.stages = nn.ModuleList(
            nn.Sequential(*(_ConvNeXtBlock(dims[i], int(inflation[j % len(inflation)])) for j in range(depth)))
            for i, depth in enumerate(depths))
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for downsample, stage in zip(self.downsample_layers, self.stages, strict=True):
            x = stage(downsample(x))
        return self.norm(x.permute(0, 2, 3, 4, 1)).permute(0, 4, 1, 2, 3)


class VQAHead(nn.Module):
    """Per-position quality: 1x1x1 conv 768 -> 64, GELU, conv 64 -> 1."""

    def __init__(self, in_channels: int = 768, hidden: int = 64) -> None:
        super().__init__()
        self.fc_hid = nn.Conv3d(in_channels, hidden, (1, 1, 1))
        self.fc_last = nn.Conv3d(hidden, 1, (1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc_last(F.gelu(self.fc_hid(x)))


class DoverNet(nn.Module):
    """DOVER: technical (Swin-3D on fragments) and aesthetic (ConvNeXt-3D on the resized view) branches."""

    def __init__(self) -> None:
        super().__init__()
        self.technical_backbone = Swin3D(adaptive_window=False)
        self.aesthetic_backbone = ConvNeXt3D()
        self.technical_head = VQAHead()
        self.aesthetic_head = VQAHead()

    def forward(self, technical: torch.Tensor, aesthetic: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-position head outputs of each branch: (clips, 1, T/2, 7, 7) and (1, 1, T/2, 7, 7)."""
        return (self.technical_head(self.technical_backbone(technical)),
                self.aesthetic_head(self.aesthetic_backbone(aesthetic)))


class FasterVQANet(nn.Module):
    """FasterVQA (FAST-VQA's DiViDeAddEvaluator with one `fragments` Swin-3D branch and one head)."""

    def __init__(self) -> None:
        super().__init__()
        self.fragments_backbone = Swin3D(adaptive_window=True)
        self.vqa_head = VQAHead()

    def forward(self, fragments: torch.Tensor) -> torch.Tensor:
        return self.vqa_head(self.fragments_backbone(fragments))


# ---------------------------------------------------------------------------------------------------------------
# Samplers


def segment_frame_indices(frame_count: int, segments: int, frames_per_segment: int, stride: int,
                          rng: np.random.RandomState) -> np.ndarray:
    """DOVER's UnifiedFrameSampler (no drop): the video cut into `segments` equal parts, each giving
    `frames_per_segment` frames at `stride` from a random start within it (start 0 where the part is too short);
    indices wrap around the video's end."""
    part = frame_count // segments
    starts = np.array([part * i for i in range(segments)], dtype=np.int32)
    span = frames_per_segment * stride
    # the reference draws only when the part is longer than the frames it gives
    offsets = rng.randint(0, part - span, size=segments) if part > span else np.zeros(segments, dtype=np.int32)
    indices = np.arange(frames_per_segment)[None, :] * stride + offsets[:, None] + starts[:, None]
    return np.mod(indices.reshape(-1), frame_count).astype(np.int32)


def centred_frame_indices(frame_count: int, clip_frames: int = CLIP_FRAMES) -> np.ndarray:
    """FAST-VQA's SampleFrames in test mode with one clip at stride 1: `clip_frames` consecutive frames whose
    start is half the slack (truncated), wrapping around the end of videos shorter than a clip."""
    start = int((frame_count - clip_frames + 1) / 2.0) if frame_count > clip_frames - 1 else 0
    return np.mod(start + np.arange(clip_frames), frame_count).astype(np.int32)


@dataclass(frozen=True)
class FragmentOffsets:
    """Random offsets of each fragment inside its grid cell, per temporal group: (7, 7, groups) each."""

    rows: torch.Tensor
    cols: torch.Tensor


def draw_fragment_offsets(height: int, width: int, groups: int, generator: torch.Generator) -> FragmentOffsets:
    """As the reference: torch.randint for rows, then for columns, only along axes whose cell is larger than a
    fragment (zeros, no draw, otherwise). `height`/`width` are the decoded size (before any upsampling)."""
    shape = (FRAGMENTS, FRAGMENTS, groups)
    cell_h, cell_w = height // FRAGMENTS, width // FRAGMENTS
    rows = (torch.randint(cell_h - FRAGMENT_SIZE, shape, generator=generator) if cell_h > FRAGMENT_SIZE
            else torch.zeros(shape, dtype=torch.int64))
    cols = (torch.randint(cell_w - FRAGMENT_SIZE, shape, generator=generator) if cell_w > FRAGMENT_SIZE
            else torch.zeros(shape, dtype=torch.int64))
    return FragmentOffsets(rows, cols)


def fragment_view(video: torch.Tensor, offsets: FragmentOffsets, group_frames: int) -> torch.Tensor:
    """(3, T, H, W) uint8 -> (3, T, 224, 224) float32 of 7x7 spliced 32-pixel fragments, one offset per fragment
    and group of `group_frames` frames. A short side under 224 is first upsampled to 224 (bilinear on [0, 1],
    back to uint8 by truncation, as the reference); the grid follows the original size."""
    frames, height, width = video.shape[1:]
    ratio = min(height / VIEW_SIZE, width / VIEW_SIZE)
    if ratio < 1:
        video = (F.interpolate(video / 255.0, scale_factor=1 / ratio, mode="bilinear") * 255.0).to(torch.uint8)
    row_starts = [min(height // FRAGMENTS * i, height - FRAGMENT_SIZE) for i in range(FRAGMENTS)]
    col_starts = [min(width // FRAGMENTS * j, width - FRAGMENT_SIZE) for j in range(FRAGMENTS)]
    view = torch.zeros((video.shape[0], frames, VIEW_SIZE, VIEW_SIZE), device=video.device)
    size = FRAGMENT_SIZE
    for i, top in enumerate(row_starts):
        for j, left in enumerate(col_starts):
            for group in range(frames // group_frames):
                t0, t1 = group * group_frames, (group + 1) * group_frames
                y = top + int(offsets.rows[i, j, group])
                x = left + int(offsets.cols[i, j, group])
                view[:, t0:t1, i * size:(i + 1) * size, j * size:(j + 1) * size] = video[:, t0:t1, y:y + size,
                                                                                         x:x + size]
    return view


def resized_view(video: torch.Tensor, antialias: bool) -> torch.Tensor:
    """(3, T, H, W) uint8 -> (3, T, 224, 224) float32: torchvision's bilinear resize of the uint8 frames."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    resized = TF.resize(video.permute(1, 0, 2, 3), [VIEW_SIZE, VIEW_SIZE], InterpolationMode.BILINEAR,
                        antialias=antialias)
    return resized.permute(1, 0, 2, 3).to(torch.float32)


def normalise(view: torch.Tensor) -> torch.Tensor:
    """(3, T, H, W) on the 0-255 scale -> ImageNet-normalised."""
    mean = torch.tensor(PIXEL_MEAN, device=view.device)[:, None, None, None]
    std = torch.tensor(PIXEL_STD, device=view.device)[:, None, None, None]
    return (view - mean) / std


def as_clips(view: torch.Tensor, clips: int) -> torch.Tensor:
    """(3, clips * 32, H, W) -> (clips, 3, 32, H, W): consecutive 32-frame runs are the clips."""
    return view.reshape(view.shape[0], clips, -1, *view.shape[2:]).transpose(0, 1)


@dataclass(frozen=True)
class DoverViews:
    technical: torch.Tensor  # (clips, 3, 32, 224, 224), normalised
    aesthetic: torch.Tensor  # (1, 3, 32, 224, 224), normalised
    technical_frames: np.ndarray
    aesthetic_frames: np.ndarray
    offsets: FragmentOffsets


def dover_views(video: torch.Tensor, seed: int, clips: int, antialias: bool) -> DoverViews:
    """DOVER's two views of one video ((T, H, W, 3) uint8, every frame), drawn with this video's own seeded
    generators in the reference's order: technical frames, aesthetic frames (NumPy), fragment offsets (torch)."""
    rng = np.random.RandomState(seed)
    generator = torch.Generator().manual_seed(seed)
    frame_count = video.shape[0]
    technical_frames = segment_frame_indices(frame_count, clips, CLIP_FRAMES, 2, rng)
    aesthetic_frames = segment_frame_indices(frame_count, CLIP_FRAMES, 1, 2, rng)
    channels_first = video.permute(3, 0, 1, 2)  # (3, T, H, W)
    index = torch.from_numpy(technical_frames.astype(np.int64)).to(video.device)
    offsets = draw_fragment_offsets(video.shape[1], video.shape[2], clips, generator)
    technical = fragment_view(channels_first.index_select(1, index), offsets, CLIP_FRAMES)
    index = torch.from_numpy(aesthetic_frames.astype(np.int64)).to(video.device)
    aesthetic = resized_view(channels_first.index_select(1, index), antialias)
    return DoverViews(as_clips(normalise(technical), clips), as_clips(normalise(aesthetic), 1), technical_frames,
                      aesthetic_frames, offsets)


FASTERVQA_GROUP_FRAMES = 8  # FasterVQA's `aligned`: one fragment offset per 8 frames


def fastervqa_view(video: torch.Tensor, seed: int) -> tuple[torch.Tensor, np.ndarray, FragmentOffsets]:
    """FasterVQA's fragments view of one video ((T, H, W, 3) uint8): (1, 3, 32, 224, 224) normalised."""
    generator = torch.Generator().manual_seed(seed)
    frames = centred_frame_indices(video.shape[0])
    channels_first = video.permute(3, 0, 1, 2)
    index = torch.from_numpy(frames.astype(np.int64)).to(video.device)
    offsets = draw_fragment_offsets(video.shape[1], video.shape[2], CLIP_FRAMES // FASTERVQA_GROUP_FRAMES,
                                    generator)
    view = fragment_view(channels_first.index_select(1, index), offsets, FASTERVQA_GROUP_FRAMES)
    return as_clips(normalise(view), 1), frames, offsets


# ---------------------------------------------------------------------------------------------------------------
# Backbones


def _check_frames(clip: torch.Tensor, name: str) -> None:
    if clip.ndim != 4 or clip.shape[-1] != 3 or clip.shape[0] < 1:
        raise MetricError(f"{name} needs a (T, H, W, 3) clip with at least one frame, got {tuple(clip.shape)}")
    if min(clip.shape[1], clip.shape[2]) < FRAGMENT_SIZE:
        raise MetricError(f"{name} needs frames of at least {FRAGMENT_SIZE}x{FRAGMENT_SIZE} pixels, got "
                          f"{clip.shape[2]}x{clip.shape[1]}")


class _ViewBackbone(Backbone):
    """A per-clip backbone that samples its own views from every frame, one video per forward pass."""

    precisions = ("fp32",)  # the reference's numerics
    default_batch_size = 1

    def prepare(self, clip: torch.Tensor) -> torch.Tensor:
        """The whole clip: the views are drawn from it in `forward`, one video at a time."""
        return clip

    def extract(self, clips: list[torch.Tensor], batch_size: int | None = None) -> list[np.ndarray]:
        for clip in clips:
            _check_frames(clip, self.name)
        rows = []
        with torch.inference_mode():
            for clip in clips:
                rows.append(self.forward(self.prepare(clip)).to("cpu", torch.float64).numpy().reshape(1, -1))
        if not all(np.isfinite(row).all() for row in rows):
            raise MetricError(f"{self.name} produced NaN or inf outputs; check the weights file")
        return rows


class DoverBackbone(_ViewBackbone):
    """DOVER's raw branch outputs [technical, aesthetic] per video (reference defaults: seed 0, 3 clips,
    antialiased aesthetic resize; others through the request's options)."""

    key = "dover"
    weights_file = REGISTRY["dover"]
    name = "dover"
    outputs: ClassVar[Mapping[str, int | None]] = {"technical": 1, "aesthetic": 1}
    # the sampling settings (BackboneRequest.options), in the identity: features of other settings never mix
    option_defaults: ClassVar[Mapping[str, Any]] = {"seed": 0, "clips": 3, "antialias": True}
    input_description = ("every frame; technical: clips x 32 frames at stride 2, 7x7 fragments of 32 px (224²); "
                         "aesthetic: 32 frames resized to 224² (DOVER val-l1080p sampling, seeded)")

    def build(self, state: dict[str, Any]) -> nn.Module:
        model = DoverNet()
        load_into(model, state, self.weights_path, self.entry)
        return model

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        views = dover_views(batch, int(self.settings["seed"]), int(self.settings["clips"]),
                            bool(self.settings["antialias"]))
        technical, aesthetic = self.model(views.technical, views.aesthetic)
        return torch.stack([technical.mean(), aesthetic.mean()])


class FasterVQABackbone(_ViewBackbone):
    """FasterVQA's raw output (the head's mean) per video, fragment offsets drawn from `seed` (default 0)."""

    key = "fastervqa"
    weights_file = REGISTRY["fastervqa"]
    name = "fastervqa"
    outputs: ClassVar[Mapping[str, int | None]] = {"fragments": 1}
    option_defaults: ClassVar[Mapping[str, Any]] = {"seed": 0}
    input_description = ("every frame; 32 consecutive frames centred in the video, 7x7 fragments of 32 px (224²), "
                         "one offset per 8 frames (FasterVQA test sampling, seeded)")

    def build(self, state: dict[str, Any]) -> nn.Module:
        model = FasterVQANet()
        load_into(model, state, self.weights_path, self.entry)
        return model

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        view, _, _ = fastervqa_view(batch, int(self.settings["seed"]))
        return self.model(view).mean().reshape(1)


# ---------------------------------------------------------------------------------------------------------------
# Random test weights (official formats, full size)

DOVER_PARAMETERS = 58_062_270
DOVER_KEYS = 381
FASTERVQA_PARAMETERS = 29_971_869


def _randomised(model: nn.Module, seed: int, centre: float) -> None:
    """Seeded truncated-normal weights (std 0.02, as both references initialise) for linear and convolution layers
    and bias tables, LayerNorms at identity, ConvNeXt's layer scales at 0.5 (not 1e-6: the blocks must matter), and
    the heads scaled so that their outputs spread around `centre`, the reference's rescaling mean: the metrics'
    sigmoids then stay off their flat ends and random scores still differ between videos. No BatchNorm: nothing
    to recalibrate."""
    generator = torch.Generator().manual_seed(seed)

    def normal(tensor: torch.Tensor) -> None:
        tensor.copy_((torch.randn(tensor.shape, generator=generator) * 0.02).clamp_(-0.04, 0.04))

    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Linear | nn.Conv3d):
                normal(module.weight)
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, nn.LayerNorm | _ChannelsFirstNorm):
                module.weight.fill_(1.0)
                module.bias.zero_()
            elif isinstance(module, _WindowAttention):
                normal(module.relative_position_bias_table)
                if module.fragment_bias:
                    normal(module.fragment_position_bias_table)
            elif isinstance(module, _ConvNeXtBlock):
                module.gamma.fill_(0.5)
        for head in model.children():
            if isinstance(head, VQAHead):
                head.fc_hid.weight.mul_(25.0)  # unit-scale hidden activations
                head.fc_last.weight.mul_(0.05)  # outputs vary between videos about as much as the rescaling stds
                head.fc_last.get_parameter("bias").fill_(centre)


def write_dover(folder: Path, seed: int = 0) -> Path:
    """DOVER.pth with random weights: 381 keys, 58,062,270 parameters, the official flat state dict; each head's
    outputs centred on DOVER's rescaling mean of its branch."""
    model = DoverNet()
    _randomised(model, seed, 0.0)
    with torch.no_grad():
        model.technical_head.fc_last.get_parameter("bias").fill_(0.1107)
        model.aesthetic_head.fc_last.get_parameter("bias").fill_(-0.08285)
    path = folder / REGISTRY["dover"].filename
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(mark_random(model.state_dict(), seed), path)
    return path


def write_fastervqa(folder: Path, seed: int = 0) -> Path:
    """FAST_VQA_3D_1_1.pth with random weights: the state dict nested under 'state_dict', 29,971,869 parameters;
    the head's outputs centred on FasterVQA's rescaling mean."""
    model = FasterVQANet()
    _randomised(model, seed, 0.14759505)
    path = folder / REGISTRY["fastervqa"].filename
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": mark_random(model.state_dict(), seed)}, path)
    return path


WRITERS: dict[str, Callable[[Path, int], Path]] = {"dover": write_dover, "fastervqa": write_fastervqa}
