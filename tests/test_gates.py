"""Regression gates: baselines, tolerances, bootstrap intervals, warn, and what the reviewer sees."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_aigve.examples import degrade, moving_scene, write_video
from pytest_aigve.gate import BaselineScore, GatePolicy, Threshold, Tolerance, evaluate_gate
from pytest_aigve.stats import bootstrap_interval, frechet_distance_from_features, resample_blocks

from .helpers import HTMLDigest

# --- the gate as a pure function ---------------------------------------------------------------------


ONE, NO_BOUNDS = Tolerance(abs=1.0), Threshold()


def gate(value: float, baseline: float | None, *, higher: bool = True, interval: tuple[float, float] | None = None,
         mode: str = "point", tolerance: Tolerance = ONE, warn: bool = False,
         threshold: Threshold = NO_BOUNDS):
    policy = GatePolicy(tolerance=tolerance, mode=mode, warn=warn)
    reference = None if baseline is None else BaselineScore("main", baseline)
    return evaluate_gate("psnr", value, interval, higher, threshold, policy, reference, set_size=5)


def test_regression_is_one_sided_in_the_worse_direction() -> None:
    assert gate(30.0, 30.5).status == "within tolerance" and gate(30.0, 30.5).verdict == "pass"
    worse = gate(28.0, 30.0)
    assert worse.verdict == "fail" and worse.status == "regressed"
    assert worse.message == ("psnr = 28, regressed from baseline main: 30 (-2, -6.7%; allowed 1) "
                             "(higher is better, point gate)")
    better = gate(35.0, 30.0)
    assert better.verdict == "pass" and better.status == "improved" and better.delta == pytest.approx(5.0)
    # lower is better (FID): a higher value is the regression
    assert gate(42.0, 40.0, higher=False).verdict == "fail"
    assert gate(38.0, 40.0, higher=False).status == "improved"


def test_absolute_and_percentage_tolerances_both_hold() -> None:
    both = Tolerance(abs=5.0, pct=2.0)
    assert both.allowed(100.0) == pytest.approx(2.0) and both.describe() == "5 and 2%"
    assert gate(97.0, 100.0, tolerance=both).verdict == "fail"  # within 5, beyond 2%
    assert gate(98.5, 100.0, tolerance=both).verdict == "pass"
    assert gate(99.9, 100.0, tolerance=Tolerance()).verdict == "fail"  # no tolerance: any regression fails
    assert gate(100.0, 100.0, tolerance=Tolerance()).status == "within tolerance"


def test_interval_mode_fails_only_when_the_whole_interval_is_worse() -> None:
    assert gate(28.0, 30.0, interval=(26.0, 29.5), mode="interval").verdict == "pass"
    assert gate(28.0, 30.0, interval=(26.0, 28.5), mode="interval").verdict == "fail"
    assert gate(28.0, 30.0, interval=(26.0, 29.5), mode="point").verdict == "fail"
    # auto: interval for small sets (5 < 50 videos), point when there is no interval
    assert gate(28.0, 30.0, interval=(26.0, 29.5), mode="auto").mode == "interval"
    assert gate(28.0, 30.0, interval=None, mode="auto").mode == "point"
    # absolute bounds follow the same rule
    assert gate(19.0, None, interval=(17.0, 21.0), mode="interval", threshold=Threshold(min=20)).verdict == "pass"
    assert gate(19.0, None, interval=(17.0, 19.5), mode="interval", threshold=Threshold(min=20)).verdict == "fail"


def test_warn_instead_of_fail() -> None:
    result = gate(20.0, 30.0, warn=True)
    assert result.verdict == "warn" and result.status == "regressed"


# --- bootstrap -------------------------------------------------------------------------------------------


def test_bootstrap_is_seeded_and_covers_the_full_set_value() -> None:
    values = np.random.default_rng(0).normal(30, 4, size=8)

    def resample(rng: np.random.Generator) -> float:
        return float(values[rng.integers(0, values.size, values.size)].mean())

    first = bootstrap_interval(values.mean(), resample, 500, 0.9, seed=7)
    again = bootstrap_interval(values.mean(), resample, 500, 0.9, seed=7)
    other = bootstrap_interval(values.mean(), resample, 500, 0.9, seed=8)
    assert (first.low, first.high) == (again.low, again.high) != (other.low, other.high)
    assert first.low < values.mean() < first.high and first.high - first.low > 1.0


def test_frechet_bootstrap_is_recentred_on_the_full_set_value() -> None:
    """Resampling with replacement biases Fréchet distances upwards; the interval still covers the value."""
    rng = np.random.default_rng(1)
    ref = [rng.normal(size=(4, 16)) for _ in range(10)]
    cand = [rng.normal(0.3, 1.0, size=(4, 16)) for _ in range(10)]
    value = frechet_distance_from_features(np.concatenate(ref), np.concatenate(cand), 1).value

    def resample(generator: np.random.Generator) -> float:
        return frechet_distance_from_features(resample_blocks(ref, generator), resample_blocks(cand, generator),
                                              1).value

    draws = [resample(np.random.default_rng(s)) for s in range(200)]
    assert np.mean(draws) > value  # the resampling bias the re-centring removes
    interval = bootstrap_interval(value, resample, 200, 0.95, seed=0)
    assert interval.low <= value <= interval.high


# --- through pytest, as users run it ----------------------------------------------------------------------

SUITE = """\
suite: gates
protocol: {frames: 8}
defaults:
  tolerance: {abs: 0.3}
  gate: point
  bootstrap: {resamples: 300, seed: 1}
video_sets:
  ref: {folder: ref}
  gen: {folder: gen}
checks:
  - metric: psnr
    reference: ref
    candidate: gen
"""


def write_sets(root: Path, noise: float, folder: str = "gen", count: int = 4) -> None:
    target = root / folder
    if target.exists():
        shutil.rmtree(target)
    for index in range(count):
        clip = moving_scene(index, frames=12, size=(64, 64))
        write_video(root / "ref" / f"clip_{index}.mp4", clip)
        write_video(target / f"clip_{index}.mp4", degrade(clip, seed=10 + index, noise=noise * (1 + index)))


def run(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, dict[str, Any]]:
    result = pytester.runpytest("--aigve-report-dir", "out", "--junitxml", "out/junit.xml", *args)
    results = json.loads((pytester.path / "out" / "aigve-results.json").read_text())
    return result, {r["check"]: r for r in results["records"]}


def test_save_and_compare_round_trip(pytester: pytest.Pytester) -> None:
    write_sets(pytester.path, noise=3.0)
    pytester.makefile(".yaml", aigve_gates=SUITE)
    result, saved = run(pytester, "--aigve-save-baseline", "main")
    result.assert_outcomes(passed=1)
    baseline_file = pytester.path / ".aigve" / "baselines" / "main.json"
    baseline = json.loads(baseline_file.read_text())
    entry = baseline["scores"]["gates::psnr[ref-vs-gen]"]
    assert entry["value"] == saved["psnr[ref-vs-gen]"]["value"] and entry["set_sizes"] == {"ref": 4, "gen": 4}
    assert entry["interval"]["low"] < entry["value"] < entry["interval"]["high"]
    assert entry["fingerprint"]["protocol"]["frames"] == 8 and entry["fingerprint"]["metric"] == "psnr"
    assert "git_commit" in baseline["environment"] and baseline["environment"]["packages"]["torch"]
    assert "aigve baseline saved:" in result.stdout.str()

    # unchanged: passes, delta 0
    result, same = run(pytester, "--aigve-baseline", "main")
    result.assert_outcomes(passed=1)
    assert same["psnr[ref-vs-gen]"]["gate"]["delta"] == 0 and same["psnr[ref-vs-gen]"]["gate"]["status"] == \
        "within tolerance"

    # degraded (noisier copies): fails, and the message carries the delta
    write_sets(pytester.path, noise=6.0)
    result, worse = run(pytester, "--aigve-baseline", "main")
    result.assert_outcomes(failed=1)
    record = worse["psnr[ref-vs-gen]"]
    assert record["gate"]["status"] == "regressed" and record["gate"]["delta"] < -0.3
    assert f"regressed from baseline main: {entry['value']:.6g} ({record['gate']['delta']:+.4g}" in result.stdout.str()
    props = {p.get("name"): p.get("value") for p in ET.parse(pytester.path / "out" / "junit.xml").iter("property")}
    assert props["aigve.baseline"] == "main" and float(props["aigve.delta"]) == record["gate"]["delta"]
    assert props["aigve.verdict"] == "fail" and props["aigve.interval"].startswith("[")

    # improved (cleaner copies): passes, reported as improved
    write_sets(pytester.path, noise=1.0)
    result, better = run(pytester, "--aigve-baseline", "main")
    result.assert_outcomes(passed=1)
    assert better["psnr[ref-vs-gen]"]["gate"]["status"] == "improved"
    assert "pass (improved)" in result.stdout.str()

    # a changed protocol is not compared: an error naming the differing fields
    (pytester.path / "aigve_gates.yaml").write_text(SUITE.replace("frames: 8", "frames: 6"))
    result, changed = run(pytester, "--aigve-baseline", "main")
    result.assert_outcomes(errors=1)
    assert "protocol differs (protocol.frames: 8 -> 6)" in result.stdout.str()
    assert changed["psnr[ref-vs-gen]"]["outcome"] == "error"
    # ... unless asked, and then marked in every report
    result, forced = run(pytester, "--aigve-baseline", "main", "--aigve-allow-protocol-mismatch")
    assert forced["psnr[ref-vs-gen]"]["fingerprint_diff"] == ["protocol.frames: 8 -> 6"]
    assert any("despite protocol differences" in w for w in forced["psnr[ref-vs-gen]"]["warnings"])
    markdown = (pytester.path / "out" / "aigve-summary.md").read_text()
    assert "### Protocol differences from the baseline" in markdown and "protocol.frames: 8 -> 6" in markdown

    # accepting the new protocol rewrites the baseline
    result, _ = run(pytester, "--aigve-baseline", "main", "--aigve-update-baseline")
    result.assert_outcomes(passed=1)
    updated = json.loads(baseline_file.read_text())["scores"]["gates::psnr[ref-vs-gen]"]
    assert updated["fingerprint"]["protocol"]["frames"] == 6
    run(pytester, "--aigve-baseline", "main")[0].assert_outcomes(passed=1)


NOISY_SUITE = """\
suite: noise
protocol: {frames: 6}
defaults:
  tolerance: {abs: 0.1}
  bootstrap: {resamples: 500, seed: 3}
video_sets:
  ref: {folder: ref}
  gen: {folder: gen}
checks:
  - {name: psnr-point, metric: psnr, reference: ref, candidate: gen, gate: point}
  - {name: psnr-interval, metric: psnr, reference: ref, candidate: gen, gate: interval}
"""


def test_interval_mode_passes_where_point_mode_fails_on_noise(pytester: pytest.Pytester) -> None:
    """Five videos whose PSNRs spread over several dB; 6% more noise moves the mean past a 0.1 dB tolerance."""
    levels = [1.0, 3.0, 6.0, 12.0, 24.0]

    def videos(scale: float) -> None:
        for index, level in enumerate(levels):
            clip = moving_scene(index, frames=8, size=(64, 64))
            write_video(pytester.path / "ref" / f"v{index}.mp4", clip, options={"crf": "0"})
            noisy = degrade(clip, seed=index, noise=level * scale)
            write_video(pytester.path / "gen" / f"v{index}.mp4", noisy, options={"crf": "0"})

    videos(1.0)
    pytester.makefile(".yaml", aigve_noise=NOISY_SUITE)
    run(pytester, "--aigve-save-baseline", "before")[0].assert_outcomes(passed=2)
    videos(1.06)
    result, found = run(pytester, "--aigve-baseline", "before")
    point, interval = found["psnr-point"], found["psnr-interval"]
    assert -1.0 < point["gate"]["delta"] < -0.1  # a small shift past the tolerance ...
    width = point["interval"]["high"] - point["interval"]["low"]
    assert width > 5 * abs(point["gate"]["delta"])  # ... well inside the noise between videos
    assert point["outcome"] == "failed" and interval["outcome"] == "passed"
    assert interval["gate"]["status"] == "within noise" and point["gate"]["status"] == "regressed"
    assert interval["gate"]["mode"] == "interval" and point["gate"]["mode"] == "point"
    result.assert_outcomes(passed=1, failed=1)


def test_warn_checks_pass_with_a_warning_in_every_report(pytester: pytest.Pytester) -> None:
    write_sets(pytester.path, noise=3.0)
    pytester.makefile(".yaml", aigve_gates=SUITE.replace("    candidate: gen\n",
                                                         "    candidate: gen\n    min: 90\n    warn: true\n"))
    result, found = run(pytester)
    assert result.ret == 0
    outcomes = result.parseoutcomes()  # warnings: ours, and in-process pytester may add a rewrite warning
    assert outcomes["passed"] == 1 and outcomes["warnings"] >= 1 and "failed" not in outcomes
    record = found["psnr[ref-vs-gen]"]
    assert record["outcome"] == "warned" and record["gate"]["verdict"] == "warn"
    assert "WARN aigve_gates.yaml::psnr[ref-vs-gen]: psnr = " in result.stdout.str()
    assert "AigveGateWarning" in result.stdout.str()  # pytest's warnings summary
    markdown = (pytester.path / "out" / "aigve-summary.md").read_text()
    assert markdown.startswith("## ✅ AIGVE evaluation: 0 passed, 1 warned, 0 failed, 0 errors")
    assert "| ⚠️ | gates::psnr\\[ref-vs-gen\\] |" in markdown and "| warn |" in markdown  # brackets escaped: no links
    html = (pytester.path / "out" / "aigve-report.html").read_text()
    assert "1 warned" in html and 'class="verdict warned">warned' in html


def test_summary_tables_in_terminal_markdown_and_html(pytester: pytest.Pytester) -> None:
    write_sets(pytester.path, noise=3.0)
    pytester.makefile(".yaml", aigve_gates=SUITE)
    run(pytester, "--aigve-save-baseline", "main")
    write_sets(pytester.path, noise=6.0)
    result, found = run(pytester, "--aigve-baseline", "main")
    record = found["psnr[ref-vs-gen]"]
    terminal = result.stdout.str()
    assert "aigve scores" in terminal
    header = next(line for line in terminal.splitlines() if line.startswith("Check"))
    assert header.split() == ["Check", "Value", "Interval", "Baseline", "Δ", "Δ%", "Tolerance", "Verdict"]
    lines = (pytester.path / "out" / "aigve-summary.md").read_text().splitlines()
    table = [line for line in lines if line.startswith("|")]
    assert table[0] == "| | Check | Value | Interval | Baseline | Δ | Δ% | Tolerance | Verdict |"
    cells = [c.strip() for c in table[2].strip("|").split("|")][1:]  # after the status icon
    assert cells[0] == "gates::psnr\\[ref-vs-gen\\]" and float(cells[1]) == pytest.approx(record["value"], rel=1e-4)
    assert cells[3].endswith("(main)") and float(cells[4]) == pytest.approx(record["gate"]["delta"], rel=1e-3)
    assert cells[5] == f"{record['gate']['delta_pct']:+.2f}%" and cells[6] == "0.3" and cells[7] == "FAIL (regressed)"
    html = (pytester.path / "out" / "aigve-report.html").read_text()
    assert "Compared with baseline <strong>main</strong>" in html and html.count("<svg") == 1
    digest = HTMLDigest()
    digest.feed(html)
    header = ["Check", "Metric", "Value", "Interval", "Threshold", "Baseline", "Δ", "Δ%", "Tolerance", "Chart",
              "Videos", "Verdict"]
    cells = dict(zip(header, digest.rows[digest.rows.index(header) + 1], strict=True))
    assert cells["Baseline"].endswith("(main)") and cells["Δ%"] == f"{record['gate']['delta_pct']:+.2f}%"
    assert cells["Tolerance"] == "0.3" and cells["Verdict"] == "failed · regressed"
    assert float(cells["Δ"]) == pytest.approx(record["gate"]["delta"], rel=1e-3)


@pytest.mark.parametrize(("args", "message"), [
    (["--aigve-update-baseline"], "--aigve-update-baseline rewrites the baseline named by --aigve-baseline"),
    (["--aigve-baseline", "nope"], "baseline not found"),
    (["--aigve-save-baseline", "a/b"], "--aigve-save-baseline 'a/b': give a name"),
])
def test_baseline_usage_errors(pytester: pytest.Pytester, args: list[str], message: str) -> None:
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()


def test_bad_gate_settings_are_suite_errors(pytester: pytest.Pytester) -> None:
    write_sets(pytester.path, noise=3.0)
    pytester.makefile(".yaml", aigve_gates=SUITE.replace("gate: point", "gate: strict"))
    result = pytester.runpytest()
    assert "aigve_gates.yaml:5: defaults: 'gate' must be one of auto, point, interval, paired, got 'strict'" in \
        result.stdout.str()
    pytester.makefile(".yaml", aigve_gates=SUITE.replace("{abs: 0.3}", "{ab: 0.3}"))
    assert "did you mean 'abs'" in pytester.runpytest().stdout.str()
