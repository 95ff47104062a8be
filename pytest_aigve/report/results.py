"""Collects item records on the controller (also under xdist) and writes JSON and HTML at the end."""

from __future__ import annotations

import contextlib
import json
import math
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ..baseline import Baseline
from ..files import write_atomic
from ..options import AigveOptions
from ..records import RECORD_ATTRIBUTE, lost_record
from .environment import describe_environment

RESULTS_SCHEMA = "pytest-aigve/results/1"


def json_safe(value: Any) -> Any:
    """Report data as strict JSON: a non-finite float becomes a string ("nan", "inf"), an unknown object its
    str(); a report writer never dies on a value."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM while the reports are written (a fraction of a second), so that a second
    Ctrl-C or a CI cancellation cannot leave half of them behind; the signal is delivered afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[tuple[int, Any]] = []
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def hold(signum: int, frame: Any) -> None:
        pending.append((signum, frame))

    for sig in previous:
        signal.signal(sig, hold)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for signum, frame in pending[:1]:
            handler = previous[signal.Signals(signum)]
            if callable(handler):
                handler(signum, frame)
            elif handler == signal.SIG_DFL and signum == signal.SIGINT:
                raise KeyboardInterrupt


class ResultsCollector:
    """A plugin object registered on the controller only."""

    def __init__(self, config: pytest.Config, options: AigveOptions, baseline: Baseline | None) -> None:
        self.config = config
        self.options = options
        self.baseline = baseline
        self.enabled = bool(options.suites)  # only runs that collect a suite write reports
        self.json_path = options.json_path
        self.html_path = options.html_path
        self.saved_baseline: Path | None = None
        self.records: dict[str, dict[str, Any]] = {}
        self.collection_errors: list[dict[str, str]] = []
        self.started = time.time()
        self.written: list[Path] = []
        self.write_failures: list[str] = []
        self.expected: dict[str, None] = {}  # node ids of collected suite checks, in order
        self.interrupted = False

    def _is_check(self, nodeid: str) -> bool:
        return self.options.is_suite(self.config.rootpath / nodeid.split("::")[0]) and "::" in nodeid

    @pytest.hookimpl
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.expected.update((item.nodeid, None) for item in session.items if hasattr(item, "aigve_finish_report"))

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        """Under xdist the controller collects nothing: the workers tell it what they collected."""
        self.expected.update((nodeid, None) for nodeid in ids if self._is_check(nodeid))

    @pytest.hookimpl
    def pytest_keyboard_interrupt(self, excinfo: Any) -> None:
        self.interrupted = True

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        record = getattr(report, RECORD_ATTRIBUTE, None)
        if record is not None:
            self.enabled = True  # under xdist, suites are collected on the workers
            self.records[report.nodeid] = record
        elif report.failed and report.nodeid not in self.records and (
                report.nodeid in self.expected or self._is_check(report.nodeid)):
            # no record came with the report: the worker process running the check died (xdist reports it
            # as a failure of phase '???'); it is an error in every report, never left out
            self.enabled = True
            self.records[report.nodeid] = lost_record(
                report.nodeid, f"the check did not finish: {report.longreprtext.strip()[-2000:]}")

    @pytest.hookimpl
    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            if report.nodeid.endswith((".yaml", ".yml")):
                self.enabled = True
            self.collection_errors.append({"node": report.nodeid, "message": report.longreprtext})

    def not_run(self) -> list[str]:
        return [nodeid for nodeid in self.expected if nodeid not in self.records]

    def summary(self) -> dict[str, int]:
        counts = Counter(record["outcome"] for record in self.records.values())
        return {"passed": counts["passed"], "warned": counts["warned"], "failed": counts["failed"],
                "errors": counts["error"], "skipped": counts["skipped"], "not_run": len(self.not_run()),
                "collection_errors": len(self.collection_errors), "total": len(self.records)}

    def baseline_matching(self) -> dict[str, list[str]]:
        """Checks without a baseline entry, and entries without a check (in suites that ran, or not)."""
        if self.baseline is None:
            return {"new_checks": [], "unmatched_entries": [], "suites_not_run": []}
        records = list(self.records.values())
        new = [f"{r['suite']}::{r['check']}" for r in records if r.get("baseline_status") == "new"]
        unmatched = sorted({key for r in records for key in r.get("suite_baseline_unmatched", [])})
        suites_run = {r["suite"] for r in records}
        not_run = sorted({key.split("::")[0] for key in self.baseline.scores} - suites_run)
        return {"new_checks": new, "unmatched_entries": unmatched, "suites_not_run": not_run}

    def results(self, exitstatus: int | None) -> dict[str, Any]:
        records = list(self.records.values())
        devices = sorted({r["device"] for r in records if r.get("device")})
        not_run = self.not_run()
        interrupted = self.interrupted or exitstatus == pytest.ExitCode.INTERRUPTED
        return {
            "schema": RESULTS_SCHEMA,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "duration_s": round(time.time() - self.started, 3),
            "exit_status": exitstatus,
            "interrupted": interrupted,
            # a run that did not compute every collected check never reads as a clean run
            "complete": not interrupted and not not_run,
            "report_url": self.options.report_url,
            "summary": self.summary(),
            "not_run": not_run,
            "environment": {**describe_environment(", ".join(devices) or None),
                            # processes decoding ahead, per pytest process (xdist workers share the cores)
                            "decode_workers": sorted({r["decode_workers"] for r in records
                                                      if r.get("decode_workers")})},
            "collection_errors": self.collection_errors,
            "baseline": None if self.baseline is None else {
                "name": self.baseline.name, "path": str(self.baseline.path), "created": self.baseline.created,
                "commit": self.baseline.environment.get("git_commit"), **self.baseline_matching()},
            "records": records,
        }

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if not self.enabled:
            return
        with signals_deferred():
            self.write(exitstatus)
        clean = session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED)
        if self.write_failures and clean:
            session.exitstatus = pytest.ExitCode.INTERNAL_ERROR  # the reports a CI job publishes are incomplete
        elif clean and self.not_run():
            session.exitstatus = pytest.ExitCode.INTERRUPTED  # checks were collected but never ran
        elif clean and self._unmatched_fails():
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def _unmatched_fails(self) -> bool:
        """Baseline entries that no check matched fail the run where their suite says on_missing_baseline: error."""
        return not self.options.update_baseline and any(
            r.get("suite_baseline_unmatched") and r.get("on_missing_baseline") == "error"
            for r in self.records.values())

    def _attempt(self, what: str, path: Path, write: Callable[[], None], listed: bool = True) -> None:
        """One report: written, or one line saying why not; the other reports are written regardless."""
        try:
            write()
        except Exception as exc:  # any failure of one writer must not cost the others
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else f"{type(exc).__name__}: {exc}"
            self.write_failures.append(f"cannot write the {what} to {path}: {reason}; choose another place with "
                                       "--aigve-report-dir (or the report's own option)")
        else:
            if listed:
                self.written.append(path)

    def write(self, exitstatus: int | None) -> None:
        results = self.results(exitstatus)
        self.config.hook.pytest_aigve_results(records=results["records"], config=self.config)
        json_path = self.json_path
        if json_path is not None:
            without_images = {**results, "records": [
                {**{k: v for k, v in r.items() if k != "thumbnails"},
                 "worst_videos": [{k: v for k, v in w.items() if k not in ("reference", "candidate")}
                                  for w in r.get("worst_videos", [])]}
                for r in results["records"]]}
            text = json.dumps(json_safe(without_images), indent=2, allow_nan=False) + "\n"
            self._attempt("JSON results", json_path, lambda: write_atomic(json_path, text))
        if self.options.markdown_path is not None:
            from .summary import markdown

            path = self.options.markdown_path
            self._attempt("Markdown summary", path, lambda: write_atomic(path, markdown(results)))
        if self.html_path is not None:
            from .html import render_html

            html_path = self.html_path
            self._attempt("HTML report", html_path, lambda: write_atomic(html_path, render_html(results)))
        if self.options.save_baseline_path is not None and not results["interrupted"]:
            save_path = self.options.save_baseline_path
            self._attempt("baseline", save_path, lambda: self._save_baseline(results), listed=False)

    def _save_baseline(self, results: dict[str, Any]) -> None:
        from ..baseline import git_commit, save_baseline

        path = self.options.save_baseline_path
        assert path is not None
        environment = {**results["environment"], "git_commit": git_commit(self.config.rootpath)}
        keep = self.baseline if self.baseline is not None and self.baseline.path == path else None
        if keep is None and path.is_file():
            from ..baseline import load_baseline

            keep = load_baseline(path)
        save_baseline(path, path.stem, results["records"], environment, keep)
        self.saved_baseline = path

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.enabled:
            return
        from ..safetext import one_line
        from .summary import notices, terminal_lines

        records = list(self.records.values())
        quiet = self.config.get_verbosity() < 0
        if records and not quiet:
            terminalreporter.section("aigve scores")
            for line in terminal_lines(records):
                terminalreporter.write_line(line)
        if quiet:  # -q: the one-line verdict of each failing check, and where the reports are
            for record in records:
                if record["outcome"] in ("failed", "error", "warned"):
                    terminalreporter.write_line(one_line(f"{record['outcome'].upper()} {record['nodeid']}: "
                                                         f"{record['message'][:300]}"))
        else:
            for record in records:
                if record["outcome"] == "warned":
                    terminalreporter.write_line(one_line(f"WARN {record['nodeid']}: {record['message']}"),
                                                yellow=True)
            results = {"summary": self.summary(), "not_run": self.not_run(), "records": records,
                       "baseline": None if self.baseline is None else {"name": self.baseline.name,
                                                                        **self.baseline_matching()}}
            for record in records:
                advice = (record.get("gate") or {}).get("advice")
                if advice:
                    terminalreporter.write_line(one_line(f"what now: {record['suite']}::{record['check']}: {advice}"))
            for kind, text in notices(results):
                terminalreporter.write_line(one_line(f"{kind}: {text}"), yellow=True, red=kind == "incomplete")
        for failure in self.write_failures:
            terminalreporter.write_line(one_line(f"aigve report NOT written: {failure}"), red=True, bold=True)
        for path in self.written:
            terminalreporter.write_line(f"aigve report: {path}")
        if self.saved_baseline is not None:
            terminalreporter.write_line(f"aigve baseline saved: {self.saved_baseline}")
