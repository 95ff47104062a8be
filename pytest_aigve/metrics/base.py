"""What a metric is: a name, a direction, the inputs it reads (InputsSpec), validated parameters, the backbones it
asks for, and an evaluate() returning a frozen MetricResult. Suite loading checks what can be checked before any
video is decoded (frames, precision, device) through `requirement_problems`."""

from __future__ import annotations

import contextlib
import difflib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from ..errors import MetricError, ParamError
from ..gate import Tolerance
from ..protocol import ClipProtocol
from ..stats import MeanAccumulator
from ..videos.prepare import Clip, FrameClip
from ..videos.sources import Video
from .contract import BackboneRequest, InputsSpec, MetricInputs, MetricResult
from .params import ParamSpec

if TYPE_CHECKING:
    from ..features.registry import BackboneRegistry

class Metric(ABC):
    name: ClassVar[str]
    description: ClassVar[str]
    higher_is_better: ClassVar[bool]
    spec: ClassVar[InputsSpec] = InputsSpec()
    params: ClassVar[Mapping[str, ParamSpec[Any]]] = {}
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

    @classmethod
    def score_params(cls, params: Mapping[str, Any]) -> dict[str, Any]:
        """The parameters that can change the score (what a baseline fingerprint compares)."""
        return {key: value for key, value in params.items() if key not in cls.params or cls.params[key].affects_score}

    @classmethod
    def backbone_requests(cls, params: Mapping[str, Any]) -> tuple[BackboneRequest, ...]:
        """The backbones a check with these (validated) parameters will ask for; checked at suite loading."""
        return ()

    @classmethod
    def requirement_problems(cls, params: Mapping[str, Any], protocol: ClipProtocol, backbones: BackboneRegistry,
                             device_type: str | None) -> list[tuple[str | None, str]]:
        """What makes this check impossible before anything is decoded: (the parameter to blame, or None for
        the check, the message). Frames are checked where the protocol fixes them; the device where known."""
        problems: list[tuple[str | None, str]] = []
        needed, needed_by = cls.spec.min_frames, cls.name
        for request in cls.backbone_requests(params):
            if request.key not in backbones:
                problems.append((None, f"{cls.name} asks for backbone '{request.key}', which is not registered "
                                       f"(known: {', '.join(backbones.names())})"))
                continue
            backbone = backbones.get(request.key)
            problem = backbone.precision_problem(request.precision, device_type)
            if problem:
                problems.append(("precision", problem))
            problem = backbone.options_problem(dict(request.options))
            if problem:
                problems.append((None, problem))
            if request.output is not None and request.output not in backbone.outputs:
                problems.append((None, f"{cls.name} asks for output '{request.output}' of backbone "
                                       f"'{request.key}', which has {', '.join(backbone.outputs)}"))
            if backbone.min_frames > needed:
                needed, needed_by = backbone.min_frames, f"{cls.name} ({backbone.name})"
        if protocol.frames is not None and protocol.frames < needed:
            problems.append((None, f"{needed_by} needs at least {needed} frames per clip, the protocol takes "
                                   f"{protocol.frames}; set 'frames: {needed}' or more in the protocol"))
        return problems

    def check_clip(self, video: Video, clip: Clip) -> None:
        if clip.shape[0] < self.spec.min_frames:
            raise MetricError(f"{video.path}: {self.name} needs at least {self.spec.min_frames} frames per clip, "
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
    """A score per video, averaged over the set. With `spec.frame_clips`, score_clip takes a Clip (FrameClip or
    tensor) and converts a few frames at a time (bounded memory); otherwise it gets the whole clip as one float64
    tensor."""

    spec: ClassVar[InputsSpec] = InputsSpec("single")

    @abstractmethod
    def score_clip(self, clip: Any) -> float: ...

    def evaluate(self, inputs: MetricInputs) -> MetricResult:
        scores: dict[str, float] = {}
        for video, clip in inputs.clips():
            self.check_clip(video, clip)
            scores[video.label] = self.score_clip(clip if self.spec.frame_clips else _whole(clip))
        return _mean_result(scores, self.name)


class PairedMetric(Metric):
    """A score per (reference, candidate) pair of frame-aligned clips, averaged over the pairs."""

    spec: ClassVar[InputsSpec] = InputsSpec("paired")  # frame_clips as PerVideoMetric's

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
            if self.spec.frame_clips:
                scores[cand_video.label] = self.score_pair(ref, cand)
            else:
                scores[cand_video.label] = self.score_pair(_whole(ref), _whole(cand))
        return _mean_result(scores, self.name)
