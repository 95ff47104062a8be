"""Evaluate one check: clips (cached) -> metric -> result. Pure core: no pytest here."""

from __future__ import annotations

import base64
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from fractions import Fraction
from functools import cached_property
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch
import torch.nn.functional as F

from .errors import MetricError, VideoError
from .features import FeatureStore
from .features.backbones import BACKBONES, Backbone
from .features.weights import REGISTRY, locate, verify
from .metrics.base import BackboneRequest, Metric, MetricInputs, MetricResult
from .metrics.registry import MetricRegistry
from .protocol import ClipProtocol
from .stats import Interval, bootstrap_interval
from .suite import CheckSpec, Suite
from .videos.cache import ClipCache
from .videos.decode import check_file
from .videos.prepare import FrameClip, clip_frames
from .videos.sources import SkippedVideo, Video, VideoSet

THUMBNAIL_HEIGHT = 64
THUMBNAIL_VIDEOS = 6
WORST_STRIP_HEIGHT = 192
WORST_VIDEOS = 3


@dataclass
class EvalContext:
    """What every item of one pytest process shares."""

    device: torch.device
    clips: ClipCache
    registry: MetricRegistry
    progress: Callable[[str, bool, float], None] = lambda message, final, elapsed: None
    make_thumbnails: bool = True
    weights_dir: Path | None = None
    allow_unverified_weights: bool = False
    feature_cache_dir: Path | None = None
    _thumbnails: dict[tuple[str, str, tuple[Any, ...]], list[dict[str, str]]] = field(default_factory=dict)
    _backbones: dict[tuple[Any, ...], Backbone] = field(default_factory=dict)

    @cached_property
    def features(self) -> FeatureStore:
        return FeatureStore(self.clips, self.feature_cache_dir)

    def backbone(self, request: BackboneRequest, suite_dir: Path) -> Backbone:
        """One backbone per (network, weights file, precision) and process; weights located and checked here."""
        entry = REGISTRY[request.key]
        explicit = suite_dir / request.weights if request.weights else None
        path = locate(entry, explicit, self.weights_dir)
        key = (request.key, str(path.resolve()), request.precision, request.batch_size)
        if key not in self._backbones:
            check = verify(entry, path, self.allow_unverified_weights)
            self._backbones[key] = BACKBONES[request.key](path, check.sha256, self.device, request.precision,
                                                          request.batch_size, check.status)
        return self._backbones[key]


@dataclass
class CheckResult:
    metric: Metric
    result: MetricResult
    videos_used: dict[str, list[str]]
    skipped: list[SkippedVideo]
    resolution: list[str]
    seconds: float
    thumbnails: dict[str, list[dict[str, str]]]
    interval: Interval | None = None
    bootstrap_seconds: float = 0.0
    decode_seconds: float = 0.0  # part of `seconds` spent decoding
    # set -> video label -> what decoding did to its clip ("loop: 3 -> 16 frames", "upsampled: ...")
    video_notes: dict[str, dict[str, list[str]]] = field(default_factory=dict)


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
        self.features_computed = 0
        self.cache_warnings: list[str] = []
        self.features_cached = 0
        # set -> video label -> what decoding did to the clip (loop, pad, upsampled): scores made from
        # repeated frames say so, per video (CheckResult.video_notes) and in one warning
        self.video_notes: dict[str, dict[str, list[str]]] = {}
        self._unusable: dict[str, set[Path]] = {}  # set name -> its files that are no video at all

    def _note(self, set_name: str, video: Video, notes: Iterable[str]) -> None:
        for note in notes:
            kept = self.video_notes.setdefault(set_name, {}).setdefault(video.label, [])
            if note not in kept:
                kept.append(note)

    def _screen(self, video_set: VideoSet, videos: tuple[Video, ...] | None = None) -> set[Path]:
        """The files of a set (or of its `videos` a check pairs) that are no video at all (missing, dangling
        symlink, symlink loop, Git LFS pointer, empty), found before any decoding. Under on_bad_video: error one
        error names every one of them, not just the first; under skip they are left out and listed."""
        if video_set.name in self._unusable:
            return self._unusable[video_set.name]
        problems: list[tuple[Video, VideoError]] = []
        for video in video_set.videos if videos is None else videos:
            try:
                check_file(video.path)
            except VideoError as exc:
                problems.append((video, exc))
        if problems and self.check.on_bad_video != "skip":
            first = problems[0][1]
            others = "; ".join(f"{bad.label}: {error.problem}" for bad, error in problems[1:11])
            more = f" (and {len(problems) - 11} more)" if len(problems) > 11 else ""
            problem = first.problem + (f"; {len(problems) - 1} more file(s) of set '{video_set.name}' are no "
                                       f"videos either: {others}{more}" if others else "")
            hint = "; ".join(h for h in (first.hint, "or set 'on_bad_video: skip' to leave them out (listed in "
                                         "the reports)") if h)
            raise VideoError(first.path, problem, hint)
        for bad, error in problems:
            self.skipped.append(SkippedVideo(bad.label, error.problem))
        self._unusable[video_set.name] = {bad.path for bad, _ in problems}
        return self._unusable[video_set.name]

    def _tensor(self, video: Video, set_name: str) -> FrameClip | None:
        try:
            clip = self.ctx.clips.get(video, self.check.protocol)
        except VideoError as exc:
            if self.check.on_bad_video == "skip":
                self.skipped.append(SkippedVideo(video.label, exc.problem))
                return None
            raise
        self._note(set_name, video, clip.notes)
        # uint8 frames on the device; metrics convert (and resize) a chunk of frames at a time
        tensor = clip_frames(clip.frames, self.check.protocol, self.ctx.device)
        self.resolutions.add(f"{tensor.shape[-1]}x{tensor.shape[-2]}")
        return tensor

    def _announce(self, set_name: str, done: int, total: int) -> None:
        self.ctx.progress(f"{self.check.id}: {set_name}: {done}/{total} videos", done == total,
                          time.perf_counter() - self.started)

    def clips(self) -> Iterator[tuple[Video, FrameClip]]:
        video_set = self.suite.sets[self.check.sets[0]]
        unusable = self._screen(video_set)
        for index, video in enumerate(video_set.videos, start=1):
            tensor = None if video.path in unusable else self._tensor(video, video_set.name)
            self._announce(video_set.name, index, len(video_set.videos))
            if tensor is not None:
                self.used[video_set.name].append(video.label)
                yield video, tensor

    def used_labels(self, role: str) -> list[str]:
        return list(self.used[self._set_for(role).name])

    def _set_for(self, role: str) -> VideoSet:
        index = {"set": 0, "reference": 0, "candidate": 1}[role]
        if role == "candidate" and len(self.check.sets) < 2:
            raise MetricError(f"{self.check.metric} asked for a candidate set, but the check has one set")
        return self.suite.sets[self.check.sets[index]]

    def features(self, role: str, request: BackboneRequest) -> tuple[list[np.ndarray], dict[str, Any]]:
        video_set = self._set_for(role)
        backbone = self.ctx.backbone(request, self.suite.path.parent)

        def skip(video: Video, error: VideoError) -> None:
            if self.check.on_bad_video != "skip":
                raise error
            self.skipped.append(SkippedVideo(video.label, error.problem))

        def announce(done: int) -> None:
            self._announce(f"{video_set.name} ({backbone.name} features)", done, total)

        computed_before = self.ctx.features.stats.computed
        warnings_before = len(self.ctx.features.stats.warnings)
        unusable = self._screen(video_set)
        videos = [video for video in video_set.videos if video.path not in unusable]
        total = len(videos)
        found = self.ctx.features.features(videos, self.check.protocol, backbone, skip, announce)
        self.used[video_set.name] = [video.label for video, _ in found]
        computed = self.ctx.features.stats.computed - computed_before
        self.features_computed += computed
        self.features_cached += len(found) - computed
        # bad cache entries met on the way (deleted and recomputed), an unwritable cache folder
        self.cache_warnings.extend(self.ctx.features.stats.warnings[warnings_before:])
        if self.ctx.features.disk_problem and self.ctx.features.disk_problem not in self.cache_warnings:
            self.cache_warnings.append(self.ctx.features.disk_problem)
        info = backbone.describe()  # the counts over all of the check's sets are added by evaluate_check
        for video, _ in found:
            self._note(video_set.name, video, self.ctx.clips.notes(video, self.check.protocol))
            self._note_resolution(video)
        return [features for _, features in found], info

    def _note_resolution(self, video: Video) -> None:
        """The size fed to the backbone's own preprocessing (after the protocol's resize)."""
        resize = self.check.protocol.resize
        if isinstance(resize, tuple):
            self.resolutions.add(f"{resize[1]}x{resize[0]}")
        elif resize is None:
            self.resolutions.add("native")
        else:
            self.resolutions.add(f"shorter side {resize}")

    def pairs(self) -> Iterator[tuple[Video, FrameClip, Video, FrameClip]]:
        ref_name, cand_name = self.check.sets
        # only paired videos: an unpaired one is already listed, with that reason
        unusable = (self._screen(self.suite.sets[ref_name], tuple(ref for ref, _ in self.check.pairs))
                    | self._screen(self.suite.sets[cand_name], tuple(cand for _, cand in self.check.pairs)))
        for index, (ref_video, cand_video) in enumerate(self.check.pairs, start=1):
            ref = None if ref_video.path in unusable else self._tensor(ref_video, ref_name)
            cand = None if cand_video.path in unusable else self._tensor(cand_video, cand_name)
            self._announce(f"{ref_name} vs {cand_name}", index, len(self.check.pairs))
            if ref is not None and cand is not None:
                self.used[ref_name].append(ref_video.label)
                self.used[cand_name].append(cand_video.label)
                yield ref_video, ref, cand_video, cand


# DecodedClip.notes are "kind: detail"; the one warning per kind on the score starts with these words
NOTE_HEADINGS = {"loop": "short_video loop applied to", "pad": "short_video pad applied to",
                 "upsampled": "fps above the source rate (frames repeated) for"}
NOTES_LISTED = 5


def summarise_notes(video_notes: dict[str, dict[str, list[str]]], multi_set: bool) -> list[str]:
    """One warning per kind of note: "short_video loop applied to 2 videos: a.mp4 (3 -> 16 frames), ..."."""
    by_kind: dict[str, list[str]] = {}
    for set_name, per_video in video_notes.items():
        for label, notes in per_video.items():
            for note in notes:
                kind, _, detail = note.partition(": ")
                by_kind.setdefault(kind, []).append(f"{label} ({set_name}: {detail})" if multi_set
                                                    else f"{label} ({detail})")
    lines = []
    for kind, entries in by_kind.items():
        listed = ", ".join(entries[:NOTES_LISTED])
        if len(entries) > NOTES_LISTED:
            listed += f", and {len(entries) - NOTES_LISTED} more"
        videos = f"{len(entries)} video{'' if len(entries) == 1 else 's'}"
        lines.append(f"{NOTE_HEADINGS.get(kind, kind + ' for')} {videos}: {listed}")
    return lines


def evaluate_check(suite: Suite, check: CheckSpec, ctx: EvalContext) -> CheckResult:
    metric = ctx.registry.get(check.metric)(check.params, ctx.device)
    inputs = SuiteInputs(suite, check, ctx)
    decodes_before, decode_seconds_before = ctx.clips.stats.decodes, ctx.clips.stats.decode_seconds
    started = time.perf_counter()
    try:
        result = metric.evaluate(inputs)
    except MetricError as exc:
        if inputs.skipped and not any(inputs.used.values()):
            listing = "; ".join(f"{s.label}: {s.reason}" for s in inputs.skipped[:5])
            raise MetricError(f"every video was skipped as bad ({listing})") from exc
        raise
    seconds = time.perf_counter() - started
    result.details["videos_decoded"] = ctx.clips.stats.decodes - decodes_before
    decode_seconds = ctx.clips.stats.decode_seconds - decode_seconds_before
    if "backbone" in result.details:
        result.details["backbone"] = {**result.details["backbone"], "features_computed": inputs.features_computed,
                                      "features_cached": inputs.features_cached}
    weights_check = result.details.get("backbone", {}).get("weights_check", "")
    if weights_check.startswith("UNVERIFIED"):
        result.warnings.append(f"weights {result.details['backbone']['weights']}: {weights_check}; this score is "
                               "not comparable with scores from the published weights")
    if not math.isfinite(result.value):
        raise MetricError(f"{check.metric} produced a non-finite value ({result.value}) from the videos and "
                          "weights of this check; it is never reported as a score (check the inputs and weights, "
                          "and report it if they are sound)")
    _clip_round_off(metric, result)
    differences = metric.protocol_differences(check.protocol.to_dict())
    if differences:
        result.details["not_reference_protocol"] = (f"not comparable with published {metric.reference_name} "
                                                    f"numbers: {'; '.join(differences)}")
    thumbnails = {name: thumbnails_for(suite.sets[name], check.protocol, ctx) for name in check.sets}
    started = time.perf_counter()
    interval = _interval(metric, result, check)
    result.warnings.extend(summarise_notes(inputs.video_notes, multi_set=len(check.sets) > 1))
    result.warnings.extend(dict.fromkeys(inputs.cache_warnings))
    return CheckResult(metric, result, inputs.used, inputs.skipped, sorted(inputs.resolutions), seconds, thumbnails,
                       interval, time.perf_counter() - started, decode_seconds, video_notes=inputs.video_notes)


ROUND_OFF = 1e-6  # float64 cancellation in a Fréchet distance of identical sets is ~1e-10


def _clip_round_off(metric: Metric, result: MetricResult) -> None:
    """A value a hair outside the metric's range (FID of identical sets: -2e-10) is round-off: the value is
    clipped, like its interval, so the two agree; the raw value stays in the details. Further out is a bug."""
    low, high = metric.value_range
    if low is not None and result.value < low:
        bound = low
    elif high is not None and result.value > high:
        bound = high
    else:
        return
    if abs(result.value - bound) > ROUND_OFF * max(1.0, abs(bound)):
        raise MetricError(f"{metric.name} = {result.value!r} is outside its range [{low}, {high}]; this is "
                          "not round-off, so it is not reported as a score")
    result.details["unclipped_value"] = result.value
    result.value = float(bound)


def _interval(metric: Metric, result: MetricResult, check: CheckSpec) -> Interval | None:
    if result.resample is None:
        result.details.setdefault("interval", "not computed: this metric cannot be resampled")
        return None
    spec = check.policy.bootstrap
    try:
        interval = bootstrap_interval(result.value, result.resample, spec.resamples or metric.bootstrap_resamples,
                                      spec.level, spec.seed)
    except ValueError as exc:
        result.warnings.append(f"no bootstrap interval: {exc}")
        return None
    low, high = metric.value_range  # e.g. a distance is never negative, however wide its spread
    return replace(interval, low=interval.low if low is None else max(low, interval.low),
                   high=interval.high if high is None else min(high, interval.high))


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


def thumbnails_for(video_set: VideoSet, protocol: ClipProtocol, ctx: EvalContext) -> list[dict[str, str]]:
    """Thumbnail strips of the first videos of a set, from clips this process has decoded anyway."""
    if not ctx.make_thumbnails:
        return []
    key = (video_set.name, str(video_set.videos[0].path), protocol.decode_key())
    if key not in ctx._thumbnails:
        strips = []
        for video in video_set.videos[:THUMBNAIL_VIDEOS]:
            clip = ctx.clips.peek(video, protocol)  # never decode just for a picture (warm feature caches)
            if clip is None:
                continue
            strips.append({"video": video.label, "src": _strip(clip.frames)})
        if strips:
            ctx._thumbnails[key] = strips
        return strips
    return ctx._thumbnails[key]


def worst_video_strips(suite: Suite, check: CheckSpec, ctx: EvalContext, labels: list[str]) -> list[dict[str, str]]:
    """Larger strips of the given videos (the worst of a check), reference and candidate side by side for a
    paired check: what a reviewer needs to see the artefact. Clips come from this process's cache; the few
    that were evicted are decoded again (a handful of videos, never a whole set)."""
    if not ctx.make_thumbnails or not labels:
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
                clip = ctx.clips.peek(video, check.protocol) or ctx.clips.get(video, check.protocol)
            except VideoError:
                continue
            entry[role] = _strip(clip.frames, WORST_STRIP_HEIGHT)
            entry[f"{role}_label"] = video.label
        strips.append(entry)
    return strips
