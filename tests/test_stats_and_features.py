"""Mergeable statistics and the shared feature layer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from pytest_aigve.features import FeatureStore
from pytest_aigve.features.backbones import Backbone
from pytest_aigve.features.weights import REGISTRY
from pytest_aigve.gate import GatePolicy, Threshold, evaluate_gate
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
    (0.85, Threshold(min=0.9), True, False, "flicker = 0.85, expected >= 0.9 (higher is better, point gate)"),
    (12.0, Threshold(max=10), False, False, "flicker = 12, expected <= 10 (lower is better, point gate)"),
    (5.0, Threshold(1, 4), True, False, "expected <= 4"),
    (float("nan"), Threshold(), True, False, "not a finite number"),
])
def test_threshold_verdicts(value: float, threshold: Threshold, higher: bool, passed: bool, text: str) -> None:
    verdict = evaluate_gate("flicker", value, None, higher, threshold, GatePolicy(), None, set_size=3)
    assert (verdict.verdict == "pass") is passed and text in verdict.message


class MeanColour(Backbone):
    """A stand-in backbone: mean RGB per clip. Counts its forward passes."""

    key = "i3d"
    weights_file = REGISTRY["i3d"]
    name = "mean-colour"
    input_description = "clip"

    def __init__(self) -> None:
        super().__init__(Path("none"), "0" * 64, torch.device("cpu"), batch_size=4)
        self.calls = 0

    def build(self, state: dict[str, Any]) -> torch.nn.Module:
        raise AssertionError("never loaded")

    def prepare(self, clip: torch.Tensor) -> torch.Tensor:
        return clip.to(torch.float64).mean(dim=(0, 1, 2))

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return batch


def test_feature_store_shares_features_in_memory_and_on_disk(tmp_path: Path, make_video) -> None:
    videos = [Video(make_video(f"v{i}.mp4", seed=i), f"v{i}", f"v{i}.mp4") for i in range(3)]
    clips = ClipCache(10**8)
    store = FeatureStore(clips, tmp_path / "cache")
    backbone = MeanColour()
    protocol = ClipProtocol(frames=8)
    first = store.features(videos, protocol, backbone)
    second = store.features(videos, protocol, backbone)  # e.g. KID after FID on the same set
    assert backbone.calls == 1 and clips.stats.decodes == 3  # one batch of three
    assert store.stats.memory_hits == 3 and all(a[1] is b[1] for a, b in zip(first, second, strict=True))
    assert not np.allclose(first[0][1], first[1][1])  # features depend on the input
    store.features(videos[:1], ClipProtocol(frames=4), backbone)  # another protocol is another feature
    assert backbone.calls == 2
    # a new process (new store, new clip cache) with the same files reads the disk: no decode, no forward
    fresh_clips = ClipCache(10**8)
    fresh = FeatureStore(fresh_clips, tmp_path / "cache")
    again = fresh.features(videos, protocol, MeanColour())
    assert fresh.stats.disk_hits == 3 and fresh_clips.stats.decodes == 0
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(first, again, strict=True))
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 4 and not list((tmp_path / "cache").rglob("*.tmp"))
    # a rewritten video is a new key
    make_video("v0.mp4", seed=9)
    fresh.features(videos[:1], protocol, MeanColour())
    assert fresh.stats.computed == 1


def test_bad_videos_go_to_the_callback(tmp_path: Path, make_video) -> None:
    good = Video(make_video("good.mp4"), "good", "good.mp4")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    bad = [Video(empty, "empty", "empty.mp4"), Video(tmp_path / "gone.mp4", "gone", "gone.mp4")]
    store = FeatureStore(ClipCache(10**8), None)
    seen: list[str] = []
    found = store.features([good, *bad], ClipProtocol(frames=8), MeanColour(),
                           on_bad_video=lambda video, error: seen.append(f"{video.label}: {error.problem}"))
    assert [video.label for video, _ in found] == ["good.mp4"]
    assert seen == ["gone.mp4: file not found", "empty.mp4: file is empty (0 bytes)"]


def test_frechet_distance_equals_pytorch_fid_and_stays_real_when_singular() -> None:
    from pytorch_fid.fid_score import calculate_frechet_distance

    from pytest_aigve.stats import frechet_distance, frechet_distance_from_features

    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(400, 32)), rng.normal(0.2, 1.3, size=(380, 32))
    stats = (a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert frechet_distance(*stats).value == pytest.approx(calculate_frechet_distance(*stats), rel=1e-9)
    # fewer samples than dimensions: singular covariances, where sqrtm-based code returns complex values
    small_a, small_b = rng.normal(size=(12, 64)), rng.normal(0.5, 1.0, size=(15, 64))
    exact = frechet_distance_from_features(small_a, small_b, ddof=1)
    via_eigen = frechet_distance(small_a.mean(0), np.cov(small_a, rowvar=False),
                                 small_b.mean(0), np.cov(small_b, rowvar=False))
    assert np.isfinite(exact.value) and isinstance(exact.value, float)
    assert exact.value == pytest.approx(via_eigen.value, rel=1e-6)
    with pytest.raises(ValueError, match="non-PSD"):
        frechet_distance(np.zeros(2), np.array([[1.0, 0], [0, -1.0]]), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance_from_features(np.full((3, 2), np.nan), small_b[:, :2], ddof=1)


def test_cache_cli_prints_and_clears_the_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pytest_aigve.__main__ import main

    folder = tmp_path / "features"
    (folder / "ab").mkdir(parents=True)
    np.save(folder / "ab" / "abc.npy", np.zeros(3))
    assert main(["cache", "path", "--dir", str(folder)]) == 0
    assert capsys.readouterr().out.strip() == str(folder)
    assert main(["cache", "clear", "--dir", str(folder)]) == 0
    assert "removed 1 cached feature files" in capsys.readouterr().out and not folder.exists()
