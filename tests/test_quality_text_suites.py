"""The example suites for the text-video and video-quality metrics, run as a user runs them: random test weights in
the official formats written by `weights random`, a cold run over real videos, then a warm re-run that decodes
nothing and runs no network (image, text or quality), with the same scores."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_aigve.__main__ import main

from .helpers import read_html, read_json, records_by_check

EXAMPLES = Path(__file__).resolve().parents[1] / "example_suites"


def run_twice(pytester: pytest.Pytester, suite: Path, weights: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    args = ["--aigve-suite", str(suite), "--aigve-weights-dir", str(weights), "--aigve-allow-unverified-weights",
            "--aigve-cache-dir", "cache", "-p", "no:cacheprovider"]
    reports = []
    for name in ("cold", "warm"):
        result = pytester.runpytest_subprocess(*args, "--aigve-report-dir", name)
        assert result.ret == 0, result.stdout.str()[-3000:]
        reports.append(read_json(pytester.path / name / "aigve-results.json"))
    return reports[0], reports[1]


def assert_warm_computes_nothing(cold: dict[str, Any], warm: dict[str, Any]) -> None:
    cold_records, warm_records = records_by_check(cold), records_by_check(warm)
    assert cold_records.keys() == warm_records.keys()
    for check, record in warm_records.items():
        assert record["details"]["videos_decoded"] == 0, check
        assert record["backbone"]["features_computed"] == 0, check
        assert record["details"].get("text_features_computed", 0) == 0, check
        assert record["value"] == pytest.approx(cold_records[check]["value"], rel=1e-12), check
        assert record["per_video"] == pytest.approx(cold_records[check]["per_video"], rel=1e-12), check


@pytest.mark.shared_data
def test_text_video_suite_on_the_lavie_prompts(pytester: pytest.Pytester, shared_data: Path, tmp_path: Path) -> None:
    weights = tmp_path / "weights"
    assert main(["weights", "random", "--dir", str(weights), "clip_sim", "pickscore", "blip_sim",
                 "background_consistency"]) == 0
    cold, warm = run_twice(pytester, EXAMPLES / "text_video.yaml", weights)
    records = records_by_check(cold)
    assert set(records) == {"clip_sim[lavie]", "clip_sim[clipscore]", "clip_temp[lavie]", "pickscore[lavie]",
                            "blip_sim[lavie]", "background_consistency[lavie]"}
    for check, record in records.items():
        assert len(record["per_video"]) == 11, check  # every LaVie clip, each with its annotation prompt
        assert record["backbone"]["weights_check"].startswith("UNVERIFIED: RANDOM TEST WEIGHTS"), check
        assert record["backbone"]["licence"], check
        if check != "clip_temp[lavie]" and check != "background_consistency[lavie]":
            assert set(record["prompts"]) == set(record["per_video"]), check
    # clip_sim and clip_temp read the same cached frame embeddings: one image pass for the set
    assert records["clip_sim[lavie]"]["backbone"]["features_computed"] == 11
    assert records["clip_temp[lavie]"]["backbone"]["features_computed"] == 0
    assert records["clip_sim[lavie]"]["details"]["text_features_computed"] == 11  # 11 distinct prompts
    assert records["clip_sim[clipscore]"]["details"]["text_features_computed"] == 0
    assert_warm_computes_nothing(cold, warm)
    html = read_html(pytester.path / "cold" / "aigve-report.html")
    assert "waves lapping on sand, Van Gogh style" in "".join(html.text)  # the prompts, in the per-video rows


def trimmed_quality_suite(folder: Path, videos: list[Path]) -> Path:
    """example_suites/vbench_quality.yaml over the given videos (in `folder`), its protocol and checks unchanged
    but for DOVER's technical clips (1 of 3: the CPU cost of this test)."""
    suite = yaml.safe_load((EXAMPLES / "vbench_quality.yaml").read_text(encoding="utf-8"))
    suite["video_sets"] = {"clips": {"files": [path.name for path in videos]}}
    for check in suite["checks"]:
        check["set"] = "clips"
        if check["metric"] == "dover":
            check["params"] = {"clips": 1}
    path = folder / "vbench_quality.yaml"
    path.write_text(yaml.safe_dump(suite), encoding="utf-8")
    return path


@pytest.mark.shared_data
def test_quality_suite_on_a_cogvideox_cut_and_a_synthetic_clip(pytester: pytest.Pytester, shared_data: Path,
                                                                tmp_path: Path) -> None:
    """The VBench-faithful quality suite (every native frame, native size) with full-size random MUSIQ, DOVER and
    FasterVQA, on a real 1360x768 CogVideoX cut (3 frames) and the quickstart's synthetic clip (96², 24 frames):
    short clips, so that the CPU run stays small."""
    weights = tmp_path / "weights"
    assert main(["weights", "random", "--dir", str(weights), "imaging_quality", "aesthetic_quality", "dover",
                 "fastvqa"]) == 0
    real = sorted((shared_data / "aigve_bench_toy" / "videos_3frame").glob("*.mp4"))[0]
    synthetic = EXAMPLES / "videos" / "generated" / "clip_0.mp4"
    videos = [pytester.path / "cogvideox.mp4", pytester.path / "synthetic.mp4"]
    shutil.copy(real, videos[0])
    shutil.copy(synthetic, videos[1])
    suite = trimmed_quality_suite(pytester.path, videos)
    cold, warm = run_twice(pytester, suite, weights)
    records = records_by_check(cold)
    assert set(records) == {"imaging_quality[clips]", "aesthetic_quality[clips]", "dover[clips]", "fastvqa[clips]"}
    for check, record in records.items():
        assert set(record["per_video"]) == {"cogvideox.mp4", "synthetic.mp4"}, check
        assert len(set(record["per_video"].values())) == 2, check  # the networks tell the two videos apart
        assert "not_reference_protocol" not in record["details"], check
        assert record["protocol"]["frames"] is None and record["protocol"]["resize"] is None
        assert record["backbone"]["licence"], check
    assert "CC-BY-NC-SA" in records["imaging_quality[clips]"]["backbone"]["licence"]
    assert "non-commercial" in records["dover[clips]"]["backbone"]["licence"]
    assert 0.0 <= records["dover[clips]"]["value"] <= 1.0 and 0.0 <= records["fastvqa[clips]"]["value"] <= 1.0
    assert_warm_computes_nothing(cold, warm)


@pytest.mark.parametrize("suite", sorted(path.name for path in EXAMPLES.glob("*.yaml")))
def test_every_example_suite_loads(suite: str) -> None:
    """Every example suite parses, its metrics exist, their parameters and protocols are valid (a CPU run)."""
    from pytest_aigve.metrics.registry import MetricRegistry
    from pytest_aigve.suite import load_suite

    text = (EXAMPLES / suite).read_text(encoding="utf-8")
    if "shared/data" in text and not (EXAMPLES.parents[1] / "shared" / "data").is_dir():
        pytest.skip("the suite reads ../shared/data, absent here")
    loaded = load_suite(EXAMPLES / suite, MetricRegistry(), device_type="cpu")
    assert loaded.checks
