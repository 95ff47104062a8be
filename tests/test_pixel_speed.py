"""Pixel metrics (SSIM, PSNR, flicker) on uint8 FrameClips: chunked values equal the frame-by-frame references,
no float copy of a whole clip is made, and peak memory does not grow with the clip's length. Speed is claimed in
benchmarks/pixel_metrics.py, not tested here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from pytest_aigve.examples import degrade, moving_scene
from pytest_aigve.metrics import ssim as ssim_module
from pytest_aigve.metrics.base import PerVideoMetric
from pytest_aigve.metrics.registry import MetricRegistry
from pytest_aigve.metrics.testing import MemoryInputs
from pytest_aigve.protocol import ClipProtocol
from pytest_aigve.videos import prepare
from pytest_aigve.videos.prepare import FrameClip, clip_frames, clip_to_tensor

CPU = torch.device("cpu")
Pair = tuple[np.ndarray, np.ndarray]
NATIVE = ClipProtocol(frames=None)


def FrameClipInputs(clips: list[np.ndarray], references: list[np.ndarray] | None = None,
                    protocol: ClipProtocol = NATIVE) -> MemoryInputs:
    """Feeds uint8 arrays as the engine does: FrameClips (uint8 on the device, floats made per chunk)."""
    roles = {"set": clips, "reference": references or [], "candidate": clips}
    return MemoryInputs(roles, protocol=protocol)  # type: ignore[arg-type]


def metric(name: str) -> Any:
    cls = MetricRegistry().get(name)
    return cls(cls.validate_params({}), CPU)


def skimage_ssim(reference: np.ndarray, candidate: np.ndarray) -> float:
    return float(np.mean([structural_similarity(r, c, data_range=255, channel_axis=-1, gaussian_weights=True,
                                                sigma=1.5, use_sample_covariance=False)
                          for r, c in zip(reference, candidate, strict=True)]))


def vbench_flicker(frames: np.ndarray) -> float:
    maes = [np.mean(np.abs(frames[i].astype(np.int16) - frames[i + 1].astype(np.int16)))
            for i in range(len(frames) - 1)]
    return float((255.0 - np.mean(maes)) / 255.0)


@pytest.fixture
def odd_pair() -> Pair:
    """7 frames (odd: the last chunk is partial), 100x60 (taller than wide: bands of rows, not columns)."""
    reference = moving_scene(3, frames=7, size=(100, 60))
    return reference, degrade(reference, seed=4, noise=8.0, flicker=4.0)


# band budgets: the default (one chunk, whole frames); three frames per chunk (7 = 3 + 3 + 1); one frame per
# chunk in bands of 8 rows (90 valid rows = 11 bands of 8 + one of 2)
@pytest.mark.parametrize("band_pixels", [ssim_module._BAND_PIXELS, 3 * 100 * 60, 1])
def test_chunked_ssim_equals_scikit_image_frame_by_frame(band_pixels: int, odd_pair: Pair,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ssim_module, "_BAND_PIXELS", band_pixels)
    reference, candidate = odd_pair
    value = metric("ssim").evaluate(FrameClipInputs([candidate], [reference])).value
    assert value == pytest.approx(skimage_ssim(reference, candidate), rel=1e-9)


# blocks: 8 rows of one frame (two for flicker); three whole frames; the whole clip
@pytest.mark.parametrize("frames_per_block", [0.1, 3, 100])
def test_chunked_psnr_and_flicker_equal_their_references(frames_per_block: float, odd_pair: Pair,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prepare, "BLOCK_PIXELS", int(frames_per_block * 100 * 60))
    reference, candidate = odd_pair
    expected_psnr = np.mean([peak_signal_noise_ratio(r, c, data_range=255)
                             for r, c in zip(reference, candidate, strict=True)])
    assert metric("psnr").evaluate(FrameClipInputs([candidate], [reference])).value == pytest.approx(
        expected_psnr, rel=1e-10)
    # flicker's chunks overlap by one frame: every consecutive pair counted once
    assert metric("flicker").evaluate(FrameClipInputs([candidate])).value == pytest.approx(
        vbench_flicker(candidate), rel=1e-12)


@pytest.mark.parametrize("protocol", [ClipProtocol(resize=(50, 40)), ClipProtocol(resize=48),
                                      ClipProtocol(resize=(40, 40), resize_mode="center_crop"),
                                      ClipProtocol(resize=32, resize_mode="cdfvd")],
                         ids=["stretch", "shorter-side", "center-crop", "cdfvd"])
def test_frame_clip_chunks_equal_the_whole_clip_conversion(protocol: ClipProtocol, odd_pair: Pair) -> None:
    """Resizing is per frame: converting frames [a, b) gives exactly those frames of the whole-clip tensor."""
    frames = odd_pair[1]
    whole = clip_to_tensor(frames, protocol, CPU)
    clip = clip_frames(frames, protocol, CPU)
    assert clip.shape == whole.shape
    chunks = torch.cat([clip.convert(start, min(start + 3, len(clip))) for start in range(0, len(clip), 3)])
    assert torch.equal(chunks, whole)


@pytest.mark.parametrize("name", ["ssim", "psnr", "flicker"])
def test_resized_clips_score_as_their_whole_float64_tensors(name: str, odd_pair: Pair,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Resized FrameClips (float values, converted a chunk of whole frames at a time, then cut into bands) score
    as the whole-clip float64 tensors clip_to_tensor makes."""
    for module, budget in ((prepare, "CHUNK_PIXELS"), (prepare, "BLOCK_PIXELS"), (ssim_module, "_BAND_PIXELS")):
        monkeypatch.setattr(module, budget, 2 * 50 * 40)  # chunks of two frames, bands of rows
    protocol = ClipProtocol(frames=None, resize=(50, 40))
    reference, candidate = odd_pair
    scorer = metric(name)

    def score(make: Any) -> float:
        if name == "flicker":
            return float(scorer.score_clip(make(candidate)))
        return float(scorer.score_pair(make(reference), make(candidate)))

    chunked = score(lambda frames: clip_frames(frames, protocol, CPU))
    assert chunked == pytest.approx(score(lambda frames: clip_to_tensor(frames, protocol, CPU)), rel=1e-12)


@pytest.mark.parametrize("resize", [None, (64, 64)], ids=["native", "resized"])
@pytest.mark.parametrize("name", ["ssim", "psnr", "flicker"])
def test_pixel_metrics_never_convert_a_whole_clip(name: str, resize: tuple[int, int] | None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Spy on FrameClip.convert: a 12-frame clip is converted at most two frames at a time, every frame is
    converted, and the whole-clip conversion is never called."""
    for module, budget, pixels in ((prepare, "CHUNK_PIXELS", 2 * 64 * 64), (ssim_module, "_BAND_PIXELS", 2 * 64 * 64),
                                   (prepare, "BLOCK_PIXELS", 64 * 64 // 2)):  # flicker's blocks are 4x this
        monkeypatch.setattr(module, budget, pixels)  # two 64x64 frames
    converted: list[tuple[int, int]] = []
    original = FrameClip.convert

    def spy(self: FrameClip, start: int, stop: int, dtype: torch.dtype = torch.float64,
            rows: tuple[int, int] | None = None) -> torch.Tensor:
        converted.append((start, stop))
        return original(self, start, stop, dtype, rows)

    monkeypatch.setattr(FrameClip, "convert", spy)
    monkeypatch.setattr(FrameClip, "materialise", lambda *_: pytest.fail("a whole clip was converted"))
    reference = moving_scene(1, frames=12, size=(64, 64) if resize is None else (80, 80))
    candidate = degrade(reference, seed=2, noise=5.0)
    inputs = FrameClipInputs([candidate], [reference], ClipProtocol(frames=None, resize=resize))
    result = metric(name).evaluate(inputs)
    assert np.isfinite(result.value)
    assert converted and max(stop - start for start, stop in converted) <= 2
    covered = {frame for start, stop in converted for frame in range(start, stop)}
    assert covered == set(range(12))


@pytest.mark.parametrize("block_pixels", [1, 64, 1 << 15])
def test_row_blocks_cover_each_frame_once(block_pixels: int, odd_pair: Pair) -> None:
    """frame_blocks' bands of rows add up to the whole clip, with and without a one-frame overlap."""
    frames = odd_pair[0]
    clip = clip_frames(frames, NATIVE, CPU)
    whole = clip_to_tensor(frames, NATIVE, CPU)
    total = torch.zeros(7, dtype=torch.float64)
    for start, block in prepare.frame_blocks(clip, block_pixels):
        total[start: start + block.shape[0]] += block.sum(dim=(1, 2, 3))
    assert torch.equal(total, whole.sum(dim=(1, 2, 3)))
    pairs = torch.zeros(6, dtype=torch.float64)
    for start, block in prepare.frame_blocks(clip, block_pixels, overlap=1):
        pairs[start: start + block.shape[0] - 1] += (block[1:] - block[:-1]).abs().sum(dim=(1, 2, 3))
    assert torch.equal(pairs, (whole[1:] - whole[:-1]).abs().sum(dim=(1, 2, 3)))


class LegacyMetric(PerVideoMetric):
    """A metric written before FrameClip: score_clip indexes a whole float tensor."""

    name: ClassVar[str] = "legacy"
    description: ClassVar[str] = "mean of the last frame"
    higher_is_better: ClassVar[bool] = True
    seen: ClassVar[list[torch.Tensor]] = []

    def score_clip(self, clip: torch.Tensor) -> float:
        self.seen.append(clip)
        return float(clip[-1].mean())


def test_metrics_that_do_not_read_frame_clips_still_get_whole_float64_tensors(odd_pair: Pair) -> None:
    frames = odd_pair[0]
    LegacyMetric.seen.clear()
    value = LegacyMetric({}, CPU).evaluate(FrameClipInputs([frames])).value
    (clip,) = LegacyMetric.seen
    assert isinstance(clip, torch.Tensor) and clip.dtype == torch.float64 and clip.shape == (7, 3, 100, 60)
    assert value == pytest.approx(frames[-1].astype(np.float64).mean(), rel=1e-12)


# A 720p x 48-frame SSIM pair, in a fresh interpreter whose own peak RSS (VmHWM) is read. The two uint8 clips are
# 265 MB; float64 copies of both whole clips alone would be 2.1 GB (and conv2d's im2col 11x more per frame).
PEAK_MEMORY_SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "ssim_peak_memory.py"


def peak_rss(frames: int, height: int, width: int) -> dict[str, float]:
    done = subprocess.run([sys.executable, str(PEAK_MEMORY_SCRIPT), str(frames), str(height), str(width)],
                          capture_output=True, text=True, check=True, timeout=120)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_ssim_peak_memory_of_a_720p_48_frame_pair_stays_under_1_5_gb() -> None:
    found = peak_rss(48, 720, 1280)
    assert np.isfinite(found["value"])
    assert found["peak_kib"] * 1024 < 1.5e9
    # beyond the decoded clips and the interpreter, scoring adds a fixed working set, not a clip-sized copy
    # (one float64 copy of one whole clip would be 1.06 GB)
    assert (found["peak_kib"] - found["before_kib"]) * 1024 < 200e6
