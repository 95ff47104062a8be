"""Evaluate one check: clips (cached) -> metric -> result. Pure core: no pytest here."""

from __future__ import annotations

import base64
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import av
import numpy as np
import torch
import torch.nn.functional as F

from .errors import MetricError, VideoError
from .metrics.base import Metric, MetricInputs, MetricResult
from .metrics.registry import MetricRegistry
from .protocol import ClipProtocol
from .suite import CheckSpec, Suite
from .videos.cache import ClipCache
from .videos.prepare import clip_to_tensor
from .videos.sources import SkippedVideo, Video, VideoSet

THUMBNAIL_HEIGHT = 64
THUMBNAIL_VIDEOS = 6


@dataclass
class EvalContext:
    """What every item of one pytest process shares."""

    device: torch.device
    clips: ClipCache
    registry: MetricRegistry
    progress: Callable[[str, bool, float], None] = lambda message, final, elapsed: None
    make_thumbnails: bool = True
    _thumbnails: dict[tuple[str, str, tuple[Any, ...]], list[dict[str, str]]] = field(default_factory=dict)


@dataclass
class CheckResult:
    metric: Metric
    result: MetricResult
    videos_used: dict[str, list[str]]
    skipped: list[SkippedVideo]
    resolution: list[str]
    seconds: float
    thumbnails: dict[str, list[dict[str, str]]]


class SuiteInputs(MetricInputs):
    """Feeds a metric the clips of a check's sets, applying the suite's on_bad_video policy."""

    def __init__(self, suite: Suite, check: CheckSpec, ctx: EvalContext) -> None:
        self.suite, self.check, self.ctx = suite, check, ctx
        self.used: dict[str, list[str]] = {name: [] for name in check.sets}
        # left out before any decoding: unmatched in pairing, or by the set's own definition
        found_earlier = [*check.unpaired, *(s for name in check.sets for s in suite.sets[name].skipped)]
        self.skipped: list[SkippedVideo] = list(dict.fromkeys(found_earlier))
        self.resolutions: set[str] = set()
        self.started = time.perf_counter()

    def _tensor(self, video: Video) -> torch.Tensor | None:
        try:
            clip = self.ctx.clips.get(video, self.check.protocol)
        except VideoError as exc:
            if self.check.on_bad_video == "skip":
                self.skipped.append(SkippedVideo(video.label, exc.problem))
                return None
            raise
        tensor = clip_to_tensor(clip.frames, self.check.protocol, self.ctx.device)
        self.resolutions.add(f"{tensor.shape[-1]}x{tensor.shape[-2]}")
        return tensor

    def _announce(self, set_name: str, done: int, total: int) -> None:
        self.ctx.progress(f"{self.check.id}: {set_name}: {done}/{total} videos", done == total,
                          time.perf_counter() - self.started)

    def clips(self) -> Iterator[tuple[Video, torch.Tensor]]:
        video_set = self.suite.sets[self.check.sets[0]]
        for index, video in enumerate(video_set.videos, start=1):
            tensor = self._tensor(video)
            self._announce(video_set.name, index, len(video_set.videos))
            if tensor is not None:
                self.used[video_set.name].append(video.label)
                yield video, tensor

    def pairs(self) -> Iterator[tuple[Video, torch.Tensor, Video, torch.Tensor]]:
        ref_name, cand_name = self.check.sets
        for index, (ref_video, cand_video) in enumerate(self.check.pairs, start=1):
            ref, cand = self._tensor(ref_video), self._tensor(cand_video)
            self._announce(f"{ref_name} vs {cand_name}", index, len(self.check.pairs))
            if ref is not None and cand is not None:
                self.used[ref_name].append(ref_video.label)
                self.used[cand_name].append(cand_video.label)
                yield ref_video, ref, cand_video, cand


def evaluate_check(suite: Suite, check: CheckSpec, ctx: EvalContext) -> CheckResult:
    metric = ctx.registry.get(check.metric)(check.params, ctx.device)
    inputs = SuiteInputs(suite, check, ctx)
    started = time.perf_counter()
    try:
        result = metric.evaluate(inputs)
    except MetricError as exc:
        if inputs.skipped and not any(inputs.used.values()):
            listing = "; ".join(f"{s.label}: {s.reason}" for s in inputs.skipped[:5])
            raise MetricError(f"every video was skipped as bad ({listing})") from exc
        raise
    seconds = time.perf_counter() - started
    if not math.isfinite(result.value):
        raise MetricError(f"{check.metric} produced a non-finite value ({result.value}); this is a bug in the "
                          "metric or degenerate input, and is never reported as a score")
    thumbnails = {name: thumbnails_for(suite.sets[name], check.protocol, ctx) for name in check.sets}
    return CheckResult(metric, result, inputs.used, inputs.skipped, sorted(inputs.resolutions), seconds, thumbnails)


def _jpeg(image: np.ndarray) -> bytes:
    """(H, W, 3) uint8 with even sides -> JPEG bytes, with PyAV's MJPEG encoder."""
    codec = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height = image.shape[1], image.shape[0]
    codec.pix_fmt = "yuvj420p"
    codec.time_base = Fraction(1, 1)
    codec.options = {"q": "4"}
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24").reformat(format="yuvj420p")
    return b"".join(bytes(packet) for packet in [*codec.encode(frame), *codec.encode(None)])


def _strip(frames: np.ndarray) -> str:
    """First, middle and last frame side by side, JPEG, as a data: URI."""
    picks = frames[[0, len(frames) // 2, len(frames) - 1]]
    tensor = torch.from_numpy(np.ascontiguousarray(picks)).permute(0, 3, 1, 2).float()
    height, width = tensor.shape[-2:]
    size = (THUMBNAIL_HEIGHT, 2 * max(1, round(width * THUMBNAIL_HEIGHT / height / 2)))
    small = F.interpolate(tensor, size=size, mode="bilinear", antialias=True, align_corners=False)
    strip = torch.cat(list(small), dim=2).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0)
    return "data:image/jpeg;base64," + base64.b64encode(_jpeg(strip.numpy())).decode()


def thumbnails_for(video_set: VideoSet, protocol: ClipProtocol, ctx: EvalContext) -> list[dict[str, str]]:
    """Thumbnail strips of the first videos of a set, from the clip cache (decoded already, unless evicted)."""
    if not ctx.make_thumbnails:
        return []
    key = (video_set.name, str(video_set.videos[0].path), protocol.decode_key())
    if key not in ctx._thumbnails:
        strips = []
        for video in video_set.videos[:THUMBNAIL_VIDEOS]:
            try:
                clip = ctx.clips.get(video, protocol)
            except VideoError:
                continue
            strips.append({"video": video.label, "src": _strip(clip.frames)})
        ctx._thumbnails[key] = strips
    return ctx._thumbnails[key]
