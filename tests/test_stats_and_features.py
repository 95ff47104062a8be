"""Mergeable statistics and the shared feature layer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pytest_aigve.features import FeatureStore
from pytest_aigve.gate import Threshold, check_threshold
from pytest_aigve.protocol import ClipProtocol
from pytest_aigve.stats import MeanAccumulator, MomentAccumulator
from pytest_aigve.videos.cache import ClipCache
from pytest_aigve.videos.sources import Video


def test_mean_accumulator_merges_by_addition() -> None:
    values = np.random.default_rng(0).normal(3, 2, size=101)
    left, right, whole = MeanAccumulator(), MeanAccumulator(), MeanAccumulator()
    for index, value in enumerate(values):
        (left if index % 3 else right).update(value)
        whole.update(value)
    merged = left + right
    assert merged.count == 101
    assert merged.mean() == pytest.approx(values.mean(), rel=1e-12)
    assert merged.std() == pytest.approx(values.std(ddof=1), rel=1e-10)
    with pytest.raises(ValueError, match="non-finite"):
        whole.update(float("nan"))


def test_moment_accumulator_matches_numpy_and_merges() -> None:
    features = np.random.default_rng(1).normal(size=(50, 7)).astype(np.float32)
    first, second = MomentAccumulator(7), MomentAccumulator(7)
    first.update(features[:20])
    second.update(features[20:])
    merged = first + second
    np.testing.assert_allclose(merged.mean(), features.astype(np.float64).mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(merged.covariance(), np.cov(features.astype(np.float64), rowvar=False), rtol=1e-9)
    np.testing.assert_allclose(merged.covariance(ddof=0),
                               np.cov(features.astype(np.float64), rowvar=False, ddof=0), rtol=1e-9)
    with pytest.raises(ValueError, match="NaN"):
        merged.update(np.full((1, 7), np.nan))
    with pytest.raises(ValueError, match="cannot merge"):
        merged + MomentAccumulator(3)


@pytest.mark.parametrize(("value", "threshold", "higher", "passed", "text"), [
    (0.95, Threshold(min=0.9), True, True, "flicker = 0.95, threshold >= 0.9"),
    (0.85, Threshold(min=0.9), True, False, "flicker = 0.85, expected >= 0.9 (higher is better)"),
    (12.0, Threshold(max=10), False, False, "flicker = 12, expected <= 10 (lower is better)"),
    (5.0, Threshold(1, 4), True, False, "expected in [1, 4]"),
    (float("nan"), Threshold(), True, False, "not a finite number"),
])
def test_threshold_verdicts(value: float, threshold: Threshold, higher: bool, passed: bool, text: str) -> None:
    verdict = check_threshold("flicker", value, threshold, higher)
    assert verdict.passed is passed and text in verdict.message


class MeanColour:
    """A stand-in backbone: mean RGB per clip. Counts its forward passes."""

    identity = "mean-colour/v1"

    def __init__(self) -> None:
        self.calls = 0

    def extract(self, clip: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return clip.mean(dim=(0, 2, 3))


def test_feature_store_runs_each_backbone_once_per_video(tmp_path: Path, make_video) -> None:
    videos = [Video(make_video(f"v{i}.mp4", seed=i), f"v{i}", f"v{i}.mp4") for i in range(2)]
    clips = ClipCache(10**8)
    store = FeatureStore(clips, torch.device("cpu"))
    backbone = MeanColour()
    protocol = ClipProtocol(frames=8)
    first = [store.features(v, protocol, backbone) for v in videos]
    second = [store.features(v, protocol, backbone) for v in videos]  # e.g. KID after FID on the same set
    assert backbone.calls == 2 and clips.stats.decodes == 2
    assert store.stats.hits == 2 and all(a is b for a, b in zip(first, second, strict=False))
    assert not np.allclose(first[0], first[1])  # features depend on the input
    store.features(videos[0], ClipProtocol(frames=4), backbone)  # another protocol is another feature
    assert backbone.calls == 3
