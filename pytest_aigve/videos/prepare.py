"""Decoded uint8 clips to float tensors on the compute device, resized per the protocol."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator

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


class FrameClip:
    """A decoded clip kept as uint8 frames on the device, handed out as float (F, 3, H', W') frames in [0, 255],
    resized per the protocol, a few frames at a time.

    Why: a float64 copy of a whole clip is 8x its uint8 bytes (a 48-frame 720p clip: 1.06 GB) and pixel metrics
    only ever need a few frames at once. Resizing is per frame, so converting a slice gives the very values the
    same frames have in a whole-clip conversion (`materialise`, what `clip_to_tensor` returns).
    """

    def __init__(self, frames: torch.Tensor, protocol: ClipProtocol) -> None:
        self.frames = frames  # uint8 (T, 3, H, W) on the device (a permuted view of the decoded (T, H, W, 3))
        self.protocol = protocol
        height, width = int(frames.shape[-2]), int(frames.shape[-1])
        self._target = _target_size(height, width, protocol)
        out = self._target
        if isinstance(protocol.resize, tuple) and protocol.resize_mode == "center_crop":
            out = protocol.resize
        self.shape = torch.Size((int(frames.shape[0]), int(frames.shape[1]), out[0], out[1]))
        self.device = frames.device

    def __len__(self) -> int:
        return int(self.shape[0])

    @property
    def native(self) -> bool:
        """No resizing: the float frames are the uint8 ones, so rows can be cut before converting."""
        return self.shape[-2:] == self.frames.shape[-2:] and self._target == tuple(self.frames.shape[-2:])

    def convert(self, start: int, stop: int, dtype: torch.dtype = torch.float64,
                rows: tuple[int, int] | None = None) -> torch.Tensor:
        """Frames [start, stop) as `dtype`, resized (and cropped) per the protocol; only rows [top, bottom) of a
        native clip when `rows` is given."""
        if rows is not None:
            if not self.native:
                raise ValueError("rows of a resized clip: convert whole frames")
            return self.frames[start:stop, :, rows[0]: rows[1]].to(dtype)
        clip = self.frames[start:stop].to(dtype)
        if self._target != tuple(clip.shape[-2:]):
            clip = F.interpolate(clip, size=self._target, mode="bilinear", align_corners=False, antialias=True)
            clip = clip.clamp_(0.0, 255.0)
        if isinstance(self.protocol.resize, tuple) and self.protocol.resize_mode == "center_crop":
            top = (clip.shape[-2] - self.protocol.resize[0]) // 2
            left = (clip.shape[-1] - self.protocol.resize[1]) // 2
            clip = clip[..., top: top + self.protocol.resize[0], left: left + self.protocol.resize[1]]
        return clip

    def materialise(self, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        return self.convert(0, len(self), dtype)


Clip = torch.Tensor | FrameClip  # what MetricInputs hands a pixel metric


def to_device(frames: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 frames onto the compute device. On CUDA through pinned host memory with a non-blocking copy: the
    host goes on (decoding, preparing the next clip) while the copy runs, and kernels queued after it on the same
    stream see the data. The CPU gets the array itself, without a copy."""
    tensor = torch.from_numpy(np.ascontiguousarray(frames)) if isinstance(frames, np.ndarray) else frames
    if device.type != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


def clip_frames(frames: np.ndarray, protocol: ClipProtocol, device: torch.device) -> FrameClip:
    """(T, H, W, 3) uint8 -> a FrameClip on `device`: only uint8 travels and stays; floats are made per chunk."""
    if protocol.resize is not None and protocol.resize_mode == "cdfvd":
        resized = cdfvd_resize(frames, _cdfvd_resolution(protocol))
        return FrameClip(to_device(resized, device).permute(0, 3, 1, 2), dataclasses.replace(protocol, resize=None))
    return FrameClip(to_device(frames, device).permute(0, 3, 1, 2), protocol)


# pixels per channel of a chunk converted to float at once (4 frames of 720p: 88 MB as float64 RGB): a pixel
# metric's working set, fixed whatever the clip's length
CHUNK_PIXELS = 1 << 22


def frames_per_chunk(clip: Clip, pixels: int | None = None) -> int:
    """How many frames make about `pixels` (default CHUNK_PIXELS) pixels per channel, at least one: a metric's
    fixed working set."""
    height, width = int(clip.shape[-2]), int(clip.shape[-1])
    budget = CHUNK_PIXELS if pixels is None else pixels
    return max(1, min(int(clip.shape[0]), budget // max(1, height * width)))


def is_native(clip: Clip) -> bool:
    """Rows can be cut before converting: a tensor, or a FrameClip without resizing."""
    return not isinstance(clip, FrameClip) or clip.native


def holds_uint8(clip: Clip) -> bool:
    """The clip's values are its uint8 frames (no resizing): integer arithmetic on them is exact."""
    if isinstance(clip, FrameClip):
        return clip.native
    return clip.dtype == torch.uint8


def frame_range(clip: Clip, start: int, stop: int, dtype: torch.dtype = torch.float64,
                rows: tuple[int, int] | None = None) -> torch.Tensor:
    """Frames [start, stop) of a FrameClip or of a (T, 3, H, W) tensor, as `dtype`; only rows [top, bottom) when
    `rows` is given (a native clip only: see is_native)."""
    if isinstance(clip, FrameClip):
        return clip.convert(start, stop, dtype, rows)
    if rows is not None:
        return clip[start:stop, :, rows[0]: rows[1]].to(dtype)
    return clip[start:stop].to(dtype)


def frame_chunks(clip: Clip, size: int, dtype: torch.dtype = torch.float64,
                 overlap: int = 0) -> Iterator[torch.Tensor]:
    """Consecutive chunks of at most `size` frames (`overlap` frames shared with the previous chunk, for metrics
    of consecutive frames), converted to `dtype` one chunk at a time."""
    total, size = int(clip.shape[0]), max(size, overlap + 1)
    start = 0
    while True:
        stop = min(total, start + size)
        yield frame_range(clip, start, stop, dtype)
        if stop >= total:
            return
        start = stop - overlap


# pixels per channel of a block that pixel metrics reduce at once: small enough to stay in cache (a fresh 22 MB
# float64 frame per operation costs more in page faults than the arithmetic: 720p PSNR 35 ms/frame whole, 3 ms
# in blocks of 8-32 rows)
BLOCK_PIXELS = 1 << 15


def frame_blocks(clip: Clip, pixels: int | None = None, dtype: torch.dtype = torch.float64,
                 overlap: int = 0) -> Iterator[tuple[int, torch.Tensor]]:
    """(index of its first frame, block): float blocks (F, 3, rows, W) of about `pixels` (default BLOCK_PIXELS)
    pixels per channel that together cover the clip. Consecutive groups of frames share `overlap` frames (for
    metrics of consecutive frames); within a group the bands of rows are disjoint. Rows are cut before converting
    where the clip is native (a tensor, or a FrameClip without resizing); a resized FrameClip is converted a chunk
    of whole frames (CHUNK_PIXELS) at a time and then cut."""
    budget = BLOCK_PIXELS if pixels is None else pixels
    total, height, width = int(clip.shape[0]), int(clip.shape[-2]), int(clip.shape[-1])
    if not is_native(clip):
        start = 0
        for chunk in frame_chunks(clip, max(overlap + 1, frames_per_chunk(clip)), dtype, overlap):
            rows = max(1, budget // (int(chunk.shape[0]) * width))
            for top in range(0, height, rows):
                yield start, chunk[:, :, top: top + rows]
            start += int(chunk.shape[0]) - overlap
        return
    frames = max(overlap + 1, min(total, budget // max(1, height * width)))
    rows = max(1, budget // (frames * width))
    start = 0
    while True:
        stop = min(total, start + frames)
        for top in range(0, height, rows):
            yield start, frame_range(clip, start, stop, dtype, rows=(top, min(height, top + rows)))
        if stop >= total:
            return
        start = stop - overlap


def clip_to_tensor(frames: np.ndarray, protocol: ClipProtocol, device: torch.device,
                   dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> (T, 3, H', W') in [0, 255], on `device`; uint8 travels, floats are made there."""
    return clip_frames(frames, protocol, device).materialise(dtype)


def clip_to_uint8(frames: np.ndarray, protocol: ClipProtocol, device: torch.device) -> torch.Tensor:
    """(T, H, W, 3) uint8 on `device`, resized per the protocol (rounded back to uint8), for backbones
    whose reference preprocessing starts from uint8 frames."""
    if protocol.resize is None:
        return to_device(frames, device)
    if protocol.resize_mode == "cdfvd":
        return to_device(cdfvd_resize(frames, _cdfvd_resolution(protocol)), device)
    clip = clip_to_tensor(frames, protocol, device, dtype=torch.float32)
    return clip.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
