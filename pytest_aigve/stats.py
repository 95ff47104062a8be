"""Mergeable float64 statistics (running sums: merging two partial results is addition)."""

from __future__ import annotations

import math
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
