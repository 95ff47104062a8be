"""SSIM, PSNR and flicker: ms per frame, ours vs scikit-image (and torchmetrics where installed), on the same
frames, with the largest relative difference of the per-frame values, and the peak RSS of a 720p x 48-frame SSIM
pair in a fresh interpreter.

Frames: a seeded synthetic 720p clip (a moving scene upscaled, plus noise for the candidate), and two real LaVie
clips from /work/shared/data/aigve_toy_lavie when present. Timings are the best of --repeats runs (the machine
may be shared); ours reads uint8 FrameClips, as the engine gives them.

    python benchmarks/pixel_metrics.py [--frames 8] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from pytest_aigve.examples import degrade, moving_scene
from pytest_aigve.metrics.registry import MetricRegistry
from pytest_aigve.protocol import ClipProtocol
from pytest_aigve.videos.prepare import clip_frames

CPU = torch.device("cpu")
NATIVE = ClipProtocol(frames=None)
LAVIE = Path("/work/shared/data/aigve_toy_lavie/evaluate")

PEAK_MEMORY_SCRIPT = Path(__file__).with_name("ssim_peak_memory.py")


def metric(name: str) -> Any:
    cls = MetricRegistry().get(name)
    return cls(cls.validate_params({}), CPU)


def best_of(repeats: int, *runs: Callable[[], Any]) -> list[tuple[float, Any]]:
    """Each run's best wall time and its value; the runs alternate, so that load from other processes on a
    shared machine falls on all of them alike."""
    times: list[list[float]] = [[] for _ in runs]
    values: list[Any] = [None for _ in runs]
    for _ in range(repeats):
        for index, run in enumerate(runs):
            started = time.perf_counter()
            values[index] = run()
            times[index].append(time.perf_counter() - started)
    return [(min(found), value) for found, value in zip(times, values, strict=True)]


def synthetic(frames: int) -> tuple[str, np.ndarray, np.ndarray]:
    """720p: a 180x320 moving scene upscaled 4x (smooth content, like decoded video), noisy candidate."""
    small = moving_scene(7, frames=frames, size=(180, 320))
    reference = np.ascontiguousarray(small.repeat(4, axis=1).repeat(4, axis=2))
    candidate = degrade(reference, seed=8, noise=6.0, flicker=3.0)
    return "synthetic 720x1280", reference, candidate


def lavie(frames: int) -> tuple[str, np.ndarray, np.ndarray] | None:
    files = sorted(LAVIE.glob("*.mp4")) if LAVIE.is_dir() else []
    if len(files) < 2:
        return None
    from pytest_aigve.videos.decode import decode_clip  # PyAV only where a real clip is read

    protocol = ClipProtocol(frames=frames, short_video="loop")
    reference, candidate = (decode_clip(path, protocol).frames for path in files[:2])
    height, width = reference.shape[1:3]
    return f"LaVie {height}x{width} ({files[0].name[:24]}... vs {files[1].name[:24]}...)", reference, candidate


def vbench_flicker(frames: np.ndarray) -> float:
    maes = [np.mean(np.abs(frames[i].astype(np.int16) - frames[i + 1].astype(np.int16)))
            for i in range(len(frames) - 1)]
    return float((255.0 - np.mean(maes)) / 255.0)


def torchmetrics_ssim() -> Callable[[np.ndarray, np.ndarray], list[float]] | None:
    try:
        from torchmetrics.functional.image import structural_similarity_index_measure
    except ImportError:
        return None

    def run(reference: np.ndarray, candidate: np.ndarray) -> list[float]:
        ref = torch.from_numpy(reference).permute(0, 3, 1, 2).double()
        cand = torch.from_numpy(candidate).permute(0, 3, 1, 2).double()
        values = structural_similarity_index_measure(cand, ref, data_range=255.0, reduction="none")
        return [float(v) for v in torch.as_tensor(values).flatten()]

    return run


def compare(label: str, reference: np.ndarray, candidate: np.ndarray, repeats: int) -> None:
    frames = len(reference)
    print(f"\n{label}: {frames} frames {reference.shape[1]}x{reference.shape[2]}")

    def ours(name: str, *clips: np.ndarray) -> float:
        return float(getattr(metric(name), "score_pair" if len(clips) == 2 else "score_clip")(
            *(clip_frames(clip, NATIVE, CPU) for clip in clips)))

    def ours_per_frame(name: str) -> list[float]:  # one-frame clips: per-frame values to compare
        return [ours(name, reference[i: i + 1], candidate[i: i + 1]) for i in range(frames)]

    ssim_reference = lambda: [structural_similarity(r, c, data_range=255, channel_axis=-1,  # noqa: E731
                                                    gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
                              for r, c in zip(reference, candidate, strict=True)]
    psnr_reference = lambda: [peak_signal_noise_ratio(r, c, data_range=255)  # noqa: E731
                              for r, c in zip(reference, candidate, strict=True)]
    rows: list[tuple[str, str, Callable[[], Any], Callable[[], Any], Callable[[], list[float]], int]] = [
        ("ssim", "scikit-image", lambda: ours("ssim", reference, candidate), ssim_reference,
         lambda: ours_per_frame("ssim"), frames),
        ("psnr", "scikit-image", lambda: ours("psnr", reference, candidate), psnr_reference,
         lambda: ours_per_frame("psnr"), frames),
        ("flicker", "VBench (numpy)", lambda: ours("flicker", candidate), lambda: [vbench_flicker(candidate)],
         lambda: [ours("flicker", candidate)], frames - 1),
    ]
    print(f"  {'metric':8} {'ours ms/frame':>14} {'reference':>16} {'ref ms/frame':>13} {'ratio':>7} "
          f"{'max rel diff':>13}")
    for name, ref_name, run_ours, run_ref, per_frame, count in rows:
        (ours_s, _), (ref_s, ref_values) = best_of(repeats, run_ours, run_ref)
        ours_values = per_frame()
        rel = max(abs(a - b) / abs(b) for a, b in zip(ours_values, ref_values, strict=True))
        print(f"  {name:8} {ours_s / count * 1e3:14.2f} {ref_name:>16} {ref_s / count * 1e3:13.2f} "
              f"{ours_s / ref_s:7.3f} {rel:13.2e}")
    tm = torchmetrics_ssim()
    if tm is None:
        print("  torchmetrics: not installed, skipped")
    else:
        ((tm_s, _),) = best_of(repeats, lambda: tm(reference, candidate))
        print(f"  ssim torchmetrics {tm_s / frames * 1e3:.2f} ms/frame (its own window handling; values not "
              f"compared)")


def peak_rss(frames: int, height: int, width: int) -> dict[str, Any]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, str(PEAK_MEMORY_SCRIPT), str(frames), str(height), str(width)],
                          capture_output=True, text=True, check=True)
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    found["seconds"] = time.perf_counter() - started
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, python {platform.python_version()}, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads; the pixel metrics use 1 on the CPU), numpy {np.__version__}")
    try:
        load = os.getloadavg()
        print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    except OSError:
        pass
    sources = [synthetic(args.frames), lavie(args.frames)]
    for source in sources:
        if source is None:
            print(f"\n{LAVIE}: not found, real clips skipped")
            continue
        compare(*source, repeats=args.repeats)
    uint8_mb = 2 * 48 * 720 * 1280 * 3 / 1e6
    found = peak_rss(48, 720, 1280)
    print(f"\nSSIM 720x1280 x 48-frame pair, fresh interpreter: peak RSS {found['peak_kib'] / 1024:.0f} MiB "
          f"(before scoring, with the two uint8 clips of {uint8_mb:.0f} MB: {found['before_kib'] / 1024:.0f} MiB; "
          f"scoring added {(found['peak_kib'] - found['before_kib']) / 1024:.0f} MiB), "
          f"{found['seconds']:.1f} s in all")


if __name__ == "__main__":
    main()
