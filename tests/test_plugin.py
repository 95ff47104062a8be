"""The plugin as users run it: pytester runs, with the JUnit, JSON and HTML they write parsed back."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pytest_aigve.examples import moving_scene, write_video
from pytest_aigve.metrics.registry import MetricRegistry
from pytest_aigve.options import options_from_config

from .helpers import CRASHING_CONFTEST, SUITE, make_videos, read_html, read_json, records_by_check


def assert_in_order(output: str, *fragments: str) -> None:
    """Each fragment appears in the output, after the previous one (plain substrings, no wildcards)."""
    position = 0
    for fragment in fragments:
        found = output.find(fragment, position)
        assert found >= 0, f"not found after position {position}: {fragment!r}\n--- output ---\n{output}"
        position = found + len(fragment)


def test_help_lists_the_options(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    for option in ("--aigve-suite=PATH", "--aigve-report-dir=DIR", "--aigve-json=PATH", "--aigve-html=PATH",
                   "--aigve-device=DEVICE", "--aigve-clip-cache-mb=MB", "--aigve-decode-workers=N",
                   "aigve_suite_patterns"):
        result.stdout.fnmatch_lines([f"*{option}*"])


def test_collects_readable_item_names_and_k_selects(project: Path, pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--collect-only", "-q")
    result.stdout.fnmatch_lines(["aigve_demo.yaml::flicker[gen]", "aigve_demo.yaml::psnr[ref-vs-gen]",
                                 "aigve_demo.yaml::ssim[ref-vs-gen]"])
    result = pytester.runpytest("-k", "psnr", "--aigve-report-dir", "out")
    result.assert_outcomes(passed=1, deselected=2)
    assert list(records_by_check(read_json(project / "out" / "aigve-results.json"))) == ["psnr[ref-vs-gen]"]


def test_discovery_patterns_and_the_suite_flag(pytester: pytest.Pytester) -> None:
    make_videos(pytester.path)
    one_check = SUITE.split("  - metric: psnr")[0]
    (pytester.path / "suites").mkdir()
    (pytester.path / "suites" / "aigve_a.yaml").write_text(one_check)
    (pytester.path / "suites" / "b.aigve.yml").write_text(one_check)
    (pytester.path / "suites" / "config.yaml").write_text("not: a suite\n")  # not matched: left alone
    (pytester.path / "plain.yaml").write_text(one_check)
    pytester.makepyfile(test_unit="def test_unit():\n    pass\n")
    for suite in ("suites/aigve_a.yaml", "suites/b.aigve.yml"):
        text = (pytester.path / suite).read_text().replace("videos/", "../videos/")
        (pytester.path / suite).write_text(text)
    result = pytester.runpytest("suites", "-v")
    result.assert_outcomes(passed=2)
    assert_in_order(result.stdout.str(), "suites/aigve_a.yaml::flicker[gen] PASSED",
                    "suites/b.aigve.yml::flicker[gen] PASSED")
    # --aigve-suite alone runs only the named suites (any file name), and may be repeated
    result = pytester.runpytest("--aigve-suite", "plain.yaml", "--aigve-suite", "suites/aigve_a.yaml", "-v")
    result.assert_outcomes(passed=2)
    assert "test_unit" not in result.stdout.str()
    # with test paths, the suites run as well
    result = pytester.runpytest("test_unit.py", "--aigve-suite", "plain.yaml")
    result.assert_outcomes(passed=2)


def test_failing_threshold_reads_well(project: Path, pytester: pytest.Pytester) -> None:
    (project / "aigve_demo.yaml").write_text(SUITE.replace("min: 20", "min: 99"))
    result = pytester.runpytest("--aigve-report-dir", "out")
    result.assert_outcomes(passed=2, failed=1)
    assert_in_order(result.stdout.str(), "aigve_demo.yaml:10: psnr = ",
                    ", expected >= 99 (higher is better, interval gate)",
                    "sets: 'ref' (2 videos), 'gen' (2 videos)", "protocol: 8 frames @ 6 fps")
    assert "Traceback" not in result.stdout.str() and "runtest" not in result.stdout.str()
    record = records_by_check(read_json(project / "out" / "aigve-results.json"))["psnr[ref-vs-gen]"]
    assert record["outcome"] == "failed" and "expected >= 99" in record["message"]
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_bad_suite_is_a_collection_error_with_file_and_line(project: Path, pytester: pytest.Pytester) -> None:
    (project / "aigve_demo.yaml").write_text(SUITE.replace("metric: ssim", "metric: ssmi"))
    result = pytester.runpytest("--aigve-report-dir", "out")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert_in_order(result.stdout.str(), "aigve_demo.yaml:14: unknown metric 'ssmi' (did you mean 'ssim'?); "
                                         f"known: {', '.join(MetricRegistry().names())}")
    assert "Traceback" not in result.stdout.str()
    results = read_json(project / "out" / "aigve-results.json")
    assert results["summary"]["collection_errors"] == 1
    assert "unknown metric 'ssmi'" in results["collection_errors"][0]["message"]
    assert "1 collection errors" in "".join(read_html(project / "out" / "aigve-report.html").text)


def test_bad_video_errors_its_item(project: Path, pytester: pytest.Pytester) -> None:
    (project / "videos" / "gen" / "clip_9.mp4").write_bytes(b"")
    (project / "aigve_demo.yaml").write_text(SUITE.split("  - metric: psnr")[0])
    result = pytester.runpytest("--aigve-report-dir", "out")
    result.assert_outcomes(errors=1)
    assert_in_order(result.stdout.str(), "flicker[gen]: cannot compute flicker: ",
                    "/videos/gen/clip_9.mp4: file is empty (0 bytes); re-export or re-download the video")
    assert "Traceback" not in result.stdout.str()
    record = records_by_check(read_json(project / "out" / "aigve-results.json"))["flicker[gen]"]
    assert record["outcome"] == "error" and "clip_9.mp4: file is empty" in record["message"]
    assert record["value"] is None


def test_bad_video_skipped_and_listed_when_the_suite_says_so(project: Path, pytester: pytest.Pytester) -> None:
    (project / "videos" / "gen" / "clip_9.mp4").write_bytes(b"not a video at all" * 10)
    (project / "aigve_demo.yaml").write_text("on_bad_video: skip\n" + SUITE.split("  - metric: psnr")[0])
    result = pytester.runpytest("--aigve-report-dir", "out")
    result.assert_outcomes(passed=1)
    record = read_json(project / "out" / "aigve-results.json")["records"][0]
    assert record["videos_used"] == {"gen": ["clip_0.mp4", "clip_1.mp4"]}
    assert record["videos_skipped"][0]["video"] == "clip_9.mp4"
    assert "not a readable video" in record["videos_skipped"][0]["reason"]
    html = read_html(project / "out" / "aigve-report.html")
    assert ["clip_9.mp4", record["videos_skipped"][0]["reason"]] in html.rows


def test_every_video_bad_is_an_error_even_when_skipping(project: Path, pytester: pytest.Pytester) -> None:
    for path in (project / "videos" / "gen").iterdir():
        path.write_bytes(b"")
    (project / "aigve_demo.yaml").write_text("on_bad_video: skip\n" + SUITE.split("  - metric: psnr")[0])
    result = pytester.runpytest("--aigve-report-dir", "out")
    result.assert_outcomes(errors=1)
    assert_in_order(result.stdout.str(), "every video was skipped as bad")


def test_short_video_message_names_the_file_and_the_fix(project: Path, pytester: pytest.Pytester) -> None:
    (project / "aigve_demo.yaml").write_text(SUITE.replace("frames: 8, fps: 6", "frames: 40, fps: 6"))
    result = pytester.runpytest("--aigve-report-dir", "out")
    result.assert_outcomes(errors=3)
    assert_in_order(result.stdout.str(), "clip_0.mp4: too short: 12 of 40 frames available at 6 fps",
                    "set 'short_video: loop' or 'pad' in the protocol")


def test_junit_properties_carry_score_threshold_protocol_and_size(project: Path, pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--junitxml=junit.xml", "--aigve-report-dir", "out")
    result.assert_outcomes(passed=3)
    root = ET.parse(project / "junit.xml").getroot()
    cases = {case.get("name"): case for case in root.iter("testcase")}
    assert set(cases) == {"flicker[gen]", "psnr[ref-vs-gen]", "ssim[ref-vs-gen]"}
    props = {p.get("name"): p.get("value") for p in cases["psnr[ref-vs-gen]"].iter("property")}
    record = records_by_check(read_json(project / "out" / "aigve-results.json"))["psnr[ref-vs-gen]"]
    assert float(props["aigve.value"]) == record["value"]
    assert props["aigve.threshold"] == ">= 20" and props["aigve.set_size"] == "2"
    assert json.loads(props["aigve.protocol"])["frames"] == 8 and props["aigve.verdict"] == "pass"
    assert props["aigve.higher_is_better"] == "true" and props["aigve.device"] == "cpu"


def test_json_record_carries_what_produced_the_score(project: Path, pytester: pytest.Pytester) -> None:
    pytester.runpytest("--aigve-report-dir", "out").assert_outcomes(passed=3)
    results = read_json(project / "out" / "aigve-results.json")
    assert results["schema"] == "pytest-aigve/results/1" and results["summary"]["passed"] == 3
    assert results["environment"]["packages"]["torch"] and results["environment"]["device"] == "cpu"
    record = records_by_check(results)["ssim[ref-vs-gen]"]
    assert record["suite"] == "demo" and record["metric"] == "ssim" and record["sets"] == ["ref", "gen"]
    assert record["protocol"] == {"frames": 8, "fps": 6.0, "start": 0.0, "stride": 1, "resize": None,
                                  "resize_mode": "stretch", "short_video": "error"}
    assert record["params"] == {"sigma": 1.5} and record["precision"] == "fp64" and record["resolution"] == ["64x64"]
    assert record["videos_used"] == {"ref": ["clip_0.mp4", "clip_1.mp4"], "gen": ["clip_0.mp4", "clip_1.mp4"]}
    assert set(record["per_video"]) == {"clip_0.mp4", "clip_1.mp4"} and 0 < record["value"] < 1
    assert record["timings"]["setup_s"] > 0 and record["threshold"] == {"min": 0.5, "max": None}
    assert 0 <= record["timings"]["decode_s"] <= record["timings"]["compute_s"]
    assert "thumbnails" not in record  # images live in the HTML only


def test_html_report_is_self_contained_and_escaped(pytester: pytest.Pytester) -> None:
    make_videos(pytester.path)
    hostile = "<img src=x onerror=alert(1)>"
    clip = moving_scene(7, frames=24, size=(64, 64))
    write_video(pytester.path / "videos" / "gen" / f"{hostile}.mp4", clip)
    suite = "on_bad_video: skip\nsuite: '<b>demo</b>'\n" + SUITE.replace("suite: demo\n", "")
    (pytester.path / "aigve_demo.yaml").write_text(suite.replace("min: 20", "min: 99"))
    result = pytester.runpytest("--aigve-report-dir", "out")
    result.assert_outcomes(passed=2, failed=1)
    text = (pytester.path / "out" / "aigve-report.html").read_text()
    assert hostile not in text and "<b>demo</b>" not in text
    assert "&lt;img src=x onerror=alert(1)&gt;.mp4" in text and "&lt;b&gt;demo&lt;/b&gt;" in text
    html = read_html(pytester.path / "out" / "aigve-report.html")
    assert all(url.startswith(("data:image/jpeg;base64,", "#")) for url in html.urls)
    assert "<svg" in text and "http://www.w3.org/2000/svg" in text  # the chart: inline, its namespace only
    assert len(html.set_strip_images) == 3 + 2  # gen (3 videos) and ref (2 videos), one strip each
    words = " ".join(html.text)
    assert "2 passed" in words and "1 failed" in words and "0 errors" in words
    header = ["Check", "Metric", "Value", "Interval", "Threshold", "Baseline", "Δ", "Δ%", "Tolerance", "Chart",
              "Videos", "Verdict"]
    table = html.rows[html.rows.index(header) + 1:][:3]
    assert [row[-1] for row in table] == ["passed", "failed", "passed"]
    assert table[1][:2] == ["<b>demo</b> · psnr[ref-vs-gen]", "psnr ↑"] and table[1][4] == "≥ 99"
    assert "torch" in words and "Device" in words


def test_crashing_metric_is_an_error_and_reports_are_written(project: Path, pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CRASHING_CONFTEST.format(exc="RuntimeError"))
    (project / "aigve_demo.yaml").write_text(SUITE + "  - {metric: exploding, set: gen}\n")
    result = pytester.runpytest("--aigve-report-dir", "out")
    result.assert_outcomes(passed=3, errors=1)
    record = records_by_check(read_json(project / "out" / "aigve-results.json"))["exploding[gen]"]
    assert record["outcome"] == "error" and "RuntimeError: boom from the metric" in record["message"]


def test_interrupted_run_still_writes_reports(project: Path, pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CRASHING_CONFTEST.format(exc="KeyboardInterrupt"))
    (project / "aigve_demo.yaml").write_text(SUITE + "  - {metric: exploding, set: gen}\n"
                                             "  - {metric: flicker, set: ref}\n")
    result = pytester.runpytest_subprocess("--aigve-report-dir", "out")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    results = read_json(project / "out" / "aigve-results.json")
    assert results["interrupted"] is True
    assert [r["check"] for r in results["records"]] == ["flicker[gen]", "psnr[ref-vs-gen]", "ssim[ref-vs-gen]"]
    assert "interrupted" in (project / "out" / "aigve-report.html").read_text()


def test_progress_under_verbose_and_quiet_under_q(project: Path, pytester: pytest.Pytester) -> None:
    verbose = pytester.runpytest("-vv", "--aigve-report-dir", "out")
    assert_in_order(verbose.stdout.str(), "aigve: flicker[gen]: gen: 1/2 videos",
                    "aigve: flicker[gen]: gen: 2/2 videos",
                    "aigve report: ", "aigve-results.json")
    quiet = pytester.runpytest("-q", "--aigve-report-dir", "out")
    assert "aigve: " not in quiet.stdout.str() and "aigve scores" not in quiet.stdout.str()
    assert "aigve report: " in quiet.stdout.str()  # -q still says where the reports are


def test_report_paths_can_be_set_or_disabled(project: Path, pytester: pytest.Pytester) -> None:
    pytester.runpytest("--aigve-json", "a/r.json", "--aigve-html", "none").assert_outcomes(passed=3)
    assert (project / "a" / "r.json").is_file() and not list(project.rglob("*.html"))
    pytester.runpytest().assert_outcomes(passed=3)
    assert (project / "reports" / "aigve-results.json").is_file()
    assert (project / "reports" / "aigve-report.html").is_file()


def test_runs_without_suites_write_no_reports(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_unit="def test_unit():\n    pass\n")
    pytester.runpytest().assert_outcomes(passed=1)
    assert not (pytester.path / "reports").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--aigve-suite", "missing.yaml"], "--aigve-suite missing.yaml: file not found"),
    (["--aigve-device", "tpu"], "--aigve-device 'tpu': expected auto, cpu, cuda or cuda:N"),
    (["--aigve-clip-cache-mb", "-1"], "--aigve-clip-cache-mb -1: must be >= 0"),
    (["--aigve-decode-workers", "0"], "--aigve-decode-workers '0': expected a whole number >= 1 (or leave it out: "
                                      "the cores this process may use, divided among xdist workers)"),
    (["--aigve-decode-workers", "two"], "--aigve-decode-workers 'two': expected a whole number >= 1"),
])
def test_bad_options_are_usage_errors(pytester: pytest.Pytester, args: list[str], message: str) -> None:
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}*"])


def test_environment_variables_are_read_once_into_the_options(pytester: pytest.Pytester,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AIGVE_CACHE_DIR", "AIGVE_WEIGHTS_DIR", "AIGVE_ALLOW_UNVERIFIED_WEIGHTS", "AIGVE_REHASH_WEIGHTS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(pytester.path / "xdg"))
    plain = options_from_config(pytester.parseconfig())
    assert (plain.weights_dir, plain.allow_unverified_weights, plain.rehash_weights) == (None, False, False)
    assert plain.feature_cache_dir == plain.weights_memo_dir == pytester.path / "xdg" / "pytest-aigve" / "features"
    assert plain.decode_workers is None  # auto
    monkeypatch.setenv("AIGVE_CACHE_DIR", str(pytester.path / "cache"))
    monkeypatch.setenv("AIGVE_ALLOW_UNVERIFIED_WEIGHTS", "1")
    monkeypatch.setenv("AIGVE_REHASH_WEIGHTS", "1")
    from_env = options_from_config(pytester.parseconfig("--aigve-decode-workers", "3"))
    assert (from_env.allow_unverified_weights, from_env.rehash_weights, from_env.decode_workers) == (True, True, 3)
    assert from_env.feature_cache_dir == from_env.weights_memo_dir == pytester.path / "cache"
    # --aigve-cache-dir moves the feature cache only; --aigve-no-cache turns it off; neither moves the digests
    moved = options_from_config(pytester.parseconfig("--aigve-cache-dir", "elsewhere"))
    assert (moved.feature_cache_dir, moved.weights_memo_dir) == (pytester.path / "elsewhere", pytester.path / "cache")
    off = options_from_config(pytester.parseconfig("--aigve-no-cache"))
    assert (off.feature_cache_dir, off.weights_memo_dir) == (None, pytester.path / "cache")
    monkeypatch.setenv("AIGVE_REHASH_WEIGHTS", "0")
    assert not options_from_config(pytester.parseconfig()).rehash_weights


def test_xdist_gives_the_serial_scores_and_one_set_of_reports(project: Path, pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    serial = pytester.runpytest_subprocess("--aigve-report-dir", "serial")
    serial.assert_outcomes(passed=3)
    parallel = pytester.runpytest_subprocess("-n", "2", "--aigve-report-dir", "parallel", "--junitxml=j.xml")
    parallel.assert_outcomes(passed=3)
    values = {name: r["value"] for name, r in records_by_check(read_json(project / "serial" /
                                                                        "aigve-results.json")).items()}
    parallel_results = read_json(project / "parallel" / "aigve-results.json")
    assert {name: r["value"] for name, r in records_by_check(parallel_results).items()} == values
    assert sorted(p.name for p in (project / "parallel").iterdir()) == [
        "aigve-report.html", "aigve-results.json", "aigve-summary.md"]
    props = [p.get("name") for p in ET.parse(project / "j.xml").getroot().iter("property")]
    assert props.count("aigve.value") == 3
    assert len(read_html(project / "parallel" / "aigve-report.html").set_strip_images) == 4
