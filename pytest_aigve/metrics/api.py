"""What a metric or backbone author imports: everything needed to write one in its own file and register it
from a plugin (`pytest_aigve_register_metrics`, `pytest_aigve_register_backbones`; see README "Writing a metric").

    from pytest_aigve.metrics.api import BackboneRequest, InputsSpec, MetricInputs, MetricResult, PerVideoMetric
"""

from __future__ import annotations

from ..errors import MetricError
from ..features.backbones import Backbone
from ..features.registry import BackboneRegistry
from ..features.weights import WeightsFile
from ..videos.prepare import Clip, FrameClip, frame_blocks, frame_chunks
from ..videos.sources import Video
from .base import Metric, PairedMetric, PerVideoMetric
from .contract import (
    BackboneInfo,
    BackboneRequest,
    FeatureSet,
    InputKind,
    InputsSpec,
    MetricInputs,
    MetricResult,
    Precision,
    Role,
    SetSamples,
    VideoFeatures,
    require_rows,
)
from .params import ParamSpec, choice, file_path, nonnegative_int, optional, positive_float, positive_int
from .registry import MetricRegistry

__all__ = [
    "Backbone", "BackboneInfo", "BackboneRegistry", "BackboneRequest", "Clip", "FeatureSet", "FrameClip", "InputKind",
    "InputsSpec", "Metric", "MetricError", "MetricInputs", "MetricRegistry", "MetricResult", "PairedMetric",
    "ParamSpec", "PerVideoMetric", "Precision", "Role", "SetSamples", "Video", "VideoFeatures", "WeightsFile",
    "choice", "file_path", "frame_blocks", "frame_chunks", "nonnegative_int", "optional", "positive_float",
    "positive_int", "require_rows",
]
