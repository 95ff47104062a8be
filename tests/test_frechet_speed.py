"""Fast Fréchet bootstrap resamples (stats.FrechetBootstrap) equal the slow path: the distance recomputed on
resample_blocks with the same rng draws."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from pytest_aigve.metrics.fid import FID
from pytest_aigve.metrics.fvd import FVD
from pytest_aigve.stats import FrechetBootstrap, bootstrap_interval, frechet_distance_from_features, resample_blocks

from .helpers import BlockInputs, inception_like_blocks

CPU = torch.device("cpu")


def slow_resample(ref: list[np.ndarray], cand: list[np.ndarray], ddof: int, rng: np.random.Generator) -> float:
    return frechet_distance_from_features(resample_blocks(ref, rng), resample_blocks(cand, rng), ddof).value


def uneven_blocks(seed: int, videos: int, dim: int, shift: float = 0.0) -> list[np.ndarray]:
    """Videos of different frame counts, so resampled set sizes vary between draws."""
    rng = np.random.default_rng(seed)
    return [np.abs(rng.gamma(2.0, 0.15, size=(1, dim)) + rng.normal(shift, 0.05, size=(int(k), dim)))
            for k in rng.integers(1, 7, size=videos)]


@pytest.mark.parametrize(("videos", "frames", "dim", "ddof"), [
    (12, 6, 2048, 1),  # fewer samples than dimensions: the Gram route
    (10, 40, 64, 1),  # more distinct rows than dimensions in every resample: the moment route
    (8, 1, 400, 0),  # FVD-like: one row per video, biased covariance
])
def test_fast_resample_equals_slow_resample(videos: int, frames: int, dim: int, ddof: int) -> None:
    ref = inception_like_blocks(1, videos=videos, frames=frames, dim=dim)
    cand = inception_like_blocks(2, videos=videos + 1, frames=frames, dim=dim, shift=0.03)
    fast = FrechetBootstrap(ref, cand, ddof)
    for seed in range(5):
        ours = fast.resample(np.random.default_rng(seed))
        assert ours == pytest.approx(slow_resample(ref, cand, ddof, np.random.default_rng(seed)), rel=1e-9)


def gram_resample(ref: list[np.ndarray], cand: list[np.ndarray], ddof: int, rng: np.random.Generator) -> float:
    """The distance on the resampled rows through singular values of the centred cross product, for sizes where
    frechet_distance_from_features's eigen route is ill-conditioned (singular covariances from duplicates)."""
    a, b = resample_blocks(ref, rng), resample_blocks(cand, rng)
    a_c = (a - a.mean(axis=0)) / np.sqrt(a.shape[0] - ddof)
    b_c = (b - b.mean(axis=0)) / np.sqrt(b.shape[0] - ddof)
    trace_sqrt = np.linalg.svd(a_c @ b_c.T, compute_uv=False).sum()
    return float(np.sum((a.mean(axis=0) - b.mean(axis=0)) ** 2) + np.sum(a_c**2) + np.sum(b_c**2) - 2 * trace_sqrt)


def test_fast_resample_with_uneven_videos() -> None:
    """Resampled sizes vary around the dimension; equal to the slow path where its route is well-conditioned
    (fewer rows than dimensions), else to the same distance through the cross product's singular values."""
    ref, cand = uneven_blocks(3, videos=9, dim=34), uneven_blocks(4, videos=5, dim=34, shift=0.02)
    fast = FrechetBootstrap(ref, cand, 1)
    routes = set()
    for seed in range(20):
        ours = fast.resample(np.random.default_rng(seed))
        rng = np.random.default_rng(seed)
        first, second = resample_blocks(ref, rng), resample_blocks(cand, rng)
        slow_gram = max(first.shape[0], second.shape[0]) < 34
        routes.add(slow_gram)
        reference = slow_resample if slow_gram else gram_resample
        assert ours == pytest.approx(reference(ref, cand, 1, np.random.default_rng(seed)), rel=1e-9)
    assert routes == {True, False}


def test_all_counts_one_is_the_point_value() -> None:
    ref = inception_like_blocks(5, videos=6, frames=4, dim=128)
    cand = inception_like_blocks(6, videos=5, frames=4, dim=128, shift=0.05)
    ones = FrechetBootstrap(ref, cand, 1).weighted(np.ones(6, int), np.ones(5, int))
    point = frechet_distance_from_features(np.concatenate(ref), np.concatenate(cand), 1)
    assert ones.value == pytest.approx(point.value, rel=1e-9)
    assert ones.trace_sqrt == pytest.approx(point.trace_sqrt, rel=1e-9)


def test_draw_uses_the_rng_like_two_resample_blocks_calls() -> None:
    """The same number of draws in the same order: a seeded interval does not change with the fast path."""
    ref = inception_like_blocks(7, videos=5, frames=2, dim=8)
    cand = inception_like_blocks(8, videos=7, frames=2, dim=8)
    ours, theirs = np.random.default_rng(3), np.random.default_rng(3)
    FrechetBootstrap(ref, cand, 1).draw(ours)
    resample_blocks(ref, theirs)
    resample_blocks(cand, theirs)
    assert ours.integers(0, 1 << 30) == theirs.integers(0, 1 << 30)


@pytest.mark.parametrize("metric", [FID, FVD])
def test_metric_interval_equals_slow_interval(metric: type[FID] | type[FVD]) -> None:
    ref = inception_like_blocks(9, videos=10, frames=3, dim=2048)
    cand = inception_like_blocks(10, videos=10, frames=3, dim=2048, shift=0.02)
    result = metric(metric.validate_params({}), CPU).evaluate(BlockInputs({"reference": ref, "candidate": cand}))
    assert result.resample is not None
    fast = bootstrap_interval(result.value, result.resample, 40, 0.95, 11)
    slow = bootstrap_interval(result.value, lambda rng: slow_resample(ref, cand, metric.ddof, rng),
                              40, 0.95, 11)
    assert fast.low == pytest.approx(slow.low, rel=1e-9)
    assert fast.high == pytest.approx(slow.high, rel=1e-9)


def test_interval_with_more_samples_than_large_dimensions() -> None:
    """No cliff: more samples than >1024 dimensions still gets resamples, equal to the slow path."""
    # 4 videos of 600 frames: every resample with two distinct videos has full-rank covariances
    ref = inception_like_blocks(12, videos=4, frames=600, dim=1100)
    cand = inception_like_blocks(13, videos=4, frames=600, dim=1100, shift=0.02)
    result = FID(FID.validate_params({}), CPU).evaluate(BlockInputs({"reference": ref, "candidate": cand}))
    assert result.resample is not None and "interval" not in result.details
    assert result.resample(np.random.default_rng(0)) == pytest.approx(
        slow_resample(ref, cand, 1, np.random.default_rng(0)), rel=1e-9)


def test_weights_hash_is_remembered_across_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The digest is kept in the memo folder by (path, size, mtime); rehash (AIGVE_REHASH_WEIGHTS=1) hashes again."""
    import hashlib

    from pytest_aigve import files
    from pytest_aigve.features import weights

    memo_dir = tmp_path / "cache"
    monkeypatch.setattr(files, "_DIGESTS", {})
    path = tmp_path / "w.pth"
    path.write_bytes(b"weights")
    truth = hashlib.sha256(b"weights").hexdigest()
    assert weights.file_sha256(path, memo_dir=memo_dir) == truth
    assert truth in (memo_dir / weights.HASH_MEMO_NAME).read_text()

    calls: list[int] = []
    real_sha256 = hashlib.sha256

    def counted(*args: bytes) -> Any:
        calls.append(1)
        return real_sha256(*args)

    monkeypatch.setattr(files.hashlib, "sha256", counted)
    monkeypatch.setattr(files, "_DIGESTS", {})  # a new process
    assert weights.file_sha256(path, memo_dir=memo_dir) == truth and not calls  # from the memo file
    assert weights.file_sha256(path, rehash=True, memo_dir=memo_dir) == truth and calls  # forced
    calls.clear()
    stat = path.stat()
    path.write_bytes(b"other!!")  # same size, rewritten: a new mtime
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert weights.file_sha256(path, memo_dir=memo_dir) == real_sha256(b"other!!").hexdigest() and calls
