"""Paired, per-video gates (issue 8): one collapsed video in a 6-clip smoke set fails the check and is named;
a run that changed nothing but noise passes; regressions and improvements are judged by the same rule."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from pytest_aigve.examples import degrade, moving_scene, write_video
from pytest_aigve.gate import (
    BaselineScore,
    BootstrapSpec,
    GatePolicy,
    PerVideoBounds,
    Threshold,
    Tolerance,
    evaluate_gate,
    paired_delta,
    per_video_failures,
)

from .helpers import read_html

# --- pure functions ------------------------------------------------------------------------------------------


def test_paired_delta_resamples_keys_jointly_and_needs_shared_videos() -> None:
    before = {"a": 0.80, "b": 0.60, "c": 0.90, "d": 0.70}
    after = {key: value - 0.01 for key, value in before.items()}  # every video 0.01 worse
    paired = paired_delta(after, before, BootstrapSpec(seed=3), 500)
    assert paired is not None and paired.shared == 4
    # video-to-video spread cancels: the interval of the mean change is the change itself
    assert paired.mean == pytest.approx(-0.01) and paired.low == pytest.approx(-0.01)
    assert paired.high == pytest.approx(-0.01)
    assert paired_delta({"a": 1.0, "x": 2.0}, before, BootstrapSpec(), 100) is None  # one shared video
    again = paired_delta({**after, "a": 0.5}, before, BootstrapSpec(seed=3), 500)
    assert again == paired_delta({**after, "a": 0.5}, before, BootstrapSpec(seed=3), 500)  # seeded


def test_per_video_failures_name_the_videos_worst_first() -> None:
    before = {"a.mp4": 0.8, "b.mp4": 0.8, "c.mp4": 0.8}
    after = {"a.mp4": 0.79, "b.mp4": 0.14, "c.mp4": 0.55}
    failures = per_video_failures(after, before, True, PerVideoBounds(), Tolerance(abs=0.1))
    assert [f.video for f in failures] == ["b.mp4", "c.mp4"]
    assert failures[0].reason == "dropped 0.66 from 0.8 (max_drop 0.1)"
    below = per_video_failures(after, {}, True, PerVideoBounds(min=0.5), None)
    assert [f.video for f in below] == ["b.mp4"] and below[0].reason == "below the per-video min 0.5"
    # lower is better (a distance): a rise is the drop
    assert [f.video for f in per_video_failures({"a": 30.0}, {"a": 10.0}, False, PerVideoBounds(),
                                                 Tolerance(pct=50))] == ["a"]


def test_improvements_and_regressions_are_judged_by_the_same_rule() -> None:
    policy = GatePolicy(tolerance=Tolerance(), mode="interval")
    # FVD -75% on a 6-video set whose interval still reaches above the baseline: not an improvement
    wide = evaluate_gate("fvd", 25.0, (0.0, 150.0), False, Threshold(), policy, BaselineScore("main", 100.0), 6)
    assert wide.status == "within tolerance" and wide.verdict == "pass"
    narrow = evaluate_gate("fvd", 25.0, (10.0, 40.0), False, Threshold(), policy, BaselineScore("main", 100.0), 6)
    assert narrow.status == "improved" and "--aigve-update-baseline" in narrow.advice
    worse = evaluate_gate("fvd", 180.0, (160.0, 200.0), False, Threshold(), policy, BaselineScore("main", 100.0), 6)
    assert worse.status == "regressed" and "--aigve-baseline main --aigve-update-baseline" in worse.advice


def test_tolerance_wording_gives_the_effective_bound() -> None:
    assert Tolerance(abs=0.5, pct=2).describe_for(30.0) == "stricter of 0.5 and 2% = 0.5"
    assert Tolerance(abs=0.5, pct=2).describe_for(10.0) == "stricter of 0.5 and 2% = 0.2"
    assert Tolerance(pct=2).describe_for(10.0) == "2% = 0.2" and Tolerance(abs=0.5).describe_for(10.0) == "0.5"


# --- through pytest: the 6-clip smoke set --------------------------------------------------------------------

SUITE = """\
suite: smoke
protocol: {frames: 8}
video_sets:
  ref: {folder: ref}
  gen: {folder: gen}
checks:
  - metric: ssim
    reference: ref
    candidate: gen
"""


def write_candidates(root: Path, seed: int, collapsed: int | None = None) -> None:
    """The same 6 scenes, re-rendered with fresh noise (seeded); `collapsed` gets a broken render."""
    shutil.rmtree(root / "gen", ignore_errors=True)
    for index in range(6):
        clip = moving_scene(index, frames=10, size=(64, 64))
        write_video(root / "ref" / f"clip_{index}.mp4", clip)
        noise = 70.0 if index == collapsed else 4.0
        write_video(root / "gen" / f"clip_{index}.mp4", degrade(clip, seed=100 * seed + index, noise=noise))


def run(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, dict[str, Any]]:
    result = pytester.runpytest("--aigve-report-dir", "out", *args)
    results = json.loads((pytester.path / "out" / "aigve-results.json").read_text())
    return result, results["records"][0]


def test_one_collapsed_video_fails_by_default_and_is_named(pytester: pytest.Pytester) -> None:
    write_candidates(pytester.path, seed=0)
    pytester.makefile(".yaml", aigve_smoke=SUITE)
    run(pytester, "--aigve-save-baseline", "main")[0].assert_outcomes(passed=1)

    write_candidates(pytester.path, seed=1)  # nothing changed but the noise
    result, record = run(pytester, "--aigve-baseline", "main")
    result.assert_outcomes(passed=1)
    assert record["gate"]["mode"] == "paired" and record["gate"]["paired"]["shared"] == 6
    assert record["gate"]["videos_failed"] == []

    write_candidates(pytester.path, seed=1, collapsed=3)
    result, record = run(pytester, "--aigve-baseline", "main")
    result.assert_outcomes(failed=1)
    failed = record["gate"]["videos_failed"]
    assert [f["video"] for f in failed] == ["clip_3.mp4"]
    assert failed[0]["baseline"] > 0.5 > failed[0]["value"]
    assert "1 video(s) failed the per-video gate: clip_3.mp4 = " in result.stdout.str()
    assert record["per_video_baseline"].keys() == record["per_video"].keys()
    quiet = pytester.runpytest("-q", "--aigve-baseline", "main", "--aigve-report-dir", "out")
    assert any(line.startswith("FAILED aigve_smoke.yaml::ssim[ref-vs-gen]: ssim = ")
               for line in quiet.stdout.lines)


def test_per_video_bounds_and_per_metric_defaults(pytester: pytest.Pytester) -> None:
    write_candidates(pytester.path, seed=0, collapsed=2)
    pytester.makefile(".yaml", aigve_smoke=SUITE.replace("suite: smoke\n", "suite: smoke\ndefaults:\n  metrics:\n"
                                                          "    ssim: {per_video: {min: 0.5}}\n"))
    result, record = run(pytester)
    result.assert_outcomes(failed=1)
    assert [f["video"] for f in record["gate"]["videos_failed"]] == ["clip_2.mp4"]
    assert "below the per-video min 0.5" in record["message"]


def test_reports_show_the_worst_videos_first(pytester: pytest.Pytester) -> None:
    write_candidates(pytester.path, seed=0)
    suite = SUITE.replace("  ref: {folder: ref}\n", "  ref: {folder: ref}\n  prompts_gen:\n    files:\n"
                          + "".join(f"      - {{path: gen/clip_{i}.mp4, prompt: 'scene {i} <b>'}}\n" for i in range(6)))
    suite = suite.replace("    candidate: gen\n", "    candidate: prompts_gen\n")
    pytester.makefile(".yaml", aigve_smoke=suite)
    run(pytester, "--aigve-save-baseline", "main")
    write_candidates(pytester.path, seed=1, collapsed=4)
    result, record = run(pytester, "--aigve-baseline", "main", "--aigve-report-url", "https://ci.example/run/7")
    result.assert_outcomes(failed=1)
    assert "what now: smoke::ssim[ref-vs-prompts_gen]: look at these videos in the HTML report; if the change is " \
        "intended, accept it: --aigve-baseline main --aigve-update-baseline" in result.stdout.str()
    html_text = (pytester.path / "out" / "aigve-report.html").read_text()
    html = read_html(pytester.path / "out" / "aigve-report.html")
    header = ["Video", "Score", "Baseline", "Δ", "Gate", "Prompt", "Notes"]
    rows = html.rows[html.rows.index(header) + 1:][:6]
    assert rows[0][0] == "gen/clip_4.mp4" and rows[0][4].startswith("dropped") and rows[0][5] == "scene 4 <b>"
    assert [row[4] for row in rows[1:]] == ["ok"] * 5  # the other five videos
    assert '<tr class="bad"><td>gen/clip_4.mp4</td>' in html_text and "scene 4 &lt;b&gt;" in html_text
    worst = html_text[html_text.index('class="pairs worst"'):]
    assert worst.index("reference · clip_4.mp4") < worst.index("candidate · gen/clip_4.mp4")
    assert record["worst_videos"][0] == {"video": "gen/clip_4.mp4", "reference_label": "clip_4.mp4",
                                         "candidate_label": "gen/clip_4.mp4"}  # JSON: names, no images
    markdown = (pytester.path / "out" / "aigve-summary.md").read_text()
    assert markdown.startswith("## ❌ AIGVE evaluation: 0 passed, 0 warned, 1 failed")
    assert "[HTML report](https://ci.example/run/7)" in markdown
    failures = markdown[markdown.index("### Failures"):]
    assert "  - gen/clip\\_4.mp4 = " in failures and failures.index("### Failures") < markdown.index("| |")


SET_SUITE = """\
suite: dist
protocol: {frames: 8}
video_sets:
  ref: {folder: ref}
  gen: {folder: gen}
checks:
  - metric: fvd_r3d18
    reference: ref
    candidate: gen
"""


def test_set_level_scores_compare_paired_through_the_feature_cache(
        pytester: pytest.Pytester, random_weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """FVD has no per-video score, but the same videos before and after still pair: the baseline keeps their
    content hashes, the feature cache their features, and the paired bootstrap draws the same videos."""
    monkeypatch.setenv("AIGVE_WEIGHTS_DIR", str(random_weights))
    monkeypatch.setenv("AIGVE_ALLOW_UNVERIFIED_WEIGHTS", "1")
    write_candidates(pytester.path, seed=0)
    pytester.makefile(".yaml", aigve_dist=SET_SUITE)

    def set_run(*args: str) -> tuple[pytest.RunResult, dict[str, Any]]:
        result = pytester.runpytest("--aigve-report-dir", "out", "--aigve-cache-dir", "cache", *args)
        return result, json.loads((pytester.path / "out" / "aigve-results.json").read_text())["records"][0]

    saved = set_run("--aigve-save-baseline", "main")[1]
    assert len(saved["video_hashes"]) == 6
    same, record = set_run("--aigve-baseline", "main")
    same.assert_outcomes(passed=1)
    assert record["gate"]["mode"] == "paired" and record["gate"]["paired"]["mean"] == 0.0

    for index in range(6):  # every candidate video worse
        clip = moving_scene(index, frames=10, size=(64, 64))
        write_video(pytester.path / "gen" / f"clip_{index}.mp4", degrade(clip, seed=7 + index, noise=45.0))
    worse, record = set_run("--aigve-baseline", "main")
    worse.assert_outcomes(failed=1)
    paired = record["gate"]["paired"]
    assert record["gate"]["mode"] == "paired" and record["gate"]["status"] == "regressed"
    assert paired["shared"] == 6 and 0 < paired["low"] <= paired["mean"] <= paired["high"]
    # every video is shared: the paired point change is the change of the set value
    assert paired["mean"] == pytest.approx(record["gate"]["delta"], rel=1e-9)

    # the baseline's features are gone (another machine): said so, and the unpaired interval is used
    shutil.rmtree(pytester.path / "cache")
    _, record = set_run("--aigve-baseline", "main")
    assert record["gate"]["mode"] == "interval"
    assert any("not compared paired with the baseline" in w for w in record["warnings"])
