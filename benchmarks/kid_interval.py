"""Time of KID's bootstrap interval: the old approach (torch-fidelity's subset KID recomputed on every resample)
against ours (kernel sums between videos computed once, each resample a few sums), on the same features, in one
run; prints both times, the ratio and the machine.

  python benchmarks/kid_interval.py                                  # 20 videos x 8 frames per set
  python benchmarks/kid_interval.py --videos 50 --frames 16 --old-resamples 3

The old approach is timed on --old-resamples resamples (default: all of them) and scaled to --resamples when fewer.
It runs as the old code did, with numpy's default BLAS threading; ours pins torch to one thread inside the metric.
Features are synthetic, Inception-pool3-like (non-negative, 2048-d, a per-video component).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from typing import Any

import numpy as np
import torch
from _common import blocks, cpu_name  # benchmarks/ is on sys.path when run as a script


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=20, help="videos per set")
    parser.add_argument("--frames", type=int, default=8, help="frames (feature rows) per video")
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--subsets", type=int, default=100)
    parser.add_argument("--subset-size", type=int, default=1000)
    parser.add_argument("--resamples", type=int, default=200, help="bootstrap resamples (distribution metrics: 200)")
    parser.add_argument("--old-resamples", type=int, default=None, help="resamples to time the old approach on")
    args = parser.parse_args()

    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, kid_features_to_metric

    from pytest_aigve.metrics.base import BackboneRequest, MetricInputs
    from pytest_aigve.metrics.kid import KID
    from pytest_aigve.stats import resample_blocks

    ref = blocks(0, args.videos, args.frames, args.dim, 0.0)
    cand = blocks(1, args.videos, args.frames, args.dim, 0.02)

    class Inputs(MetricInputs):
        def clips(self) -> Any:
            raise NotImplementedError

        def pairs(self) -> Any:
            raise NotImplementedError

        def features(self, role: str, request: BackboneRequest) -> tuple[list[np.ndarray], dict[str, Any]]:
            return {"reference": ref, "candidate": cand}[role], {}

    params = KID.validate_params({"subsets": args.subsets, "subset_size": args.subset_size})
    rows = args.videos * args.frames
    subset_size = min(args.subset_size, rows)
    print(f"machine: {platform.platform()}, {cpu_name()}, {os.cpu_count()} CPUs, load average "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}; torch {torch.__version__} "
          f"({torch.get_num_threads()} threads by default), numpy {np.__version__}")
    print(f"features: 2 sets x {args.videos} videos x {args.frames} frames, {args.dim}-d; {args.subsets} subsets "
          f"of {subset_size}; {args.resamples} resamples")

    # ours: the score, then the interval's resamples
    started = time.perf_counter()
    result = KID(params, torch.device("cpu")).evaluate(Inputs())
    score_seconds = time.perf_counter() - started
    assert result.resample is not None
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    new_values = np.array([result.resample(rng) for _ in range(args.resamples)])
    new_seconds = time.perf_counter() - started
    print(f"new: score {result.value:.6g} in {score_seconds:.3f} s (includes the kernel sums); "
          f"{args.resamples} resamples in {new_seconds:.4f} s")

    # old: torch-fidelity's routine on every resample, as kid.py did before
    def old_kid(first: np.ndarray, second: np.ndarray) -> float:
        out = kid_features_to_metric(
            torch.from_numpy(first), torch.from_numpy(second), kid_subsets=args.subsets,
            kid_subset_size=min(subset_size, first.shape[0], second.shape[0]), rng_seed=params["seed"],
            verbose=False, kid_kernel="poly", kid_kernel_poly_degree=3, kid_kernel_poly_gamma=None,
            kid_kernel_poly_coef0=1)
        return float(out[KEY_METRIC_KID_MEAN])

    started = time.perf_counter()
    reference_score = old_kid(np.concatenate(ref), np.concatenate(cand))
    old_score_seconds = time.perf_counter() - started
    timed = min(args.old_resamples or args.resamples, args.resamples)
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    old_values = np.array([old_kid(resample_blocks(ref, rng), resample_blocks(cand, rng)) for _ in range(timed)])
    old_seconds = (time.perf_counter() - started) * args.resamples / timed
    scaled = "" if timed == args.resamples else f" (timed on {timed}, scaled)"
    print(f"old: score {reference_score:.6g} in {old_score_seconds:.3f} s (torch-fidelity); "
          f"{args.resamples} resamples in {old_seconds:.2f} s{scaled}")
    print(f"score difference: {abs(result.value - reference_score) / abs(reference_score):.2e} relative")
    old_total, new_total = old_score_seconds + old_seconds, score_seconds + new_seconds
    print(f"score + interval: old {old_total:.2f} s, new {new_total:.3f} s: {old_total / new_total:.0f}x faster; "
          f"resamples alone: {old_seconds / new_seconds:.0f}x")
    if timed >= 20:
        print(f"spread of resampled values: old std {old_values.std():.3g} (includes subset noise), "
              f"new std {new_values.std():.3g}")


if __name__ == "__main__":
    main()
