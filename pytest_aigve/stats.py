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


class FrechetBootstrap:
    """Exact bootstrap resamples of a Fréchet distance between two sets of per-video feature blocks, reusing
    what does not change between resamples.

    A resample draws videos with replacement, i.e. it reweights each video's rows by c_v, the number of times
    video v was drawn. Every quantity of the distance is a weighted sum over the distinct rows:
      μ = Σ wᵢxᵢ / n,  tr Σ = (Σ wᵢ‖xᵢ‖² − n‖μ‖²)/(n−ddof),
    and, with fewer samples than dimensions, tr √(Σ₁Σ₂) = the nuclear norm of W₁^½ A_c B_cᵀ W₂^½ / √((n₁−ddof)(n₂−ddof))
    (duplicated rows of a resampled matrix P·X have the same singular values as W^½·X, as PᵀP = W). The centred
    cross-Gram A_c B_cᵀ is the raw cross-Gram A Bᵀ (computed once) minus rank-one centring terms, so a resample
    costs O(n·d + n·m) plus an SVD of (drawn reference rows) × (drawn candidate rows), never an (n, d)·(d, m)
    product. With as many distinct drawn rows as dimensions the covariances are formed from the drawn rows scaled by √w
    (each distinct row once), then the exact `frechet_distance`.

    `draw(rng)` makes the same rng calls as `resample_blocks(reference, rng)` followed by
    `resample_blocks(candidate, rng)`, so a seeded interval is the same as the slow path's, to round-off.
    """

    def __init__(self, reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray], ddof: int) -> None:
        if not reference or not candidate:
            raise ValueError("a bootstrap needs at least one video on each side")
        a = np.concatenate([np.asarray(block, np.float64) for block in reference])
        b = np.concatenate([np.asarray(block, np.float64) for block in candidate])
        if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
            raise ValueError(f"features must be (N, D) with the same D, got {a.shape} and {b.shape}")
        # the distance is translation invariant: shifting both sets by one vector keeps the raw sums small,
        # so the rank-one centring below does not cancel large numbers
        shift = a.mean(axis=0)
        self.a, self.b = a - shift, b - shift
        self.ddof = ddof
        self.dim = a.shape[1]
        self.ref_sizes = np.array([np.atleast_2d(block).shape[0] for block in reference])
        self.cand_sizes = np.array([np.atleast_2d(block).shape[0] for block in candidate])
        self.ref_video = np.repeat(np.arange(len(reference)), self.ref_sizes)  # row -> its video
        self.cand_video = np.repeat(np.arange(len(candidate)), self.cand_sizes)
        self.ref_norms = np.einsum("ij,ij->i", self.a, self.a)
        self.cand_norms = np.einsum("ij,ij->i", self.b, self.b)
        self._cross: np.ndarray | None = None  # A Bᵀ, built on the first resample that needs it

    @property
    def cross(self) -> np.ndarray:
        if self._cross is None:
            self._cross = self.a @ self.b.T
        return self._cross

    def draw(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Per-video counts of one resample, from the same rng calls as two `resample_blocks` calls."""
        ref_picks = rng.integers(0, len(self.ref_sizes), size=len(self.ref_sizes))
        cand_picks = rng.integers(0, len(self.cand_sizes), size=len(self.cand_sizes))
        return (np.bincount(ref_picks, minlength=len(self.ref_sizes)),
                np.bincount(cand_picks, minlength=len(self.cand_sizes)))

    def resample(self, rng: np.random.Generator) -> float:
        return self.weighted(*self.draw(rng)).value

    def weighted(self, ref_counts: np.ndarray, cand_counts: np.ndarray) -> FrechetResult:
        """The distance between the sets with each video's rows repeated count times."""
        w_a = ref_counts[self.ref_video].astype(np.float64)
        w_b = cand_counts[self.cand_video].astype(np.float64)
        rows_a, rows_b = np.flatnonzero(w_a), np.flatnonzero(w_b)
        w_a, w_b = w_a[rows_a], w_b[rows_b]
        n_a, n_b = float(w_a.sum()), float(w_b.sum())
        for name, n in (("first", n_a), ("second", n_b)):
            if n - self.ddof <= 0:
                raise ValueError(f"the {name} set has {int(n)} feature vectors; need more than {self.ddof}")
        a, b = self.a[rows_a], self.b[rows_b]
        mu_a, mu_b = w_a @ a / n_a, w_b @ b / n_b
        # the Gram route whenever the distinct rows are fewer than the dimensions: then a covariance is singular,
        # and the moment route's square roots of round-off eigenvalues would lose half the digits
        if min(rows_a.size, rows_b.size) > self.dim:
            root_a, root_b = a * np.sqrt(w_a)[:, None], b * np.sqrt(w_b)[:, None]
            sigma_a = (root_a.T @ root_a - n_a * np.outer(mu_a, mu_a)) / (n_a - self.ddof)
            sigma_b = (root_b.T @ root_b - n_b * np.outer(mu_b, mu_b)) / (n_b - self.ddof)
            return frechet_distance(mu_a, sigma_a, mu_b, sigma_b)
        trace_a = (w_a @ self.ref_norms[rows_a] - n_a * (mu_a @ mu_a)) / (n_a - self.ddof)
        trace_b = (w_b @ self.cand_norms[rows_b] - n_b * (mu_b @ mu_b)) / (n_b - self.ddof)
        # (a_i − μ_a)·(b_j − μ_b) = a_i·b_j − a_i·μ_b − μ_a·b_j + μ_a·μ_b
        centred = self.cross[np.ix_(rows_a, rows_b)] - (a @ mu_b)[:, None] - (b @ mu_a)[None, :] + mu_a @ mu_b
        centred *= np.sqrt(w_a)[:, None]
        centred *= np.sqrt(w_b)[None, :]
        singular = np.linalg.svd(centred, compute_uv=False)
        trace_sqrt = float(singular.sum()) / math.sqrt((n_a - self.ddof) * (n_b - self.ddof))
        value = float(np.sum((mu_a - mu_b) ** 2) + trace_a + trace_b - 2.0 * trace_sqrt)
        if not math.isfinite(value):
            raise ValueError(f"Fréchet distance is not finite ({value})")
        return FrechetResult(value, trace_sqrt, 0.0)


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
