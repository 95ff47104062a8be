"""KID: unbiased MMD² with the cubic polynomial kernel on TF-FID Inception pool3 features of frames,
averaged over random subsets exactly as torch-fidelity does (same subsets for the same seed).

The score is torch-fidelity's `kid_features_to_metric` (kernel "poly", degree 3, gamma 1/d, coef0 1): the same
`numpy.random.RandomState(seed)` draws of `subsets` subsets of `subset_size` rows from each set, each subset's
unbiased MMD² by its formula, then their mean (and standard deviation). Our code computes it in float64 with
torch, equal to torch-fidelity's to round-off (tests/test_feature_robustness.py checks it to 1e-9): the kernel
matrices of the whole sets are computed once and each subset's sums are read from them, or, when those matrices
would exceed KERNEL_MEMORY_ELEMENTS, each subset's kernels are computed as torch-fidelity does.

The bootstrap interval (stats.bootstrap_interval calls `resample(rng)` `bootstrap_resamples` times) draws the
videos of each set with replacement, as every other metric's does. A resample's value is what torch-fidelity's
subset KID gives on the resampled videos in expectation over its subset draws, which is the unbiased MMD² over
the whole resampled multiset: with c_a the number of times video a was drawn, S the kernel sums between videos
and D the sums of each video's k(x, x),

    XX = (cᵀ S_XX c − c·D_X) / (N (N − 1)),   N = Σ c_a n_a frames,   XY = cᵀ S_XY c' / (N N'),
    value = XX + YY − 2 XY.

S and D are computed once (one pass over all frame pairs); a resample is then a few O(videos²) sums, instead of
recomputing 100 subsets of 1000² kernels. The subsets' own Monte-Carlo noise is left out of the resamples: it is
a property of the estimator, reported as details["std_over_subsets"], not of the choice of videos.

The kernel work runs with one torch thread on the CPU (scoped torch.set_num_threads): under pytest-xdist every
worker's BLAS otherwise starts a thread per core, and on a loaded 2-core machine one KID interval took 150 s
instead of 3 s. On a CUDA device it runs there. The per-subset and per-resample sums are plain numpy loops
(np.einsum without BLAS), so nothing here starts threads.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from ..errors import MetricError
from .base import MetricInputs, MetricResult, ParamSpec, torch_threads
from .distribution import BACKBONE_PARAMS, DistributionMetric
from .params import nonnegative_int, positive_int

# float64 kernel entries held in memory at once (2^25: 256 MB). Below it the three kernel matrices of the whole
# sets are kept and every subset reads from them; above it the kernels are computed per subset and, for the
# interval's sums, in row chunks of this many entries.
KERNEL_MEMORY_ELEMENTS = 1 << 25
KERNEL_THREADS = 1


def poly_kernel(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """torch-fidelity's kernel_poly with KID's defaults: (x·y · (1/d) + 1)³, in the inputs' dtype (float64)."""
    return (first @ second.T * (1.0 / first.shape[1]) + 1.0) ** 3


def unbiased_mmd2(k_xx: np.ndarray, k_xy: np.ndarray, k_yy: np.ndarray) -> float:
    """torch-fidelity's mmd2(..., mmd_est="unbiased") on one subset's kernel matrices, term for term."""
    m = k_xx.shape[0]
    kt_xx_sum = (k_xx.sum(axis=1) - np.diagonal(k_xx)).sum()
    kt_yy_sum = (k_yy.sum(axis=1) - np.diagonal(k_yy)).sum()
    k_xy_sum = k_xy.sum(axis=0).sum()
    return float((kt_xx_sum + kt_yy_sum) / (m * (m - 1)) - 2 * k_xy_sum / (m * m))


class KernelSums:
    """Kernel sums between videos, for exact resampled values: S[a, b] = Σ k(x_i, y_j) over the frames of videos
    a and b, and D[a] = Σ k(x_i, x_i) over the frames of video a."""

    def __init__(self, xx: np.ndarray, diag_x: np.ndarray, yy: np.ndarray, diag_y: np.ndarray, xy: np.ndarray,
                 sizes_x: np.ndarray, sizes_y: np.ndarray) -> None:
        self.xx, self.diag_x, self.yy, self.diag_y, self.xy = xx, diag_x, yy, diag_y, xy
        self.sizes_x, self.sizes_y = sizes_x.astype(np.float64), sizes_y.astype(np.float64)

    def value(self, counts_x: np.ndarray, counts_y: np.ndarray) -> float:
        """The unbiased MMD² over the multiset in which video a of each set appears counts[a] times."""
        cx, cy = counts_x.astype(np.float64), counts_y.astype(np.float64)
        nx, ny = float(np.einsum("i,i->", cx, self.sizes_x)), float(np.einsum("i,i->", cy, self.sizes_y))
        xx = (np.einsum("i,ij,j->", cx, self.xx, cx) - np.einsum("i,i->", cx, self.diag_x)) / (nx * (nx - 1))
        yy = (np.einsum("i,ij,j->", cy, self.yy, cy) - np.einsum("i,i->", cy, self.diag_y)) / (ny * (ny - 1))
        xy = np.einsum("i,ij,j->", cx, self.xy, cy) / (nx * ny)
        return float(xx + yy - 2 * xy)


def _starts(sizes: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)


def _block_sums(kernel: np.ndarray, row_starts: np.ndarray, col_starts: np.ndarray) -> np.ndarray:
    return np.add.reduceat(np.add.reduceat(kernel, row_starts, axis=0), col_starts, axis=1)


class KIDComputation:
    """One KID evaluation: the subset estimates (the score) and the kernel sums between videos (the interval)."""

    def __init__(self, ref_blocks: Sequence[np.ndarray], cand_blocks: Sequence[np.ndarray],
                 device: torch.device) -> None:
        self.sizes_x = np.array([block.shape[0] for block in ref_blocks])
        self.sizes_y = np.array([block.shape[0] for block in cand_blocks])
        if (self.sizes_x == 0).any() or (self.sizes_y == 0).any():
            raise MetricError("kid: a video gave no feature rows")
        self.x = torch.from_numpy(np.ascontiguousarray(np.concatenate(ref_blocks), dtype=np.float64)).to(device)
        self.y = torch.from_numpy(np.ascontiguousarray(np.concatenate(cand_blocks), dtype=np.float64)).to(device)
        n1, n2 = self.x.shape[0], self.y.shape[0]
        self.in_memory = n1 * n1 + n2 * n2 + n1 * n2 <= KERNEL_MEMORY_ELEMENTS
        self.kernels: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        if self.in_memory:
            self.kernels = (self._kernel(self.x, self.x), self._kernel(self.x, self.y), self._kernel(self.y, self.y))

    @staticmethod
    def _kernel(first: torch.Tensor, second: torch.Tensor) -> np.ndarray:
        return poly_kernel(first, second).cpu().numpy()

    def subset_estimates(self, subsets: int, subset_size: int, seed: int) -> np.ndarray:
        """torch-fidelity's per-subset MMD² values: the same RandomState draws, in the same order."""
        rng = np.random.RandomState(seed)
        n1, n2 = self.x.shape[0], self.y.shape[0]
        estimates = np.empty(subsets, dtype=np.float64)
        for index in range(subsets):
            first = rng.choice(n1, subset_size, replace=False)
            second = rng.choice(n2, subset_size, replace=False)
            if self.kernels is not None:
                k_xx, k_xy, k_yy = self.kernels
                estimates[index] = unbiased_mmd2(k_xx[np.ix_(first, first)], k_xy[np.ix_(first, second)],
                                                 k_yy[np.ix_(second, second)])
            else:
                x, y = self.x[torch.from_numpy(first)], self.y[torch.from_numpy(second)]
                estimates[index] = unbiased_mmd2(self._kernel(x, x), self._kernel(x, y), self._kernel(y, y))
        return estimates

    def kernel_sums(self) -> KernelSums:
        starts_x, starts_y = _starts(self.sizes_x), _starts(self.sizes_y)
        if self.kernels is not None:
            k_xx, k_xy, k_yy = self.kernels
            return KernelSums(_block_sums(k_xx, starts_x, starts_x), np.add.reduceat(np.diagonal(k_xx), starts_x),
                              _block_sums(k_yy, starts_y, starts_y), np.add.reduceat(np.diagonal(k_yy), starts_y),
                              _block_sums(k_xy, starts_x, starts_y), self.sizes_x, self.sizes_y)
        xx, diag_x = self._chunked_sums(self.x, self.x, self.sizes_x, starts_x, starts_x, diagonal=True)
        yy, diag_y = self._chunked_sums(self.y, self.y, self.sizes_y, starts_y, starts_y, diagonal=True)
        xy, _ = self._chunked_sums(self.x, self.y, self.sizes_x, starts_x, starts_y, diagonal=False)
        return KernelSums(xx, diag_x, yy, diag_y, xy, self.sizes_x, self.sizes_y)

    def _chunked_sums(self, rows: torch.Tensor, cols: torch.Tensor, row_sizes: np.ndarray, row_starts: np.ndarray,
                      col_starts: np.ndarray, diagonal: bool) -> tuple[np.ndarray, np.ndarray]:
        """Block sums of kernel(rows, cols) computed a band of rows at a time (memory: KERNEL_MEMORY_ELEMENTS)."""
        row_block = np.repeat(np.arange(len(row_sizes)), row_sizes)
        sums = np.zeros((len(row_starts), len(col_starts)), dtype=np.float64)
        diag = np.zeros(len(row_starts), dtype=np.float64)
        band = max(1, KERNEL_MEMORY_ELEMENTS // cols.shape[0])
        for start in range(0, rows.shape[0], band):
            stop = min(start + band, rows.shape[0])
            kernel = self._kernel(rows[start:stop], cols)
            np.add.at(sums, row_block[start:stop], np.add.reduceat(kernel, col_starts, axis=1))
            if diagonal:
                local = np.arange(stop - start)
                np.add.at(diag, row_block[start:stop], kernel[local, start + local])
        return sums, diag


class KID(DistributionMetric):
    name: ClassVar[str] = "kid"
    description: ClassVar[str] = "Kernel Inception Distance over frames (unbiased; may be slightly negative)"
    higher_is_better: ClassVar[bool] = False
    backbone: ClassVar[str] = "inception"
    output: ClassVar[str | None] = "pool3"
    params: ClassVar[dict[str, ParamSpec[Any]]] = {
        **BACKBONE_PARAMS,
        "subsets": ParamSpec(100, positive_int, "number of random subsets"),
        "subset_size": ParamSpec(1000, positive_int, "samples per subset; capped at the smaller set's size"),
        "seed": ParamSpec(2020, nonnegative_int, "subset sampling seed (torch-fidelity's default)"),
    }

    def evaluate(self, inputs: MetricInputs) -> MetricResult:
        ref_blocks, _, backbone = self.gather(inputs, "reference")
        cand_blocks, _, _ = self.gather(inputs, "candidate")
        n_ref, n_cand = sum(b.shape[0] for b in ref_blocks), sum(b.shape[0] for b in cand_blocks)
        subset_size = min(self.options["subset_size"], n_ref, n_cand)
        if subset_size < 2:
            raise MetricError(f"kid needs at least 2 samples per set, have {n_ref} and {n_cand}")
        for role, blocks in (("reference", ref_blocks), ("candidate", cand_blocks)):
            if not all(np.isfinite(block).all() for block in blocks):
                raise MetricError(f"kid: the {role} set's features contain NaN or inf")
        # the kernel work (and only it) runs with KERNEL_THREADS torch threads; a device may be CUDA
        device = self.device if self.device.type == "cuda" else torch.device("cpu")
        with torch_threads(KERNEL_THREADS):
            computation = KIDComputation(ref_blocks, cand_blocks, device)
            estimates = computation.subset_estimates(self.options["subsets"], subset_size, self.options["seed"])
            sums = computation.kernel_sums()
        del computation  # the kernel matrices are not kept for the interval: only the sums between videos

        def resample(rng: np.random.Generator) -> float:
            # the draws resample_blocks makes (reference set first): videos with replacement
            counts_x = np.bincount(rng.integers(0, len(ref_blocks), size=len(ref_blocks)), minlength=len(ref_blocks))
            counts_y = np.bincount(rng.integers(0, len(cand_blocks), size=len(cand_blocks)),
                                   minlength=len(cand_blocks))
            return sums.value(counts_x, counts_y)

        warnings = []
        if subset_size < self.options["subset_size"]:
            warnings.append(f"kid subset size capped at {subset_size} (the smaller set's sample count)")
        details = {"std_over_subsets": float(np.std(estimates)),
                   "subsets": self.options["subsets"], "subset_size": subset_size, "seed": self.options["seed"],
                   "samples": {"reference": int(n_ref), "candidate": int(n_cand)}}
        return MetricResult(float(np.mean(estimates)), {}, details, warnings, resample, backbone=backbone)
