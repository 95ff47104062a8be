"""Peak memory of one SSIM pair in this (fresh) interpreter: `python benchmarks/ssim_peak_memory.py FRAMES H W`
prints JSON {value, before_kib, peak_kib, ru_maxrss_kib}. Used by benchmarks/pixel_metrics.py and by
tests/test_pixel_speed.py; run it as its own process, so the peak is the pair's alone."""

from __future__ import annotations

import json
import resource
import sys

import numpy as np
import torch

from pytest_aigve.metrics.registry import MetricRegistry
from pytest_aigve.protocol import ClipProtocol
from pytest_aigve.videos.prepare import clip_frames


def peak_kib() -> int:
    # VmHWM: this process's own peak. ru_maxrss also carries the parent's peak across fork/vfork + exec
    # (Linux keeps signal->maxrss), so a large parent would hide the child's number
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main(frames: int, height: int, width: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    reference = np.empty((frames, height, width, 3), dtype=np.uint8)
    for index in range(frames):  # a frame at a time: no clip-sized temporary before the measurement
        reference[index] = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    candidate = reference.copy()
    candidate[:, ::2] //= 2  # a different clip without a second random draw
    cls = MetricRegistry().get("ssim")
    metric = cls(cls.validate_params({}), torch.device("cpu"))
    protocol = ClipProtocol(frames=None)
    before = peak_kib()
    value = metric.score_pair(clip_frames(reference, protocol, torch.device("cpu")),  # type: ignore[attr-defined]
                              clip_frames(candidate, protocol, torch.device("cpu")))
    return {"value": value, "before_kib": before, "peak_kib": peak_kib(),
            "ru_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}


if __name__ == "__main__":
    print(json.dumps(main(*(int(arg) for arg in sys.argv[1:4]))))
