"""Backbone features shared across metrics (FID, IS and KID on one set run Inception once).

This is the layer the model-based metrics build on: a Backbone turns a prepared clip into a
feature vector; a FeatureStore memoises features per (video file, clip protocol, backbone,
weights hash), so every metric of a pytest process that needs the same features gets them from
one forward pass. Persisting the store on disk (content-addressed) plugs in behind `lookup` and
`save` without changing the metrics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from ..protocol import ClipProtocol
from ..videos.cache import ClipCache, file_identity
from ..videos.prepare import clip_to_tensor
from ..videos.sources import Video


class Backbone(Protocol):
    """A feature extractor. `identity` must change whenever its outputs could."""

    @property
    def identity(self) -> str: ...  # e.g. "inception-v3-tf/pool3@6726825d"

    def extract(self, clip: torch.Tensor) -> torch.Tensor:
        """(T, 3, H, W) float in [0, 255] -> (D,) or (K, D) features."""
        ...


@dataclass
class FeatureStoreStats:
    hits: int = 0
    computed: int = 0


class FeatureStore:
    def __init__(self, clips: ClipCache, device: torch.device) -> None:
        self.clips = clips
        self.device = device
        self._memory: dict[tuple[object, ...], np.ndarray] = {}
        self.stats = FeatureStoreStats()

    def key(self, video: Video, protocol: ClipProtocol, backbone: Backbone) -> tuple[object, ...]:
        return (*file_identity(video.path), protocol.fingerprint(), backbone.identity)

    def lookup(self, key: tuple[object, ...]) -> np.ndarray | None:
        return self._memory.get(key)

    def save(self, key: tuple[object, ...], features: np.ndarray) -> None:
        self._memory[key] = features

    def features(self, video: Video, protocol: ClipProtocol, backbone: Backbone) -> np.ndarray:
        key = self.key(video, protocol, backbone)
        cached = self.lookup(key)
        if cached is not None:
            self.stats.hits += 1
            return cached
        clip = clip_to_tensor(self.clips.get(video, protocol).frames, protocol, self.device,
                              dtype=torch.float32)
        with torch.inference_mode():
            features = backbone.extract(clip).detach().to("cpu", torch.float64).numpy()
        self.stats.computed += 1
        self.save(key, features)
        return features
