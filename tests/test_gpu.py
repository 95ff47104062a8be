"""The CUDA path (skipped without a GPU): the same scores as the CPU path, fp32 with TF32 off."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pytest_aigve.engine import EvalContext, evaluate_check
from pytest_aigve.metrics.registry import MetricRegistry
from pytest_aigve.runtime import resolve_device
from pytest_aigve.suite import load_suite
from pytest_aigve.videos.cache import ClipCache

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

SUITE = """\
protocol: {frames: 10}
video_sets: {ref: {folder: ref}, gen: {folder: gen}}
checks:
  - {metric: fvd, reference: ref, candidate: gen}
  - {metric: fid, reference: ref, candidate: gen, protocol: {frames: 3}}
  - {metric: cd_fvd, reference: ref, candidate: gen, params: {model: videomae, sequence_length: 16}}
  - {metric: psnr, reference: ref, candidate: gen}
  - {metric: ssim, reference: ref, candidate: gen}
  - {metric: flicker, set: gen}
"""


def scores(folder: Path, device: str, weights: Path) -> dict[str, float]:
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    registry = MetricRegistry()
    suite = load_suite(folder / "suite.yaml", registry)
    ctx = EvalContext(device=torch.device(device), clips=ClipCache(10**9), registry=registry, weights_dir=weights,
                      allow_unverified_weights=True)
    return {c.id: evaluate_check(suite, c, ctx).result.value for c in suite.checks}


def test_gpu_scores_equal_cpu_scores(tmp_path: Path, make_video, random_weights: Path) -> None:
    for index in range(4):
        make_video(f"ref/v{index}.mp4", seed=index, frames=24, size=(96, 128))
        make_video(f"gen/v{index}.mp4", seed=index, frames=24, size=(96, 128), degraded=True)
    (tmp_path / "suite.yaml").write_text(SUITE)
    cpu = scores(tmp_path, "cpu", random_weights)
    gpu = scores(tmp_path, "cuda", random_weights)
    for name, value in cpu.items():
        assert gpu[name] == pytest.approx(value, rel=1e-3), name
        assert np.isfinite(value)


def test_auto_device_picks_cuda_and_pins_xdist_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw3")
    assert resolve_device("auto") == f"cuda:{3 % torch.cuda.device_count()}"
