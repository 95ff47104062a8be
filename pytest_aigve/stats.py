"""Mergeable float64 statistics (running sums: merging two partial results is addition)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass
class MeanAccumulator:
    """Mean and spread of per-video scores."""

    count: int = 0
    total: float = 0.0
    total_sq: float = 0.0

    def update(self, value: float) -> None:
        if not math.isfinite(value):
            raise ValueError(f"non-finite score {value!r} cannot be averaged")
        self.count += 1
        self.total += float(value)
        self.total_sq += float(value) ** 2

    def __add__(self, other: MeanAccumulator) -> MeanAccumulator:
        return MeanAccumulator(self.count + other.count, self.total + other.total, self.total_sq + other.total_sq)

    def mean(self) -> float:
        if self.count == 0:
            raise ValueError("mean of zero values")
        return self.total / self.count

    def std(self) -> float:
        """Sample standard deviation (n-1); 0 for a single value."""
        if self.count < 2:
            return 0.0
        variance = (self.total_sq - self.total**2 / self.count) / (self.count - 1)
        return math.sqrt(max(variance, 0.0))


@dataclass
class MomentAccumulator:
    """n, sum x and sum x xᵀ of feature vectors, for means and covariances (FID/FVD/KID inputs)."""

    dim: int
    count: int = 0
    total: np.ndarray = field(init=False)
    outer: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.total = np.zeros(self.dim, dtype=np.float64)
        self.outer = np.zeros((self.dim, self.dim), dtype=np.float64)

    def update(self, features: np.ndarray) -> None:
        batch = np.asarray(features, dtype=np.float64).reshape(-1, self.dim)
        if not np.isfinite(batch).all():
            raise ValueError("features contain NaN or inf")
        self.count += batch.shape[0]
        self.total += batch.sum(axis=0)
        self.outer += batch.T @ batch

    def __add__(self, other: MomentAccumulator) -> MomentAccumulator:
        if other.dim != self.dim:
            raise ValueError(f"cannot merge {self.dim}-d and {other.dim}-d statistics")
        merged = MomentAccumulator(self.dim)
        merged.count = self.count + other.count
        merged.total = self.total + other.total
        merged.outer = self.outer + other.outer
        return merged

    def mean(self) -> np.ndarray:
        return self.total / self.count

    def covariance(self, ddof: int = 1) -> np.ndarray:
        if self.count - ddof <= 0:
            raise ValueError(f"covariance needs more than {ddof} samples, have {self.count}")
        mean = self.mean()
        return (self.outer - self.count * np.outer(mean, mean)) / (self.count - ddof)


@dataclass(frozen=True)
class FrechetResult:
    value: float
    trace_sqrt: float  # tr √(Σ₁Σ₂)
    smallest_eigenvalue: float  # of Σ₁^½ Σ₂ Σ₁^½ before clipping (tiny negatives are round-off)


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    eigenvalues, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    _checked_trace_sqrt(eigenvalues)  # a covariance is PSD up to round-off
    return (vectors * np.sqrt(np.clip(eigenvalues, 0.0, None))) @ vectors.T


def _checked_trace_sqrt(eigenvalues: np.ndarray) -> tuple[float, float]:
    """Σ √λ with round-off negatives clipped; a clearly negative eigenvalue means the input is not a covariance."""
    scale = max(float(np.abs(eigenvalues).max(initial=0.0)), 1e-300)
    smallest = float(eigenvalues.min(initial=0.0))
    if smallest < -1e-6 * scale:
        raise ValueError(f"matrix square root of a non-PSD product (eigenvalue {smallest:.3g}, scale {scale:.3g}); "
                         "the covariances are not valid")
    return float(np.sqrt(np.clip(eigenvalues, 0.0, None)).sum()), smallest


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> FrechetResult:
    """‖μ₁−μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr √(Σ₁Σ₂), in float64, exactly.

    tr √(Σ₁Σ₂) = tr √(Σ₁^½ Σ₂ Σ₁^½): the second matrix is symmetric PSD, so its eigenvalues are real and
    the trace is the sum of their square roots. No complex values, no iterative sqrtm.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(f"shape mismatch: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs {sigma2.shape}")
    root = _sqrt_psd(sigma1)
    product = root @ sigma2 @ root
    trace_sqrt, smallest = _checked_trace_sqrt(np.linalg.eigvalsh((product + product.T) / 2))
    value = float(np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt)
    if not np.isfinite(value):
        raise ValueError(f"Fréchet distance is not finite ({value})")
    return FrechetResult(value, trace_sqrt, smallest)


def frechet_distance_from_features(features1: np.ndarray, features2: np.ndarray, ddof: int) -> FrechetResult:
    """The same distance from raw features; with fewer samples than dimensions it uses the singular values
    of A·Bᵀ (A, B centred features / √(N−ddof)), which equal the eigenvalue square roots of Σ₁Σ₂ exactly."""
    a = np.asarray(features1, np.float64)
    b = np.asarray(features2, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"features must be (N, D) with the same D, got {a.shape} and {b.shape}")
    for name, x in (("first", a), ("second", b)):
        if x.shape[0] - ddof <= 0:
            raise ValueError(f"the {name} set has {x.shape[0]} feature vectors; need more than {ddof}")
        if not np.isfinite(x).all():
            raise ValueError(f"the {name} set's features contain NaN or inf")
    mu1, mu2 = a.mean(axis=0), b.mean(axis=0)
    if max(a.shape[0], b.shape[0]) >= a.shape[1]:
        first, second = MomentAccumulator(a.shape[1]), MomentAccumulator(b.shape[1])
        first.update(a)
        second.update(b)
        return frechet_distance(first.mean(), first.covariance(ddof), second.mean(), second.covariance(ddof))
    centred1 = (a - mu1) / np.sqrt(a.shape[0] - ddof)
    centred2 = (b - mu2) / np.sqrt(b.shape[0] - ddof)
    singular = np.linalg.svd(centred1 @ centred2.T, compute_uv=False)
    trace_sqrt = float(singular.sum())
    value = float(np.sum((mu1 - mu2) ** 2) + np.sum(centred1**2) + np.sum(centred2**2) - 2.0 * trace_sqrt)
    return FrechetResult(value, trace_sqrt, 0.0)


@dataclass(frozen=True)
class Interval:
    low: float
    high: float
    level: float
    resamples: int
    seed: int

    def to_dict(self) -> dict[str, float | int]:
        return {"low": self.low, "high": self.high, "level": self.level, "resamples": self.resamples,
                "seed": self.seed}


def bootstrap_interval(value: float, resample: Callable[[np.random.Generator], float], resamples: int,
                       level: float, seed: int) -> Interval:
    """A seeded bootstrap interval around `value`, re-centred on it.

    Each resample draws the set's videos with replacement and recomputes the score. Statistics such as
    Fréchet distances are biased on such resamples (duplicated videos shrink the covariance), so the
    percentiles are taken of the resampled values' deviations from their own mean and added to the
    full-set value: the interval measures spread, always contains the full-set value, and does not
    inherit the resampling bias.
    """
    rng = np.random.default_rng(seed)
    values = np.array([resample(rng) for _ in range(resamples)], dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValueError("a bootstrap resample gave a non-finite score")
    deviations = values - values.mean()
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(deviations, [tail, 1.0 - tail])
    return Interval(float(value + min(low, 0.0)), float(value + max(high, 0.0)), level, resamples, seed)


def resample_blocks(blocks: Sequence[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Videos drawn with replacement; each video contributes all its rows (frames or one clip)."""
    picks = rng.integers(0, len(blocks), size=len(blocks))
    return np.concatenate([blocks[i] for i in picks])


@dataclass(frozen=True)
class PairedSetDelta:
    """The change of a set-level statistic between two candidate sets that hold the same videos (by key), each
    against the same reference set: point value and a seeded paired-bootstrap interval."""

    mean: float
    low: float
    high: float
    shared: int
    level: float


def paired_set_delta(reference: Sequence[np.ndarray], run: Sequence[np.ndarray], baseline: Sequence[np.ndarray],
                     statistic: Callable[[np.ndarray, np.ndarray], float], resamples: int, level: float,
                     seed: int) -> PairedSetDelta:
    """Δ = statistic(reference, run) − statistic(reference, baseline), where run[i] and baseline[i] are the
    blocks of the same video key. Each resample draws reference videos and video keys with replacement and
    uses the same draws on both sides, so the spread between videos cancels as in a paired test. As in
    bootstrap_interval, the percentiles are of the deviations from the resampled mean, added to the point Δ."""
    if len(run) != len(baseline) or len(run) < 2:
        raise ValueError("a paired comparison needs the same 2 or more video keys on both sides")
    point = statistic(np.concatenate(reference), np.concatenate(run)) - \
        statistic(np.concatenate(reference), np.concatenate(baseline))
    rng = np.random.default_rng(seed)
    draws = np.empty(resamples, dtype=np.float64)
    for index in range(resamples):
        refs = resample_blocks(reference, rng)
        keys = rng.integers(0, len(run), size=len(run))
        draws[index] = statistic(refs, np.concatenate([run[k] for k in keys])) - \
            statistic(refs, np.concatenate([baseline[k] for k in keys]))
    if not np.isfinite(draws).all():
        raise ValueError("a paired resample gave a non-finite score")
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(draws - draws.mean(), [tail, 1.0 - tail])
    return PairedSetDelta(float(point), float(point + min(low, 0.0)), float(point + max(high, 0.0)), len(run),
                          level)
