"""The set-level metrics as users run them: the example suite end to end, the feature cache across runs,
missing weights as an item error."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "example_suites"


def records(path: Path) -> dict[str, dict[str, Any]]:
    return {r["check"]: r for r in json.loads(path.read_text())["records"]}


def test_example_suite_end_to_end_then_warm_from_the_feature_cache(
        pytester: pytest.Pytester, random_weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIGVE_WEIGHTS_DIR", str(random_weights))
    monkeypatch.setenv("AIGVE_ALLOW_UNVERIFIED_WEIGHTS", "1")  # random weights are not the published files
    args = ["--aigve-suite", str(EXAMPLES / "distribution.yaml"), "--aigve-cache-dir", "cache",
            "--junitxml", "junit.xml"]
    cold = pytester.runpytest_subprocess(*args, "--aigve-report-dir", "cold")
    names = ["fid[reference-vs-generated]", "kid[reference-vs-generated]", "is[generated]",
             "fvd[reference-vs-generated]", "fvd_r3d18[reference-vs-generated]", "cd_fvd[videomae]", "cd_fvd[i3d]"]
    first = records(pytester.path / "cold" / "aigve-results.json")
    assert list(first) == names
    for name, record in first.items():
        assert record["outcome"] in ("passed", "failed"), f"{name}: {record['message']}"  # computed, not errored
        assert math.isfinite(record["value"])
        assert len(record["backbone"]["weights_sha256"]) == 64 and record["backbone"]["precision"] == "fp32"
        assert record["protocol"]["frames"] in (4, 16) and record["device"] == "cpu"
        assert record["interval"]["low"] <= record["value"] <= record["interval"]["high"]
        if name != "kid[reference-vs-generated]":  # KID is unbiased and may be negative; distances may not
            assert record["interval"]["low"] >= (1.0 if name.startswith("is") else 0.0)
    assert cold.ret in (0, 1)
    # FID, KID and IS share one Inception pass per set: only FID decoded and computed
    assert first["fid[reference-vs-generated]"]["details"]["videos_decoded"] == 8
    assert first["kid[reference-vs-generated]"]["details"]["videos_decoded"] == 0
    assert first["is[generated]"]["details"]["videos_decoded"] == 0
    assert first["kid[reference-vs-generated]"]["backbone"]["features_computed"] == 0
    assert first["cd_fvd[videomae]"]["protocol"]["resize"] == [96, 96]
    assert first["fvd_r3d18[reference-vs-generated]"]["backbone"]["name"] == "r3d-18-k400"

    warm = pytester.runpytest_subprocess(*args, "--aigve-report-dir", "warm")
    second = records(pytester.path / "warm" / "aigve-results.json")
    assert warm.ret == cold.ret
    for name in names:
        assert second[name]["value"] == first[name]["value"]
        assert second[name]["details"]["videos_decoded"] == 0, name  # nothing decoded ...
        assert second[name]["backbone"]["features_computed"] == 0, name  # ... and no forward pass
    junit = (pytester.path / "junit.xml").read_text()
    assert 'name="aigve.weights_sha256"' in junit and 'name="aigve.backbone" value="i3d-400"' in junit


def r3d_project(pytester: pytest.Pytester, random_weights: Path, monkeypatch: pytest.MonkeyPatch,
                make_video) -> None:
    """Two reference and two generated videos and one fvd_r3d18 check, with the random weights."""
    monkeypatch.setenv("AIGVE_WEIGHTS_DIR", str(random_weights))
    for index in range(2):
        make_video(f"ref/v{index}.mp4", seed=index, root=pytester.path)
        make_video(f"gen/v{index}.mp4", seed=4 + index, root=pytester.path)
    pytester.makefile(".yaml", aigve_r3d="""\
protocol: {frames: 8}
video_sets: {ref: {folder: ref}, gen: {folder: gen}}
checks: [{metric: fvd_r3d18, reference: ref, candidate: gen}]
""")


def test_no_cache_option_computes_again(pytester: pytest.Pytester, random_weights: Path,
                                        monkeypatch: pytest.MonkeyPatch, make_video) -> None:
    r3d_project(pytester, random_weights, monkeypatch, make_video)
    for _ in range(2):
        result = pytester.runpytest("--aigve-no-cache", "--aigve-allow-unverified-weights",
                                    "--aigve-cache-dir", "cache", "--aigve-report-dir", "out")
        result.assert_outcomes(passed=1)
        record = records(pytester.path / "out" / "aigve-results.json")["fvd_r3d18[ref-vs-gen]"]
        assert record["backbone"]["features_computed"] == 4  # 2 + 2 videos, every run
    assert not (pytester.path / "cache").exists()


def test_missing_weights_error_the_item_with_the_fetch_command(pytester: pytest.Pytester, make_video,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(pytester.path / "torch-home"))
    monkeypatch.delenv("AIGVE_WEIGHTS_DIR", raising=False)
    make_video("ref/v0.mp4", root=pytester.path)
    make_video("gen/v0.mp4", root=pytester.path)
    pytester.makefile(".yaml", aigve_fid="""\
protocol: {frames: 2}
video_sets: {ref: {folder: ref}, gen: {folder: gen}}
checks: [{metric: fid, reference: ref, candidate: gen, params: {weights: models/inception.pth}}]
""")
    result = pytester.runpytest("--aigve-report-dir", "out")
    result.assert_outcomes(errors=1)
    output = result.stdout.str()
    assert "fid[ref-vs-gen]: cannot compute fid: missing weights pt_inception-2015-12-05-6726825d.pth" in output
    assert "models/inception.pth (the path given in the suite)" in output
    assert "fetch with: python -m pytest_aigve weights fetch inception" in output
    assert "Traceback" not in output


def test_fid_kid_is_run_inception_once_per_pytest_run_under_xdist(
        pytester: pytest.Pytester, random_weights: Path, monkeypatch: pytest.MonkeyPatch, make_video) -> None:
    pytest.importorskip("xdist")
    monkeypatch.setenv("AIGVE_WEIGHTS_DIR", str(random_weights))
    for index in range(3):
        make_video(f"ref/v{index}.mp4", seed=index, root=pytester.path)
        make_video(f"gen/v{index}.mp4", seed=5 + index, root=pytester.path)
    pytester.makefile(".yaml", aigve_image="""\
protocol: {frames: 2, fps: 2}
video_sets: {ref: {folder: ref}, gen: {folder: gen}}
checks:
  - {metric: fid, reference: ref, candidate: gen}
  - {metric: kid, reference: ref, candidate: gen}
""")
    # two items, two workers: both start at once and need the same Inception features
    result = pytester.runpytest_subprocess("-n", "2", "--aigve-allow-unverified-weights", "--aigve-cache-dir",
                                           "cache", "--aigve-report-dir", "out")
    result.assert_outcomes(passed=2)
    found = records(pytester.path / "out" / "aigve-results.json")
    computed = sum(r["backbone"]["features_computed"] for r in found.values())
    decoded = sum(r["details"]["videos_decoded"] for r in found.values())
    assert computed == 6 and decoded == 6  # 3 + 3 videos, each decoded and run through Inception once


def test_damaged_cache_entry_is_named_in_the_record_and_recomputed(
        pytester: pytest.Pytester, random_weights: Path, monkeypatch: pytest.MonkeyPatch, make_video) -> None:
    """Issue 7: a flipped byte in the feature cache once changed FID silently; now the entry is reported on the
    score, deleted and recomputed, and the score is the cold one."""
    r3d_project(pytester, random_weights, monkeypatch, make_video)
    args = ["--aigve-allow-unverified-weights", "--aigve-cache-dir", "cache", "--aigve-report-dir", "out"]
    pytester.runpytest(*args).assert_outcomes(passed=1)
    cold = records(pytester.path / "out" / "aigve-results.json")["fvd_r3d18[ref-vs-gen]"]
    entry = sorted((pytester.path / "cache").rglob("*.npy"))[0]
    data = bytearray(entry.read_bytes())
    data[len(data) // 2] ^= 0x40  # one flipped bit in the stored features
    entry.write_bytes(bytes(data))
    pytester.runpytest(*args).assert_outcomes(passed=1)
    warm = records(pytester.path / "out" / "aigve-results.json")["fvd_r3d18[ref-vs-gen]"]
    # recomputed alone rather than in a batch of two: float32 convolutions agree to ~1e-8, not bit for bit
    assert warm["value"] == pytest.approx(cold["value"], rel=1e-6) and warm["backbone"]["features_computed"] == 1
    assert any(f"feature cache entry {entry}" in w and "recomputed" in w for w in warm["warnings"]), warm["warnings"]
