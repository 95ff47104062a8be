"""How often do the default gates fail a run that changed nothing but noise, and how often do they catch one
collapsed video? Seeded, on the real pipeline (H.264 files, PyAV decoding, our SSIM/PSNR/flicker).

Each run writes 6 candidate clips: the same 6 scenes as the baseline run, degraded with fresh random noise
(a noise-only re-run: what re-rendering the same prompts with another sampling seed looks like to a metric);
the "collapsed" variant replaces one clip with heavy noise. The baseline is run 0. Every run is gated against it
with the suite defaults (gate: auto -> paired, the metric's default tolerance and max_drop).

    python benchmarks/gate_false_alarms.py --runs 200
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

from pytest_aigve.examples import degrade, moving_scene, write_video
from pytest_aigve.gate import (
    BaselineScore,
    GatePolicy,
    Threshold,
    evaluate_gate,
    paired_delta,
    per_video_failures,
)
from pytest_aigve.metrics.registry import MetricRegistry
from pytest_aigve.protocol import ClipProtocol
from pytest_aigve.videos.decode import decode_clip
from pytest_aigve.videos.prepare import clip_to_tensor

VIDEOS = 6
PROTOCOL = ClipProtocol(frames=12)


def scores(metric_name: str, ref_dir: Path, gen_dir: Path) -> dict[str, float]:
    registry = MetricRegistry()
    cls = registry.get(metric_name)
    metric = cls(cls.validate_params({}), torch.device("cpu"))
    found = {}
    for index in range(VIDEOS):
        name = f"clip_{index}.mp4"
        cand = clip_to_tensor(decode_clip(gen_dir / name, PROTOCOL).frames, PROTOCOL, torch.device("cpu"))
        if cls.inputs == "paired":
            ref = clip_to_tensor(decode_clip(ref_dir / name, PROTOCOL).frames, PROTOCOL, torch.device("cpu"))
            found[name] = metric.score_pair(ref, cand)  # type: ignore[attr-defined]
        else:
            found[name] = metric.score_clip(cand)  # type: ignore[attr-defined]
    return found


def write_run(root: Path, scenes: list[np.ndarray], seed: int, collapse: bool) -> Path:
    folder = root / f"run_{seed}_{int(collapse)}"
    for index, clip in enumerate(scenes):
        noisy = degrade(clip, seed=seed * 100 + index, noise=4.0)
        if collapse and index == VIDEOS - 1:
            noisy = degrade(clip, seed=seed * 100 + index, noise=60.0)
        write_video(folder / f"clip_{index}.mp4", noisy)
    return folder


def verdict(metric_name: str, run: dict[str, float], baseline: dict[str, float]) -> str:
    cls = MetricRegistry().get(metric_name)
    policy = GatePolicy(tolerance=cls.default_tolerance)
    paired = paired_delta(run, baseline, policy.bootstrap, cls.bootstrap_resamples)
    failures = per_video_failures(run, baseline, cls.higher_is_better, policy.per_video, cls.default_max_drop)
    value, base = float(np.mean(list(run.values()))), float(np.mean(list(baseline.values())))
    result = evaluate_gate(metric_name, value, None, cls.higher_is_better, Threshold(), policy,
                           BaselineScore("run0", base, None, baseline), VIDEOS, paired, failures)
    return result.verdict


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--metrics", nargs="+", default=["ssim", "psnr", "flicker"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as temp:
        root = Path(temp)
        scenes = [moving_scene(index, frames=12, size=(64, 64)) for index in range(VIDEOS)]
        for index, clip in enumerate(scenes):
            write_video(root / "ref" / f"clip_{index}.mp4", clip)
        baseline_dir = write_run(root, scenes, 0, collapse=False)
        baselines = {m: scores(m, root / "ref", baseline_dir) for m in args.metrics}
        false_alarms = dict.fromkeys(args.metrics, 0)
        caught = dict.fromkeys(args.metrics, 0)
        for seed in range(1, args.runs + 1):
            clean = write_run(root, scenes, seed, collapse=False)
            collapsed = write_run(root, scenes, seed, collapse=True)
            for metric in args.metrics:
                base = baselines[metric]
                false_alarms[metric] += verdict(metric, scores(metric, root / "ref", clean), base) == "fail"
                caught[metric] += verdict(metric, scores(metric, root / "ref", collapsed), base) == "fail"
    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
          f"{args.runs} seeded runs of {VIDEOS} videos, {time.perf_counter() - started:.0f} s")
    for metric in args.metrics:
        rate = 100 * false_alarms[metric] / args.runs
        print(f"{metric:8s} false alarms {false_alarms[metric]}/{args.runs} ({rate:.1f}%), "
              f"one collapsed video caught {caught[metric]}/{args.runs}")


if __name__ == "__main__":
    main()
