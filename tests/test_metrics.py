"""Metric parity with reference implementations, and one contract run over every registered metric."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from pytest_aigve.errors import MetricError, ParamError
from pytest_aigve.examples import degrade, moving_scene
from pytest_aigve.metrics.base import PairedMetric, PerVideoMetric
from pytest_aigve.metrics.registry import BUILTIN_METRICS, MetricRegistry
from pytest_aigve.metrics.testing import MemoryInputs
from pytest_aigve.protocol import ClipProtocol
from pytest_aigve.videos.decode import decode_clip

CPU = torch.device("cpu")


def ArrayInputs(clips: list[np.ndarray], references: list[np.ndarray] | None = None) -> MemoryInputs:
    """Feeds uint8 arrays as whole float64 tensors (T, 3, H, W) in [0, 255]: one set, or reference/candidate
    pairs."""
    roles = {"set": clips, "reference": references or [], "candidate": clips}
    return MemoryInputs(roles, frame_clips=False)  # type: ignore[arg-type]


def metric(name: str, **params: object):
    cls = MetricRegistry().get(name)
    return cls(cls.validate_params(params), CPU)


def vbench_flicker(videos: list[np.ndarray]) -> float:
    """VBench's temporal_flickering: per video mean of per-pair mean |a-b| on uint8 frames; (255 - mean)/255."""
    per_video = []
    for frames in videos:
        maes = [np.mean(np.abs(frames[i].astype(np.int16) - frames[i + 1].astype(np.int16)))
                for i in range(len(frames) - 1)]
        per_video.append(np.mean(maes))
    return float((255.0 - np.mean(per_video)) / 255.0)


@pytest.fixture
def clip_pairs() -> tuple[list[np.ndarray], list[np.ndarray]]:
    references = [moving_scene(seed, frames=6, size=(40, 52)) for seed in range(3)]
    candidates = [degrade(ref, seed=10 + i, noise=6.0, flicker=5.0) for i, ref in enumerate(references)]
    return references, candidates


def test_flicker_matches_vbench_definition(clip_pairs) -> None:
    _, candidates = clip_pairs
    result = metric("flicker").evaluate(ArrayInputs(candidates))
    assert result.value == pytest.approx(vbench_flicker(candidates), rel=1e-12)
    assert set(result.per_video) == {"v0.mp4", "v1.mp4", "v2.mp4"}


def test_flicker_ranks_flickering_video_lower(clip_pairs) -> None:
    references, candidates = clip_pairs
    steady = metric("flicker").evaluate(ArrayInputs(references)).value
    assert metric("flicker").evaluate(ArrayInputs(candidates)).value < steady < 1.0


def test_psnr_matches_scikit_image(clip_pairs) -> None:
    references, candidates = clip_pairs
    expected = np.mean([np.mean([peak_signal_noise_ratio(r, c, data_range=255)
                                 for r, c in zip(ref, cand, strict=True)])
                        for ref, cand in zip(references, candidates, strict=True)])
    result = metric("psnr").evaluate(ArrayInputs(candidates, references))
    assert result.value == pytest.approx(expected, rel=1e-10)


def test_psnr_caps_identical_frames(clip_pairs) -> None:
    references, _ = clip_pairs
    assert metric("psnr").evaluate(ArrayInputs(references, references)).value == pytest.approx(100.0)
    assert metric("psnr", max_db=60).evaluate(ArrayInputs(references, references)).value == pytest.approx(60.0)


def test_ssim_matches_scikit_image(clip_pairs) -> None:
    references, candidates = clip_pairs
    expected = np.mean([np.mean([structural_similarity(r, c, data_range=255, channel_axis=-1,
                                                       gaussian_weights=True, sigma=1.5,
                                                       use_sample_covariance=False)
                                 for r, c in zip(ref, cand, strict=True)])
                        for ref, cand in zip(references, candidates, strict=True)])
    result = metric("ssim").evaluate(ArrayInputs(candidates, references))
    assert result.value == pytest.approx(expected, rel=1e-9)
    assert 0.2 < result.value < 0.99


@pytest.mark.shared_data
def test_psnr_and_ssim_match_scikit_image_on_real_video(shared_data: Path) -> None:
    folder = shared_data / "aigve_bench_toy" / "videos_5frame"
    protocol = ClipProtocol(frames=5)
    reference = decode_clip(folder / "cogvideox_0.mp4", protocol).frames[:, ::4, ::4]
    candidate = decode_clip(folder / "cogvideox_2.mp4", protocol).frames[:, ::4, ::4]
    inputs = ArrayInputs([candidate], [reference])
    expected_psnr = np.mean([peak_signal_noise_ratio(r, c, data_range=255)
                             for r, c in zip(reference, candidate, strict=True)])
    expected_ssim = np.mean([structural_similarity(r, c, data_range=255, channel_axis=-1, gaussian_weights=True,
                                                   sigma=1.5, use_sample_covariance=False)
                             for r, c in zip(reference, candidate, strict=True)])
    assert metric("psnr").evaluate(inputs).value == pytest.approx(expected_psnr, rel=1e-10)
    assert metric("ssim").evaluate(inputs).value == pytest.approx(expected_ssim, rel=1e-9)
    assert metric("flicker").evaluate(ArrayInputs([candidate])).value == pytest.approx(
        vbench_flicker([candidate]), rel=1e-12)


def test_paired_metrics_reject_mismatched_shapes(clip_pairs) -> None:
    references, candidates = clip_pairs
    with pytest.raises(MetricError, match=r"differ in shape .* set 'resize: \[height, width\]'"):
        metric("psnr").evaluate(ArrayInputs([candidates[0][:, :32]], [references[0]]))


def test_ssim_rejects_frames_smaller_than_its_window() -> None:
    tiny = [moving_scene(0, frames=3, size=(8, 8))]
    with pytest.raises(MetricError, match="smaller than the 11-pixel window"):
        metric("ssim").evaluate(ArrayInputs(tiny, tiny))


# --- the contract every registered metric keeps -------------------------------------------------

PIXEL_METRICS = [name for name in MetricRegistry().names()
                 if issubclass(MetricRegistry().get(name), PerVideoMetric | PairedMetric)]


def test_every_registered_metric_declares_its_contract() -> None:
    registry = MetricRegistry()
    assert registry.names() == sorted(BUILTIN_METRICS)
    for name in registry.names():
        cls = registry.get(name)
        assert cls.name == name and isinstance(cls.higher_is_better, bool) and cls.description
        assert cls.spec.kind in ("single", "paired", "sets") and cls.spec.min_frames >= 1
        for request in cls.backbone_requests(cls.validate_params({})):  # every backbone asked for exists
            backbone = registry.backbones.get(request.key)
            assert request.output is None or request.output in backbone.outputs
        with pytest.raises(ParamError) as info:
            cls.validate_params({"no_such_parameter": 1})
        assert info.value.key == "no_such_parameter" and name in str(info.value)
        for key, spec in cls.params.items():
            assert cls.validate_params({})[key] == spec.default
            with pytest.raises(ParamError, match=key):
                cls.validate_params({key: {"not": "valid"}})


@pytest.mark.parametrize("name", PIXEL_METRICS)
def test_pixel_metric_contract(name: str, clip_pairs) -> None:
    cls = MetricRegistry().get(name)
    references, candidates = clip_pairs
    inputs = ArrayInputs(candidates, references)
    value = cls(cls.validate_params({}), CPU).evaluate(inputs).value
    assert np.isfinite(value)
    low, high = cls.value_range
    assert (low is None or value >= low) and (high is None or value <= high)
    # the score moves with the input: compare clean with degraded content
    clean = cls(cls.validate_params({}), CPU).evaluate(ArrayInputs(references, references)).value
    assert clean != pytest.approx(value)
    assert (clean > value) == cls.higher_is_better
    one_frame = [c[:1] for c in candidates]
    if cls.spec.min_frames > 1:
        with pytest.raises(MetricError, match=f"needs at least {cls.spec.min_frames} frames"):
            cls(cls.validate_params({}), CPU).evaluate(ArrayInputs(one_frame, [r[:1] for r in references]))
