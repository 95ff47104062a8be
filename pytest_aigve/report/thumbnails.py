"""Thumbnail strips for the HTML report: first, middle and last frame of a set's first videos, and larger strips
of a check's worst videos, from clips the process has decoded anyway (JPEG via PyAV's MJPEG encoder)."""

from __future__ import annotations

import base64
from fractions import Fraction
from typing import Any

import av
import numpy as np
import torch
import torch.nn.functional as F

from ..errors import VideoError
from ..protocol import ClipProtocol
from ..suite import CheckSpec, Suite
from ..videos.cache import ClipCache
from ..videos.sources import Video, VideoSet

THUMBNAIL_HEIGHT = 64
THUMBNAIL_VIDEOS = 6
WORST_STRIP_HEIGHT = 192
WORST_VIDEOS = 3

ThumbnailMemo = dict[tuple[str, str, tuple[Any, ...]], list[dict[str, str]]]


def _jpeg(image: np.ndarray) -> bytes:
    """(H, W, 3) uint8 with even sides -> JPEG bytes, with PyAV's MJPEG encoder."""
    codec = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height = image.shape[1], image.shape[0]
    codec.pix_fmt = "yuvj420p"
    codec.time_base = Fraction(1, 1)
    codec.options = {"q": "4"}
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24").reformat(format="yuvj420p")
    return b"".join(bytes(packet) for packet in [*codec.encode(frame), *codec.encode(None)])


def _strip(frames: np.ndarray, strip_height: int = THUMBNAIL_HEIGHT) -> str:
    """First, middle and last frame side by side, JPEG, as a data: URI."""
    picks = frames[[0, len(frames) // 2, len(frames) - 1]]
    tensor = torch.from_numpy(np.ascontiguousarray(picks)).permute(0, 3, 1, 2).float()
    height, width = tensor.shape[-2:]
    strip_height = min(strip_height, 2 * (int(height) // 2))  # never enlarge: the reviewer looks for artefacts
    size = (strip_height, 2 * max(1, round(width * strip_height / height / 2)))
    small = F.interpolate(tensor, size=size, mode="bilinear", antialias=True, align_corners=False)
    strip = torch.cat(list(small), dim=2).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0)
    return "data:image/jpeg;base64," + base64.b64encode(_jpeg(strip.numpy())).decode()


def thumbnails_for(video_set: VideoSet, protocol: ClipProtocol, clips: ClipCache,
                   memo: ThumbnailMemo) -> list[dict[str, str]]:
    """Thumbnail strips of the first videos of a set, from clips this process has decoded anyway (remembered in
    `memo`, so a set's strips are made once per process)."""
    key = (video_set.name, str(video_set.videos[0].path), protocol.decode_key())
    if key not in memo:
        strips = []
        for video in video_set.videos[:THUMBNAIL_VIDEOS]:
            clip = clips.peek(video, protocol)  # never decode just for a picture (warm feature caches)
            if clip is None:
                continue
            strips.append({"video": video.label, "src": _strip(clip.frames)})
        if strips:
            memo[key] = strips
        return strips
    return memo[key]


def worst_video_strips(suite: Suite, check: CheckSpec, clips: ClipCache, labels: list[str]) -> list[dict[str, str]]:
    """Larger strips of the given videos (the worst of a check), reference and candidate side by side for a
    paired check: what a reviewer needs to see the artefact. Clips come from this process's cache; the few
    that were evicted are decoded again (a handful of videos, never a whole set)."""
    if not labels:
        return []
    by_label: dict[str, tuple[Video | None, Video]]
    if check.pairs:
        by_label = {cand.label: (ref, cand) for ref, cand in check.pairs}
    else:
        by_label = {video.label: (None, video) for video in suite.sets[check.sets[0]].videos}
    strips = []
    for label in labels:
        if label not in by_label:
            continue
        entry = {"video": label}
        for role, video in zip(("reference", "candidate"), by_label[label], strict=True):
            if video is None:
                continue
            try:
                clip = clips.peek(video, check.protocol) or clips.get(video, check.protocol)
            except VideoError:
                continue
            entry[role] = _strip(clip.frames, WORST_STRIP_HEIGHT)
            entry[f"{role}_label"] = video.label
        strips.append(entry)
    return strips
