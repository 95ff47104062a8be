"""The inputs of one check: clips, pairs, backbone features and prompts of its sets, by role, applying the suite's
on_bad_video policy and keeping what the reports need (videos used and skipped, decoding notes, resolutions)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path

from ..errors import MetricError, VideoError
from ..features.backbones import TextEncoder
from ..metrics.contract import BackboneRequest, FeatureSet, MetricInputs, Role, VideoFeatures
from ..suite import CheckSpec, Suite
from ..videos.decode import DecodedClip, check_file
from ..videos.pipeline import DecodeStats
from ..videos.prepare import FrameClip, clip_frames
from ..videos.sources import SkippedVideo, Video, VideoSet
from .context import EvalContext


class SuiteInputs(MetricInputs):
    """Feeds a metric the clips of a check's sets, applying the suite's on_bad_video policy."""

    def __init__(self, suite: Suite, check: CheckSpec, ctx: EvalContext) -> None:
        self.suite, self.check, self.ctx = suite, check, ctx
        self.used: dict[str, list[str]] = {name: [] for name in check.sets}
        # left out before any decoding: unmatched in pairing, by the set's own definition, or without a prompt
        found_earlier = [*check.unpaired, *(s for name in check.sets for s in suite.sets[name].skipped),
                         *check.without_prompt]
        self.skipped: list[SkippedVideo] = list(dict.fromkeys(found_earlier))
        self.resolutions: set[str] = set()
        self.started = time.perf_counter()
        self.features_computed = 0
        self.decode_stats = DecodeStats()  # what decoding cost this check (clips and backbone features)
        self.cache_warnings: list[str] = []
        self.features_cached = 0
        self.text_features_computed = 0  # prompts run through a text encoder by this check
        self.text_features_cached = 0  # prompts whose features came from the cache
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

    def _stream(self, videos: list[Video]) -> Iterator[tuple[Video, DecodedClip | VideoError]]:
        """The clips of `videos` in order, decoded ahead (ClipCache.stream); this call's decode statistics are
        added to the check's, also when the metric stops reading early."""
        stream = self.ctx.clips.stream(videos, self.check.protocol)
        try:
            yield from stream
        finally:
            stream.close()
            self.decode_stats += stream.stats

    def _tensor(self, video: Video, outcome: DecodedClip | VideoError, set_name: str) -> FrameClip | None:
        if isinstance(outcome, VideoError):
            if self.check.on_bad_video == "skip":
                self.skipped.append(SkippedVideo(video.label, outcome.problem))
                return None
            raise outcome
        clip = outcome
        self._note(set_name, video, clip.notes)
        # uint8 frames on the device; metrics convert (and resize) a chunk of frames at a time
        tensor = clip_frames(clip.frames, self.check.protocol, self.ctx.device)
        self.resolutions.add(f"{tensor.shape[-1]}x{tensor.shape[-2]}")
        return tensor

    def _announce(self, set_name: str, done: int, total: int) -> None:
        self.ctx.progress(f"{self.check.id}: {set_name}: {done}/{total} videos", done == total,
                          time.perf_counter() - self.started)

    def clips(self, role: Role = "set") -> Iterator[tuple[Video, FrameClip]]:
        video_set = self._set_for(role)
        unusable = self._screen(video_set)
        videos = [video for video in video_set.videos if video.path not in unusable]
        for index, (video, outcome) in enumerate(self._stream(videos), start=1):
            tensor = self._tensor(video, outcome, video_set.name)
            self._announce(video_set.name, index, len(videos))
            if tensor is not None:
                self.used[video_set.name].append(video.label)
                yield video, tensor

    def _set_for(self, role: Role) -> VideoSet:
        index = {"set": 0, "reference": 0, "candidate": 1}[role]
        if role == "candidate" and len(self.check.sets) < 2:
            raise MetricError(f"{self.check.metric} asked for a candidate set, but the check has one set")
        video_set = self.suite.sets[self.check.sets[index]]
        if self.check.without_prompt:  # listed in skipped (found_earlier); pairs() reads check.pairs, filtered too
            video_set = replace(video_set, videos=tuple(video for video in video_set.videos if video.prompt))
        return video_set

    def prompts(self, role: Role = "set") -> dict[str, str]:
        return {video.label: video.prompt for video in self._set_for(role).videos if video.prompt}

    def features(self, role: Role, request: BackboneRequest) -> FeatureSet:
        video_set = self._set_for(role)
        backbone = self.ctx.backbone(request, self.suite.path.parent)
        columns = backbone.output_columns(request.output)

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
        found = self.ctx.features.features(videos, self.check.protocol, backbone, skip, announce, request.batch_size,
                                           self.decode_stats)
        self.used[video_set.name] = [video.label for video, _ in found]
        computed = self.ctx.features.stats.computed - computed_before
        self.features_computed += computed
        self.features_cached += len(found) - computed
        # bad cache entries met on the way (deleted and recomputed), an unwritable cache folder
        self.cache_warnings.extend(self.ctx.features.stats.warnings[warnings_before:])
        if self.ctx.features.disk_problem and self.ctx.features.disk_problem not in self.cache_warnings:
            self.cache_warnings.append(self.ctx.features.disk_problem)
        for video, _ in found:
            self._note(video_set.name, video, self.ctx.clips.notes(video, self.check.protocol))
            self._note_resolution(video)
        # the counts over all of the check's sets are added by evaluate_check
        return FeatureSet(tuple(VideoFeatures(video, features[:, columns] if features.ndim == 2 else features[columns])
                                for video, features in found), backbone.info(request.output))

    def text_features(self, role: Role, request: BackboneRequest) -> FeatureSet:
        encoder = self.ctx.backbone(request, self.suite.path.parent)
        if not isinstance(encoder, TextEncoder):
            raise MetricError(f"{self.check.metric} asked for text features from '{request.key}', which is a "
                              f"{encoder.kind} backbone, not a text encoder")
        videos = [video for video in self._set_for(role).videos if video.prompt]
        computed_before = self.ctx.features.stats.computed
        features = self.ctx.features.text_features([video.prompt or "" for video in videos], encoder,
                                                   request.batch_size)
        computed = self.ctx.features.stats.computed - computed_before
        self.text_features_computed += computed
        self.text_features_cached += len({video.prompt for video in videos}) - computed
        columns = encoder.output_columns(request.output)
        rows = zip(videos, features, strict=True)
        items = tuple(VideoFeatures(video, row[columns]) for video, row in rows)
        return FeatureSet(items, encoder.info(request.output))

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
        pairs = [(ref, cand) for ref, cand in self.check.pairs
                 if ref.path not in unusable and cand.path not in unusable]
        stream = self._stream([video for pair in pairs for video in pair])  # reference, candidate, reference, ...
        for index, ((ref_video, ref_outcome), (cand_video, cand_outcome)) in enumerate(zip(stream, stream, strict=True),
                                                                                      start=1):
            ref = self._tensor(ref_video, ref_outcome, ref_name)
            cand = self._tensor(cand_video, cand_outcome, cand_name)
            self._announce(f"{ref_name} vs {cand_name}", index, len(pairs))
            if ref is not None and cand is not None:
                self.used[ref_name].append(ref_video.label)
                self.used[cand_name].append(cand_video.label)
                yield ref_video, ref, cand_video, cand

