"""Suites over the real AI-generated videos in ../shared/data (skipped where that folder is absent)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_aigve.examples import degrade, write_video
from pytest_aigve.protocol import ClipProtocol
from pytest_aigve.videos.decode import decode_clip

EXAMPLES = Path(__file__).resolve().parents[1] / "example_suites"
pytestmark = pytest.mark.shared_data


def records(path: Path) -> dict[str, dict]:
    return {r["check"]: r for r in json.loads(path.read_text())["records"]}


def test_lavie_annotation_suite(shared_data: Path, pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--aigve-suite", str(EXAMPLES / "lavie.yaml"), "--aigve-report-dir", "out")
    result.assert_outcomes(passed=2)
    found = records(pytester.path / "out" / "aigve-results.json")
    flicker = found["flicker[lavie]"]
    assert flicker["set_sizes"] == {"lavie": 11} and len(flicker["per_video"]) == 11
    assert flicker["resolution"] == ["512x512"] and 0.8 < flicker["value"] < 1.0
    assert len(set(flicker["per_video"].values())) == 11  # real content: every clip scores differently
    # gt and pd name the same files in this toy set: pairing by annotation entry gives SSIM 1
    assert found["ssim[lavie_gt-vs-lavie]"]["value"] == pytest.approx(1.0)
    assert found["ssim[lavie_gt-vs-lavie]"]["resolution"] == ["128x128"]


def test_cogvideox_annotation_suite_skips_and_lists_missing_files(shared_data: Path,
                                                                  pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--aigve-suite", str(EXAMPLES / "cogvideox_toy.yaml"), "--aigve-report-dir", "out")
    result.assert_outcomes(passed=2)
    found = records(pytester.path / "out" / "aigve-results.json")
    full = found["flicker[cogvideox_full]"]
    assert sorted(s["video"] for s in full["videos_skipped"]) == [
        "cogvideox_13.mp4", "cogvideox_2.mp4", "cogvideox_4.mp4", "cogvideox_5.mp4"]
    assert all(s["reason"] == "file not found" for s in full["videos_skipped"])
    assert len(full["videos_used"]["cogvideox_full"]) == 6
    assert len(found["flicker[cogvideox_5frame]"]["videos_used"]["cogvideox_5frame"]) == 10


def test_mixed_folder_pairing_on_real_clips(shared_data: Path, pytester: pytest.Pytester) -> None:
    """A mixed folder of real LaVie clips and degraded 'generated' copies, paired by file-name suffix."""
    source = sorted((shared_data / "aigve_toy_lavie" / "evaluate").glob("*.mp4"))[:3]
    mixed = pytester.path / "mixed"
    mixed.mkdir()
    for index, path in enumerate(source):
        stem = f"beach_{index}"
        (mixed / f"{stem}.mp4").symlink_to(path)
        frames = decode_clip(path, ClipProtocol(frames=8)).frames
        write_video(mixed / f"{stem}-Synthetic.mp4", degrade(frames, seed=index, noise=8.0), fps=8)
    write_video(mixed / "orphan_generated.mp4", decode_clip(source[0], ClipProtocol(frames=8)).frames, fps=8)
    suite = """\
protocol: {frames: 8}
video_sets:
  beach: {mixed_folder: mixed, unmatched: skip}
checks:
  - {metric: psnr, reference: beach.real, candidate: beach.generated, min: 25}
  - {metric: ssim, reference: beach.real, candidate: beach.generated, min: 0.3, max: 0.99}
"""
    pytester.makefile(".yaml", aigve_beach=suite)
    result = pytester.runpytest("--aigve-report-dir", "out")
    result.assert_outcomes(passed=2)
    found = records(pytester.path / "out" / "aigve-results.json")
    psnr = found["psnr[beach.real-vs-beach.generated]"]
    assert psnr["videos_used"]["beach.generated"] == [f"beach_{i}-Synthetic.mp4" for i in range(3)]
    assert psnr["videos_used"]["beach.real"] == [f"beach_{i}.mp4" for i in range(3)]
    assert psnr["videos_skipped"] == [{"video": "orphan_generated.mp4",
                                       "reason": "no real video named 'orphan.*' to pair with"}]
    assert 25 < psnr["value"] < 45


def test_vbench_flicker_suite_reads_every_native_frame(shared_data: Path, pytester: pytest.Pytester) -> None:
    """example_suites/vbench_flicker.yaml gives VBench's number: every decoded frame, native size; the default
    protocol (lavie.yaml: 16 frames at 8 fps) is marked as not comparable."""
    import av
    import numpy as np

    result = pytester.runpytest("--aigve-suite", str(EXAMPLES / "vbench_flicker.yaml"), "--aigve-suite",
                                str(EXAMPLES / "lavie.yaml"), "--aigve-report-dir", "out")
    result.assert_outcomes(passed=3)
    results = json.loads((pytester.path / "out" / "aigve-results.json").read_text())["records"]
    faithful = next(r for r in results if r["suite"] == "vbench-flicker")
    per_video = []
    for label in faithful["videos_used"]["lavie"]:
        with av.open(str(shared_data / "aigve_toy_lavie" / "evaluate" / label)) as container:
            frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)]).astype(np.float64)
        per_video.append((255.0 - np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2, 3)).mean()) / 255.0)
    assert faithful["value"] == pytest.approx(float(np.mean(per_video)), rel=1e-9)
    assert "not_reference_protocol" not in faithful["details"]
    default = next(r for r in results if r["suite"] == "lavie-toy" and r["metric"] == "flicker")
    assert "not comparable with published VBench temporal_flickering" in default["details"]["not_reference_protocol"]
