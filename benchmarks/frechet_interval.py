"""Cost of FID's bootstrap interval, cold and warm, and of the Inception forward that dominates a cold check.

  python benchmarks/frechet_interval.py                      # 25 and 100 clips x 16 frames per set
  python benchmarks/frechet_interval.py --clips 25 --old-resamples 2 --inception-frames 32

Prints, in one run, with the machine (platform, CPU count, torch version):
  * Inception forward time per frame on this machine, measured on --inception-frames random frames through
    torch-fidelity's TF-FID InceptionV3 with random weights (pytest_aigve.random_weights), at batch 16 and 64,
    and through our InceptionBackbone.extract at its default batch size;
  * per clip count: the statistic and the 200-resample interval timed on synthetic Inception-pool3-like features
    (2048-d, non-negative, a per-video component); the cold time is ESTIMATED as the measured per-frame Inception
    time x (reference + candidate frames) + statistic + interval; warm = statistic + interval (features cached);
  * the old resample (frechet_distance_from_features on resample_blocks) timed on --old-resamples draws and scaled,
    the new one on all, and the largest relative difference between them on the same draws.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import blocks, cpu_name  # benchmarks/ is on sys.path when run as a script


def inception_seconds_per_frame(frames: int, size: int) -> dict[str, float]:
    """Seconds per frame of the TF-FID Inception forward (CPU, fp32), random weights, random uint8 frames."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    from pytest_aigve import files
    from pytest_aigve.features.backbones import InceptionBackbone
    from pytest_aigve.features.weights import REGISTRY, file_sha256
    from pytest_aigve.random_weights import write_inception

    out: dict[str, float] = {}
    clip = torch.randint(0, 256, (frames, size, size, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    with tempfile.TemporaryDirectory() as folder:
        memo = Path(folder) / "cache"  # the hash memo goes here, not the user's cache
        path = write_inception(Path(folder), seed=0)
        assert path.name == REGISTRY["inception"].filename
        reference = FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"],
                                                feature_extractor_weights_path=str(path)).eval()
        images = clip.permute(0, 3, 1, 2).contiguous()
        with torch.inference_mode():
            reference(images[:2])  # warm-up: first-call allocations
            for batch in (16, 64):
                start = time.perf_counter()
                for first in range(0, frames, batch):
                    reference(images[first: first + batch])
                out[f"torch-fidelity extractor, batch {batch}"] = (time.perf_counter() - start) / frames
        # the weights hash: a full SHA-256 read (AIGVE_REHASH_WEIGHTS=1) against the memo a later run finds
        start = time.perf_counter()
        file_sha256(path, rehash=True, memo_dir=memo)
        rehash_s = time.perf_counter() - start
        files._DIGESTS.clear()  # as in a new process
        start = time.perf_counter()
        file_sha256(path, memo_dir=memo)
        print(f"weights sha256 of {path.stat().st_size / 1e6:.0f} MB: hashed {rehash_s * 1000:.0f} ms, "
              f"remembered (next run) {(time.perf_counter() - start) * 1000:.1f} ms")
        default_batch = InceptionBackbone.default_batch_size
        start = time.perf_counter()
        backbone = InceptionBackbone(path, file_sha256(path, memo_dir=memo), torch.device("cpu"))
        backbone.extract([clip])  # includes building the network from the file, as a cold check does
        out[f"pytest-aigve InceptionBackbone (build + extract), batch {default_batch}"] = \
            (time.perf_counter() - start) / frames
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, nargs="+", default=[25, 100], help="videos per set")
    parser.add_argument("--frames", type=int, default=16, help="frames per clip (FID rows per video)")
    parser.add_argument("--resamples", type=int, default=200)
    parser.add_argument("--old-resamples", type=int, default=3, help="resamples to time the old path on (scaled)")
    parser.add_argument("--inception-frames", type=int, default=64, help="frames to time Inception on (0: skip)")
    parser.add_argument("--frame-size", type=int, default=128, help="decoded frame side (resized to 299 inside)")
    args = parser.parse_args()

    from pytest_aigve.stats import (
        FrechetBootstrap,
        bootstrap_interval,
        frechet_distance_from_features,
        resample_blocks,
    )

    print(f"machine: {platform.platform()}, {cpu_name()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), numpy {np.__version__}")
    per_frame = None
    if args.inception_frames:
        timings = inception_seconds_per_frame(args.inception_frames, args.frame_size)
        for name, seconds in timings.items():
            print(f"inception forward: {name}: {seconds * 1000:.1f} ms/frame "
                  f"(measured on {args.inception_frames} frames of {args.frame_size}x{args.frame_size})")
        per_frame = min(timings.values())
    dim = 2048
    for clips in args.clips:
        ref, cand = blocks(0, clips, args.frames, dim, 0.0), blocks(1, clips, args.frames, dim, 0.02)
        start = time.perf_counter()
        point = frechet_distance_from_features(np.concatenate(ref), np.concatenate(cand), 1).value
        statistic_s = time.perf_counter() - start

        start = time.perf_counter()
        fast = FrechetBootstrap(ref, cand, 1)
        bootstrap_interval(point, fast.resample, args.resamples, 0.95, 0)
        fast_s = time.perf_counter() - start

        # old and new alternate on the same draws, so both see the same load from other processes on the machine
        old_values, new_values, old_times, new_times = [], [], [], []
        rng_old, rng_new = np.random.default_rng(0), np.random.default_rng(0)
        for _ in range(args.old_resamples):
            start = time.perf_counter()
            old_values.append(frechet_distance_from_features(resample_blocks(ref, rng_old),
                                                             resample_blocks(cand, rng_old), 1).value)
            old_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            new_values.append(fast.resample(rng_new))
            new_times.append(time.perf_counter() - start)
        old_s = sum(old_times) / args.old_resamples * args.resamples
        paired_ratio = sum(old_times) / sum(new_times)
        max_rel = max(abs(n - o) / abs(o) for n, o in zip(new_values, old_values, strict=True))

        rows = 2 * clips * args.frames
        print(f"\n{clips} clips x {args.frames} frames per set ({rows} Inception frames):")
        print(f"  statistic {statistic_s:.2f} s; interval ({args.resamples} resamples): new {fast_s:.2f} s, "
              f"old {old_s:.1f} s (timed on {args.old_resamples}, scaled); per resample, alternating on the same "
              f"draws: {paired_ratio:.1f}x faster; load average {os.getloadavg()[0]:.1f}; "
              f"max relative difference new vs old on the same draws {max_rel:.2e}")
        warm = statistic_s + fast_s
        print(f"  warm FID (features cached: statistic + interval) {warm:.2f} s; interval share of warm "
              f"{fast_s / warm:.0%}")
        if per_frame is not None:
            cold = per_frame * rows + warm
            print(f"  cold FID ESTIMATE ({per_frame * 1000:.1f} ms/frame x {rows} frames + warm) {cold:.1f} s; "
                  f"interval share of cold {fast_s / cold:.1%} (old {old_s / (cold - fast_s + old_s):.1%}); "
                  f"warm is {cold / warm:.1f}x faster than cold")
            # a re-run of unchanged inputs finds the interval stored with the features (engine/evaluate.py)
            print(f"  warm re-run of unchanged inputs (statistic; interval stored) {statistic_s:.2f} s: "
                  f"{cold / statistic_s:.0f}x faster than cold")


if __name__ == "__main__":
    main()
