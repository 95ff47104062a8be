"""Nothing silent, nothing lost: numbers, baselines, interruptions, crashed workers, report writers, resource
limits and hostile text (issue 7). Each test here failed on the code before it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from pytest_aigve.errors import SuiteError
from pytest_aigve.metrics.registry import MetricRegistry
from pytest_aigve.report.html import render_html
from pytest_aigve.report.results import json_safe
from pytest_aigve.report.summary import markdown, terminal_lines
from pytest_aigve.suite import load_suite

from .helpers import CRASHING_CONFTEST, SUITE, read_html, read_json, records_by_check


def suite_error(folder: Path, text: str) -> SuiteError:
    path = folder / "aigve_x.yaml"
    path.write_text(text)
    with pytest.raises(SuiteError) as caught:
        load_suite(path, MetricRegistry())
    return caught.value


# --- 1. NaN and infinities ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("old", "new", "line", "words"), [
    ("fps: 6", "fps: .nan", 2, "'fps' must be a positive number"),
    ("fps: 6", "fps: .inf", 2, "'fps' must be a positive number"),
    ("fps: 6", "fps: 6, start: .nan", 2, "'start' must be seconds"),
    ("    min: 0.5", "    min: .nan", 9, "'min' must be a finite number"),
    ("    min: 20", "    max: -.inf", 13, "'max' must be a finite number"),
    ("    min: 0.5", "    min: 0.5\n    tolerance: {abs: .nan}", 10, "'abs' must be a finite number"),
    ("    min: 0.5", "    min: 0.5\n    tolerance: {pct: .inf}", 10, "'pct' must be a finite number"),
    ("    min: 0.5", "    min: 0.5\n    bootstrap: {level: .nan}", 10, "'level' must be between 0 and 1"),
    ("    min: 0.5", "    min: 0.5\n    bootstrap: {seed: -1}", 10, "'seed' must be an integer >= 0"),
])
def test_non_finite_suite_numbers_are_located_errors(project: Path, old: str, new: str, line: int,
                                                     words: str) -> None:
    assert old in SUITE
    error = suite_error(project, SUITE.replace(old, new, 1))
    assert error.line == line and words in str(error)


def test_nan_in_a_baseline_is_an_error_naming_the_entry(project: Path, pytester: pytest.Pytester) -> None:
    pytester.runpytest("--aigve-save-baseline", "main").assert_outcomes(passed=3)
    path = project / ".aigve" / "baselines" / "main.json"
    data = json.loads(path.read_text())
    data["scores"]["demo::psnr[ref-vs-gen]"]["value"] = float("nan")
    path.write_text(json.dumps(data))  # Python writes NaN, which json.loads reads back
    result = pytester.runpytest("--aigve-baseline", "main")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "entry 'demo::psnr[ref-vs-gen]': 'value' must be a finite number, found nan" in result.stderr.str()


def test_report_writers_do_not_die_on_non_finite_values(project: Path, pytester: pytest.Pytester) -> None:
    pytester.makeconftest("""
from pytest_aigve.metrics.flicker import TemporalFlicker

class Odd(TemporalFlicker):
    name = "odd"
    def evaluate(self, inputs):
        result = super().evaluate(inputs)
        result.details["spread"] = float("nan")
        result.details["ratio"] = float("inf")
        return result

def pytest_aigve_register_metrics(registry):
    registry.register("odd", Odd)
""")
    (project / "aigve_demo.yaml").write_text(SUITE + "  - {metric: odd, set: gen}\n")
    result = pytester.runpytest("--aigve-report-dir", "out")
    result.assert_outcomes(passed=4)
    record = records_by_check(read_json(project / "out" / "aigve-results.json"))["odd[gen]"]
    assert record["details"]["spread"] == "nan" and record["details"]["ratio"] == "inf"
    assert (project / "out" / "aigve-summary.md").is_file() and (project / "out" / "aigve-report.html").is_file()
    assert json_safe({"a": [float("-inf"), 1.5, Path("x")]}) == {"a": ["-inf", 1.5, "x"]}


# --- 2. baseline entries and checks that do not match ----------------------------------------------------

def test_renamed_check_is_listed_and_fails_when_the_suite_says_so(project: Path, pytester: pytest.Pytester) -> None:
    pytester.runpytest("--aigve-save-baseline", "main").assert_outcomes(passed=3)
    renamed = SUITE.replace("  - metric: ssim\n", "  - metric: ssim\n    name: ssim-renamed\n")
    (project / "aigve_demo.yaml").write_text(renamed)
    result = pytester.runpytest("--aigve-baseline", "main", "--aigve-report-dir", "out")
    result.assert_outcomes(passed=3)  # default: warn, but loudly
    output = result.stdout.str()
    assert "checks with no entry in baseline main (not compared): demo::ssim-renamed" in output
    assert "entries of baseline main that no check matched (renamed or removed checks): demo::ssim[ref-vs-gen]" \
        in output
    results = read_json(project / "out" / "aigve-results.json")
    assert results["baseline"]["unmatched_entries"] == ["demo::ssim[ref-vs-gen]"]
    assert records_by_check(results)["ssim-renamed"]["gate"]["status"] == "new"
    assert "demo::ssim\\[ref-vs-gen\\]" in (project / "out" / "aigve-summary.md").read_text()
    assert "demo::ssim[ref-vs-gen]" in " ".join(read_html(project / "out" / "aigve-report.html").text)

    (project / "aigve_demo.yaml").write_text("on_missing_baseline: error\n" + renamed)
    strict = pytester.runpytest("--aigve-baseline", "main", "--aigve-report-dir", "out")
    strict.assert_outcomes(passed=2, failed=1)
    assert "no entry for 'demo::ssim-renamed' in baseline main" in strict.stdout.str()
    # a filtered run (-k) does not count the checks it left out as unmatched
    (project / "aigve_demo.yaml").write_text("on_missing_baseline: error\n" + SUITE)
    filtered = pytester.runpytest("--aigve-baseline", "main", "-k", "psnr")
    filtered.assert_outcomes(passed=1)
    assert filtered.ret == pytest.ExitCode.OK


def test_unmatched_baseline_entries_fail_the_run_under_error(project: Path, pytester: pytest.Pytester) -> None:
    pytester.runpytest("--aigve-save-baseline", "main").assert_outcomes(passed=3)
    fewer = "on_missing_baseline: error\n" + SUITE.split("  - metric: ssim")[0]  # ssim removed from the suite
    (project / "aigve_demo.yaml").write_text(fewer)
    result = pytester.runpytest("--aigve-baseline", "main")
    result.assert_outcomes(passed=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert "no check matched (renamed or removed checks): demo::ssim[ref-vs-gen]" in result.stdout.str()


# --- 8. SIGTERM --------------------------------------------------------------------------------------------

SLOW_CONFTEST = """
import time
from pathlib import Path
from pytest_aigve.metrics.base import PerVideoMetric

class Slow(PerVideoMetric):
    name = "slow"
    description = "sleeps"
    higher_is_better = True

    def score_clip(self, clip):
        Path("started").touch()
        time.sleep(60)
        return 1.0

def pytest_aigve_register_metrics(registry):
    registry.register("slow", Slow)
"""


def test_sigterm_writes_every_report_marked_interrupted(project: Path, pytester: pytest.Pytester) -> None:
    pytester.makeconftest(SLOW_CONFTEST)
    (project / "aigve_demo.yaml").write_text(SUITE + "  - {metric: slow, set: gen}\n  - {metric: flicker, set: ref}\n")
    process = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--aigve-report-dir",
                                "out", "--junitxml=out/junit.xml"], cwd=project, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while not (project / "started").exists():
        assert process.poll() is None and time.monotonic() < deadline, process.stdout.read().decode()  # type: ignore[union-attr]
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == pytest.ExitCode.INTERRUPTED, output.decode()
    results = read_json(project / "out" / "aigve-results.json")
    assert results["interrupted"] is True and results["complete"] is False
    assert results["not_run"] == ["aigve_demo.yaml::slow[gen]", "aigve_demo.yaml::flicker[ref]"]
    assert [r["outcome"] for r in results["records"]] == ["passed", "passed", "passed"]
    assert len(list(ET.parse(project / "out" / "junit.xml").getroot().iter("testcase"))) == 3
    assert "Incomplete run: 2 collected check(s) did not run" in (project / "out" / "aigve-report.html").read_text()
    assert "2 not run (interrupted)" in (project / "out" / "aigve-summary.md").read_text()


# --- 9. a run that did not run every check never claims success ---------------------------------------------

def test_checks_that_never_ran_are_counted_and_the_run_is_not_clean(project: Path, pytester: pytest.Pytester) -> None:
    # a run loop that stops early without an exception: what a second Ctrl-C during teardown left behind
    pytester.makeconftest("""
import pytest

@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session):
    item = session.items[0]
    item.config.hook.pytest_runtest_protocol(item=item, nextitem=None)
    return True
""")
    result = pytester.runpytest("--aigve-report-dir", "out")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    results = read_json(project / "out" / "aigve-results.json")
    assert results["summary"]["passed"] == 1 and results["summary"]["not_run"] == 2
    assert results["complete"] is False
    assert "2 collected check(s) did not run" in result.stdout.str()


# --- 10. a crashed xdist worker ----------------------------------------------------------------------------

def test_a_check_lost_with_its_worker_is_an_error_in_every_report(project: Path, pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    pytester.makeconftest(CRASHING_CONFTEST.replace("raise {exc}(\"boom from the metric\")", "os._exit(7)")
                          .replace("from pytest_aigve", "import os\nfrom pytest_aigve").format(exc="SystemExit"))
    (project / "aigve_demo.yaml").write_text(SUITE + "  - {metric: exploding, set: gen}\n")
    result = pytester.runpytest_subprocess("-n", "2", "--aigve-report-dir", "out")
    result.assert_outcomes(passed=3, failed=1)
    results = read_json(project / "out" / "aigve-results.json")
    lost = records_by_check(results)["exploding[gen]"]
    assert lost["outcome"] == "error" and "crashed" in lost["message"]
    assert results["summary"]["errors"] == 1 and results["summary"]["passed"] == 3
    assert "1 errors" in (project / "out" / "aigve-summary.md").read_text()


# --- 11, 12. report writers run on their own; unwritable places are one sentence ----------------------------

def test_one_failed_report_write_does_not_stop_the_others(project: Path, pytester: pytest.Pytester) -> None:
    (project / "out" / "aigve-results.json").mkdir(parents=True)  # the JSON path is a folder
    result = pytester.runpytest("--aigve-report-dir", "out")
    result.assert_outcomes(passed=3)
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR
    output = result.stdout.str()
    assert f"aigve report NOT written: cannot write the JSON results to {project / 'out' / 'aigve-results.json'}" \
        in output
    assert "Traceback" not in output
    assert (project / "out" / "aigve-summary.md").is_file() and (project / "out" / "aigve-report.html").is_file()


def test_malformed_baseline_entry_is_one_sentence(project: Path, pytester: pytest.Pytester) -> None:
    folder = project / ".aigve" / "baselines"
    folder.mkdir(parents=True)
    (folder / "main.json").write_text(json.dumps({"schema": "pytest-aigve/baseline/1", "scores": {
        "demo::psnr[ref-vs-gen]": {"value": 30, "interval": {"low": "a"}}}}))
    result = pytester.runpytest("--aigve-baseline", "main")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "entry 'demo::psnr[ref-vs-gen]': 'interval' must be {low, high}" in result.stderr.str()
    assert "Traceback" not in result.stderr.str()


@pytest.mark.parametrize(("old", "new", "words"), [
    ("frames: 8", "frames: 100000000", "'frames' must be at most 4096"),
    ("frames: 8", "frames: 8, resize: [100000, 100000]", "'resize' must be at most 8192"),
    ("fps: 6", "fps: 100000", "'fps' must be a positive number (at most 1000)"),
])
def test_huge_protocol_values_are_refused_before_any_decoding(project: Path, old: str, new: str,
                                                              words: str) -> None:
    error = suite_error(project, SUITE.replace(old, new))
    assert error.line == 2 and words in str(error)


def test_deeply_nested_yaml_is_one_sentence(project: Path) -> None:
    error = suite_error(project, SUITE + "description: " + "[" * 5000 + "]" * 5000 + "\n")
    assert "nested" in str(error) and "levels" in str(error)


# --- 13, 14. resource limits ----------------------------------------------------------------------------------

def test_yaml_alias_bomb_fails_fast_with_the_line(project: Path) -> None:
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    started = time.perf_counter()
    error = suite_error(project, "\n".join(["x-anchors:", *("  " + line for line in levels)]) + "\n" + SUITE)
    assert time.perf_counter() - started < 5
    assert "expands to more than 200,000 values" in str(error) and error.line is not None and error.line <= 10


def test_bootstrap_resamples_are_bounded(project: Path) -> None:
    error = suite_error(project, SUITE.replace("    min: 0.5", "    min: 0.5\n    bootstrap: {resamples: 100000000}"))
    assert error.line == 10 and "'resamples' must be an integer from 10 to 10000" in str(error)


# --- 17. value and interval agree; warnings reach the terminal and the Markdown ------------------------------

def test_round_off_below_a_distance_range_is_clipped_with_its_interval() -> None:
    import torch

    from pytest_aigve.engine.evaluate import _clip_round_off
    from pytest_aigve.errors import MetricError
    from pytest_aigve.metrics.fid import FID

    metric = FID(FID.validate_params({}), torch.device("cpu"))
    assert _clip_round_off(metric, -2.3e-10) == 0.0 and _clip_round_off(metric, 3.5) == 3.5
    with pytest.raises(MetricError, match="not round-off"):
        _clip_round_off(metric, -0.5)


def record(**fields: Any) -> dict[str, Any]:
    base = {"nodeid": "s.yaml::c", "suite": "s", "suite_file": "s.yaml", "check": "c", "metric": "fid",
            "sets": ["a", "b"], "higher_is_better": False, "inputs": "sets", "threshold": {}, "protocol": {},
            "params": {}, "line": 3, "outcome": "passed", "value": 1.0, "message": "", "set_sizes": {"a": 4},
            "videos_used": {}, "videos_skipped": [], "per_video": {}, "details": {}, "warnings": [],
            "timings": {}, "device": "cpu", "precision": "fp32", "backbone": {}, "resolution": [],
            "thumbnails": {}, "interval": None, "fingerprint": {}, "fingerprint_diff": [], "gate": {}}
    return {**base, **fields}


def results_of(*records: dict[str, Any]) -> dict[str, Any]:
    return {"summary": {"passed": 1, "warned": 0, "failed": 0, "errors": 0, "not_run": 0, "collection_errors": 0,
                        "total": len(records)}, "records": list(records), "interrupted": False, "complete": True,
            "collection_errors": [], "baseline": None, "not_run": [], "created": "now", "duration_s": 1.0,
            "exit_status": 0, "environment": {"python": "3", "platform": "x", "packages": {}}}


def test_warnings_and_skipped_videos_reach_the_markdown() -> None:
    warned = record(warnings=["fid on few samples (reference 4, candidate 6) with 2048-d features"],
                    videos_skipped=[{"video": "bad.mp4", "reason": "file is empty (0 bytes)"}])
    text = markdown(results_of(warned))
    assert "reference 4, candidate 6" in text and "bad.mp4 (file is empty (0 bytes))" in text.replace("\\", "")


# --- messages that mislead: hostile text in file names and prompts ------------------------------------------

HOSTILE = "clip [click](https://evil.example) ![x](y) @octocat \x1b[2J\x1b[31mred \u202egnp.mp4"


def test_markdown_from_file_names_cannot_link_mention_or_embed() -> None:
    text = markdown(results_of(record(check=HOSTILE, videos_skipped=[{"video": HOSTILE, "reason": "bad"}])))
    import re

    assert not re.search(r"(?<!\\)\]\(", text) and not re.search(r"!\[", text)  # no link, no image
    assert "@octocat" not in text and "https://" not in text
    assert "\x1b" not in text and "\u202e" not in text
    assert "\\\\x1b" in text  # the escape is shown (a backslash escaped for Markdown), not obeyed


def test_terminal_lines_show_escapes_instead_of_obeying_them() -> None:
    lines = terminal_lines([record(check=HOSTILE)])
    joined = "\n".join(lines)
    assert "\x1b" not in joined and "\u202e" not in joined
    assert "\\x1b[2J" in joined and "\\u202e" in joined


def test_right_to_left_override_is_visible_in_the_html() -> None:
    html = render_html(results_of(record(check=HOSTILE, per_video={HOSTILE: 0.5})))
    assert "\u202e" not in html and "\x1b" not in html
    assert "\\u202egnp.mp4" in html


def test_sigterm_handler_is_restored_after_the_run() -> None:
    from pytest_aigve.interrupts import handle_sigterm_as_interrupt

    outer = signal.signal(signal.SIGTERM, signal.SIG_DFL)  # this test process may run under our own handler
    try:
        restore = handle_sigterm_as_interrupt()
        try:
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(1)
        finally:
            restore()
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        signal.signal(signal.SIGTERM, outer)


def test_ansi_escapes_in_file_names_do_not_reach_the_terminal(project: Path, pytester: pytest.Pytester) -> None:
    (project / "videos" / "gen" / "clip_\x1b[2Jwiped.mp4").write_bytes(b"")
    result = pytester.runpytest("--aigve-report-dir", "out")
    output = result.stdout.str()
    assert "\x1b[2J" not in output and "clip_\\x1b[2Jwiped.mp4" in output


def test_looped_videos_are_named_in_every_report(project: Path, pytester: pytest.Pytester) -> None:
    looped = SUITE.replace("frames: 8, fps: 6", "frames: 40, fps: 6, short_video: loop")
    (project / "aigve_demo.yaml").write_text(looped)
    pytester.runpytest("--aigve-report-dir", "out").assert_outcomes(passed=3)
    record = records_by_check(read_json(project / "out" / "aigve-results.json"))["flicker[gen]"]
    assert record["video_notes"]["gen"]["clip_0.mp4"] == ["loop: 12 -> 40 frames"]
    assert any("loop" in warning and "clip_0.mp4" in warning for warning in record["warnings"])
    html = read_html(project / "out" / "aigve-report.html")
    row = next(r for r in html.rows if r and r[0] == "clip_0.mp4" and len(r) == 7)
    assert row[-1] == "loop: 12 -> 40 frames"
    assert "clip\\_0.mp4" in (project / "out" / "aigve-summary.md").read_text()  # the warning, in the notices


# --- files: reports, baselines, weights and the digest memo are written whole or not at all ---------------------


def test_an_atomic_write_that_fails_leaves_the_old_file_and_no_temporary(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_aigve import files

    target = tmp_path / "out" / "aigve-results.json"
    files.write_atomic(target, "old ✓")  # the folder is made; text is UTF-8
    assert target.read_bytes() == "old ✓".encode() and target.stat().st_mode & 0o777 == 0o644
    with pytest.raises(RuntimeError), files.atomic_open(target) as stream:
        stream.write(b"half of the new")
        raise RuntimeError("the writer died")
    monkeypatch.setattr(files.os, "replace", lambda *args: (_ for _ in ()).throw(OSError(28, "No space left")))
    with pytest.raises(OSError, match="No space left"):
        files.write_atomic(target, b"new")
    assert target.read_text() == "old ✓" and [p.name for p in target.parent.iterdir()] == [target.name]


def test_a_files_digest_is_hashed_once_per_process_and_again_once_rewritten(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    from pytest_aigve import files

    first, other = hashlib.sha256(b"first").hexdigest(), hashlib.sha256(b"other").hexdigest()
    hashed: list[int] = []
    real_sha256 = hashlib.sha256
    monkeypatch.setattr(files.hashlib, "sha256", lambda: hashed.append(1) or real_sha256())
    monkeypatch.setattr(files, "_DIGESTS", {})
    path = tmp_path / "video.mp4"
    path.write_bytes(b"first")
    assert files.sha256_file(path) == first and files.sha256_file(tmp_path / "." / "video.mp4") == first
    assert len(hashed) == 1  # the same file (resolved path, size, mtime): hashed once
    stat = path.stat()
    path.write_bytes(b"other")  # same size, rewritten: a new mtime
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert files.sha256_file(path) == other and len(hashed) == 2
