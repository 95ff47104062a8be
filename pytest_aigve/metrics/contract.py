"""The typed contract between the engine and a metric: the inputs a metric reads (by role), the declarative spec
of those inputs, what it asks of a backbone, and the frozen result it returns. Metric authors import these
through `pytest_aigve.metrics.api`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from ..errors import MetricError
from ..videos.prepare import Clip
from ..videos.sources import Video

Role = Literal["set", "reference", "candidate"]
InputKind = Literal["single", "paired", "sets"]  # one set; frame-aligned pairs; two sets as distributions
Precision = Literal["fp64", "fp32", "bf16"]


@dataclass(frozen=True)
class InputsSpec:
    """What a metric reads, declared on its class and validated when a suite is loaded.

    kind: `single` reads one set (`set:` in the suite); `paired` reads frame-aligned pairs of two sets;
    `sets` compares two sets as distributions (`reference:` and `candidate:`).
    frame_clips: score_clip/score_pair get uint8 FrameClips and convert a few frames at a time (bounded memory);
    otherwise each clip arrives whole as a float64 tensor (T, 3, H, W) in [0, 255].
    """

    kind: InputKind = "single"
    min_frames: int = 1
    needs_prompts: bool = False
    frame_clips: bool = False


@dataclass(frozen=True)
class BackboneRequest:
    """A backbone a metric asks for. `batch_size` is samples per forward pass only (None: the backbone's
    default); it is not part of the backbone's identity, so checks differing only in it share one model;
    `options` are."""

    key: str  # a name in the backbone registry: inception, i3d, videomae, r3d18, or a plugin's
    weights: str | None = None  # an explicit weights path from the suite, relative to the suite file
    precision: str = "fp32"
    batch_size: int | None = None
    output: str | None = None  # one of the backbone's named outputs (inception: pool3, logits_unbiased); None: all
    # settings that change what the backbone computes (DOVER's sampling seed): (name, value) pairs among the
    # backbone's `option_defaults`; part of its identity, so features made with other settings never mix
    options: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class BackboneInfo:
    """The backbone that made a score's features: recorded with the score and in its fingerprint."""

    name: str
    weights: str
    weights_sha256: str
    weights_check: str
    input: str
    precision: str
    device: str
    licence: str = ""
    output: str | None = None
    features_computed: int = 0
    features_cached: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}


@dataclass(frozen=True)
class VideoFeatures:
    """One video's features: rows are frames (per-frame backbones) or a single clip row."""

    video: Video
    features: np.ndarray

    @property
    def label(self) -> str:
        return self.video.label


@dataclass(frozen=True)
class FeatureSet:
    """The features of the videos of one role's set that could be used, in set order, and their backbone."""

    videos: tuple[VideoFeatures, ...]
    backbone: BackboneInfo

    @property
    def blocks(self) -> list[np.ndarray]:
        return [np.atleast_2d(item.features) for item in self.videos]

    @property
    def labels(self) -> list[str]:
        return [item.label for item in self.videos]


@dataclass(frozen=True)
class SetSamples:
    """What a set-level metric needs to compare two runs video by video: the reference set's per-video feature
    blocks, the candidate's by video label, and the statistic over (reference rows, candidate rows). Baseline
    features are looked up by `request` (the same backbone output) in the feature cache."""

    reference: list[np.ndarray]
    candidate: dict[str, np.ndarray]
    statistic: Callable[[np.ndarray, np.ndarray], float]
    request: BackboneRequest


Resampler = Callable[[np.random.Generator], float]


@dataclass(frozen=True)
class MetricResult:
    """A metric's answer. `resample` recomputes the score on the set's videos drawn with replacement (the
    bootstrap interval); where that is impossible, `no_interval` says why. `details` holds metric-specific
    numbers only: the backbone, interval and warnings have fields of their own."""

    value: float
    per_video: Mapping[str, float] = field(default_factory=dict)
    details: Mapping[str, Any] = field(default_factory=dict)
    warnings: Sequence[str] = ()  # kept as a tuple
    resample: Resampler | None = None
    no_interval: str | None = None
    backbone: BackboneInfo | None = None
    samples: SetSamples | None = None  # set-level metrics: per-video features for a paired baseline comparison

    def __post_init__(self) -> None:
        object.__setattr__(self, "warnings", tuple(self.warnings))  # a list from a metric is frozen here


class MetricInputs(ABC):
    """What a metric reads, by role (`set`, `reference`, `candidate`). Clips are `Clip`s on the metric's device:
    uint8 FrameClips (floats made a chunk at a time) or float tensors (T, 3, H, W) in [0, 255]. Bad videos are
    either raised (VideoError) or, under `on_bad_video: skip`, left out and listed by the engine."""

    @abstractmethod
    def clips(self, role: Role = "set") -> Iterator[tuple[Video, Clip]]: ...

    @abstractmethod
    def pairs(self) -> Iterator[tuple[Video, Clip, Video, Clip]]: ...

    @abstractmethod
    def features(self, role: Role, request: BackboneRequest) -> FeatureSet:
        """Per-video backbone features of a role's set (the request's named output), with the backbone."""

    def prompts(self, role: Role = "set") -> dict[str, str]:
        """The prompt of each video of a role's set that has one, by video label."""
        return {}

    def text_features(self, role: Role, request: BackboneRequest) -> FeatureSet:
        """The text encoder's features of each video's prompt (videos without a prompt are left out)."""
        raise NotImplementedError(f"{type(self).__name__} has no text encoders")


def require_rows(features: FeatureSet, metric: str, role: str) -> list[np.ndarray]:
    """The feature blocks of a role's set, or an error when no video of it could be used."""
    if not features.videos:
        raise MetricError(f"{metric}: no video of the {role} set could be used")
    return features.blocks
