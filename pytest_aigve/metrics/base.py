"""What a metric is: a name, a direction, the inputs it reads, validated parameters and an evaluate()."""

from __future__ import annotations

import contextlib
import difflib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from ..errors import MetricError, ParamError
from ..gate import Tolerance
from ..stats import MeanAccumulator
from ..videos.prepare import Clip, FrameClip
from ..videos.sources import Video

InputKind = Literal["single", "paired", "sets"]  # one set; frame-aligned pairs; two sets as distributions


@dataclass(frozen=True)
class ParamSpec:
    default: Any
    check: Callable[[Any], Any]  # returns the normalised value or raises ValueError(reason)
    help: str


@dataclass(frozen=True)
class SetSamples:
    """What a set-level metric needs to compare two runs video by video: the reference set's per-video feature
    blocks, the candidate's by video label, and the statistic over (reference rows, candidate rows). `prepare`
    turns a backbone's raw per-video features into a block (e.g. FID keeps Inception's pool3 columns)."""

    reference: list[np.ndarray]
    candidate: dict[str, np.ndarray]
    statistic: Callable[[np.ndarray, np.ndarray], float]
    prepare: Callable[[np.ndarray], np.ndarray]
    request: BackboneRequest


@dataclass
class MetricResult:
    value: float
    per_video: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    # recomputes the score on the set's videos drawn with replacement (for the bootstrap interval);
    # None where that is not possible or too costly (then the reason is in details["interval"])
    resample: Callable[[np.random.Generator], float] | None = None
    samples: SetSamples | None = None  # set-level metrics: per-video features for a paired baseline comparison


class MetricInputs(ABC):
    """Clips for a metric, each a `Clip` on the metric's device: a float tensor (T, 3, H, W) in [0, 255], or a
    FrameClip (uint8 frames, resized per the protocol and converted to float a chunk at a time, with the same
    `shape`; what the runner gives, so that no float copy of a whole clip need exist). PerVideoMetric and
    PairedMetric hand score_clip/score_pair whole float tensors (T, 3, H, W) (a FrameClip materialised as float64)
    unless the metric sets `reads_frame_clips`: then it gets the Clip as it came and converts a chunk at a time.

    Bad videos are either raised (VideoError) or, under `on_bad_video: skip`, left out and listed.
    """

    @abstractmethod
    def clips(self) -> Iterator[tuple[Video, Clip]]: ...

    @abstractmethod
    def pairs(self) -> Iterator[tuple[Video, Clip, Video, Clip]]: ...

    @abstractmethod
    def features(self, role: str, request: BackboneRequest) -> tuple[list[np.ndarray], dict[str, Any]]:
        """Per-video backbone features of the check's `set`, `reference` or `candidate` set, and a
        description of the backbone that made them (recorded with the score)."""

    def used_labels(self, role: str) -> list[str]:
        """The labels of the videos of a role's set that the last features()/clips() call used, in order."""
        raise NotImplementedError


@dataclass(frozen=True)
class BackboneRequest:
    key: str  # inception, i3d, videomae, r3d18
    weights: str | None = None  # an explicit weights path from the suite
    precision: str = "fp32"
    batch_size: int = 16


class Metric(ABC):
    name: ClassVar[str]
    description: ClassVar[str]
    higher_is_better: ClassVar[bool]
    inputs: ClassVar[InputKind]
    min_frames: ClassVar[int] = 1
    params: ClassVar[Mapping[str, ParamSpec]] = {}
    precision: ClassVar[str] = "fp64"
    bootstrap_resamples: ClassVar[int] = 1000  # default; the suite's `bootstrap.resamples` overrides it
    value_range: ClassVar[tuple[float | None, float | None]] = (None, None)  # intervals are clipped to it
    # the protocol fields the published reference fixes (e.g. VBench reads every native frame), and its name;
    # a check that differs is recorded as not comparable with published numbers
    # the per-video gate against a baseline unless a suite says otherwise: a video whose own score worsens by
    # more than this fails the check (one collapsed video in a small set is otherwise lost in the mean)
    default_max_drop: ClassVar[Tolerance | None] = None
    # the set-level tolerance against a baseline unless a suite sets one (0 where None)
    default_tolerance: ClassVar[Tolerance | None] = None
    reference_protocol: ClassVar[Mapping[str, Any]] = {}
    reference_name: ClassVar[str] = ""

    def __init__(self, params: Mapping[str, Any], device: torch.device) -> None:
        self.options = dict(params)
        self.device = device

    @classmethod
    def validate_params(cls, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Fill defaults and check values; ParamError names the key and the allowed values."""
        values = {key: spec.default for key, spec in cls.params.items()}
        for key, value in raw.items():
            if key not in cls.params:
                known = ", ".join(cls.params) or "none"
                close = difflib.get_close_matches(key, list(cls.params), n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                raise ParamError(key, f"metric '{cls.name}' has no parameter '{key}' (known: {known}){hint}")
            try:
                values[key] = cls.params[key].check(value)
            except (ValueError, TypeError) as exc:
                raise ParamError(key, f"metric '{cls.name}': parameter '{key}': {exc} "
                                      f"({cls.params[key].help})") from None
        return values

    def check_clip(self, video: Video, clip: Clip) -> None:
        if clip.shape[0] < self.min_frames:
            raise MetricError(f"{video.path}: {self.name} needs at least {self.min_frames} frames per clip, "
                              f"the protocol gave {clip.shape[0]}; raise 'frames' in the protocol")

    @classmethod
    def protocol_differences(cls, protocol: Mapping[str, Any]) -> list[str]:
        """'fps: 8.0 (reference: None)' for each field where a check's protocol is not the reference's."""
        return [f"{key}: {protocol.get(key)!r} (reference: {value!r})" for key, value in cls.reference_protocol.items()
                if protocol.get(key) != value]

    @classmethod
    def protocol_overrides(cls, params: Mapping[str, Any]) -> dict[str, Any]:
        """Protocol fields a metric's parameters fix (e.g. CD-FVD's resolution); recorded like any other."""
        return {}

    @abstractmethod
    def evaluate(self, inputs: MetricInputs) -> MetricResult: ...


def _mean_result(scores: dict[str, float], metric: str) -> MetricResult:
    accumulator = MeanAccumulator()
    for value in scores.values():
        accumulator.update(value)
    if accumulator.count == 0:
        raise MetricError(f"{metric}: no video could be scored")
    values = np.fromiter(scores.values(), dtype=np.float64)

    def resample(rng: np.random.Generator) -> float:
        return float(values[rng.integers(0, values.size, values.size)].mean())

    return MetricResult(accumulator.mean(), scores, {"std": accumulator.std(), "n": accumulator.count},
                        resample=resample)


# torch threads for the built-in pixel metrics on the CPU. Their work is many small cache-sized operations; with a
# thread per core, on a loaded 2-core machine (pytest-xdist workers, a parallel job) every operation waits for a
# descheduled thread at its barrier: SSIM on 720p took 1.5-5 s per frame instead of 0.1 s (cf. kid.py).
PIXEL_CPU_THREADS = 1


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """torch's intra-op (and BLAS) threads set to `count` inside the block, restored after it."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def pixel_threads(device: torch.device) -> Iterator[None]:
    """PIXEL_CPU_THREADS inside the block on the CPU; other devices unchanged."""
    if device.type != "cpu":
        yield
        return
    with torch_threads(PIXEL_CPU_THREADS):
        yield


def _whole(clip: Clip) -> torch.Tensor:
    """The float64 (T, 3, H, W) tensor a metric that does not read FrameClips gets."""
    return clip.materialise(torch.float64) if isinstance(clip, FrameClip) else clip


class PerVideoMetric(Metric):
    """A score per video, averaged over the set."""

    inputs: ClassVar[InputKind] = "single"
    # True: score_clip takes a Clip (FrameClip or tensor) and converts a few frames at a time (bounded memory);
    # False: it gets the whole clip as one float64 tensor, as metrics written before FrameClip expect
    reads_frame_clips: ClassVar[bool] = False

    @abstractmethod
    def score_clip(self, clip: Any) -> float: ...

    def evaluate(self, inputs: MetricInputs) -> MetricResult:
        scores: dict[str, float] = {}
        for video, clip in inputs.clips():
            self.check_clip(video, clip)
            scores[video.label] = self.score_clip(clip if self.reads_frame_clips else _whole(clip))
        return _mean_result(scores, self.name)


class PairedMetric(Metric):
    """A score per (reference, candidate) pair of frame-aligned clips, averaged over the pairs."""

    inputs: ClassVar[InputKind] = "paired"
    reads_frame_clips: ClassVar[bool] = False  # as PerVideoMetric's

    @abstractmethod
    def score_pair(self, reference: Any, candidate: Any) -> float: ...

    def evaluate(self, inputs: MetricInputs) -> MetricResult:
        scores: dict[str, float] = {}
        for ref_video, ref, cand_video, cand in inputs.pairs():
            self.check_clip(ref_video, ref)
            self.check_clip(cand_video, cand)
            if ref.shape != cand.shape:
                raise MetricError(
                    f"{self.name}: reference {ref_video.path} and candidate {cand_video.path} differ in shape "
                    f"(frames x channels x height x width: {tuple(ref.shape)} vs {tuple(cand.shape)}); "
                    "set 'resize: [height, width]' in the protocol, or use videos of the same size and length")
            if self.reads_frame_clips:
                scores[cand_video.label] = self.score_pair(ref, cand)
            else:
                scores[cand_video.label] = self.score_pair(_whole(ref), _whole(cand))
        return _mean_result(scores, self.name)
