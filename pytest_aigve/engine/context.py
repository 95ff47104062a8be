"""What every item of one pytest process shares: the device, the clip cache, the registries, the feature store,
and the backbones loaded so far (one model per network, weights file and precision)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from ..features import FeatureStore
from ..features.backbones import Backbone
from ..features.weights import locate, locate_companions, verify
from ..metrics.contract import BackboneRequest
from ..metrics.registry import MetricRegistry
from ..report.thumbnails import ThumbnailMemo
from ..videos.cache import ClipCache

Progress = Callable[[str, bool, float], None]  # message, final, seconds since the check started


@dataclass
class EvalContext:
    device: torch.device
    clips: ClipCache
    registry: MetricRegistry
    progress: Progress = lambda message, final, elapsed: None
    decode_workers: int = 1  # processes decoding ahead (the clip cache's source); recorded in the reports
    make_thumbnails: bool = True
    weights_dir: Path | None = None
    allow_unverified_weights: bool = False
    feature_cache_dir: Path | None = None
    weights_dir_source: str = "--aigve-weights-dir"  # where weights_dir came from, for messages
    rehash_weights: bool = False  # hash weights files again instead of trusting remembered digests
    weights_memo_dir: Path | None = None  # where weights digests are remembered across runs
    thumbnails: ThumbnailMemo = field(default_factory=dict)
    _backbones: dict[tuple[str, str, str, tuple[tuple[str, Any], ...]], Backbone] = field(default_factory=dict)

    @cached_property
    def features(self) -> FeatureStore:
        return FeatureStore(self.clips, self.feature_cache_dir)

    def backbone(self, request: BackboneRequest, suite_dir: Path) -> Backbone:
        """One backbone per (network, weights file, precision, options) and process, whatever the batch size; weights
        located and checked here."""
        backbone_cls = self.registry.backbones.get(request.key)
        explicit = suite_dir / request.weights if request.weights else None
        path = locate(backbone_cls.weights_file, explicit, self.weights_dir, self.weights_dir_source)
        key = (request.key, str(path.resolve()), request.precision, request.options)
        if key not in self._backbones:
            check = verify(backbone_cls.weights_file, path, self.allow_unverified_weights, self.rehash_weights,
                           self.weights_memo_dir)
            companions = locate_companions(backbone_cls.companion_files, path, self.weights_dir,
                                           self.allow_unverified_weights, self.weights_dir_source,
                                           self.rehash_weights, self.weights_memo_dir)
            self._backbones[key] = backbone_cls(path, check.sha256, self.device, request.precision,
                                                weights_status=check.status, companions=companions,
                                                options=dict(request.options))
        return self._backbones[key]
