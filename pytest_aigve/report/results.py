"""Collects item records on the controller (also under xdist) and writes JSON and HTML at the end."""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from ..baseline import Baseline
from ..options import AigveOptions
from ..records import RECORD_ATTRIBUTE
from .environment import describe_environment

RESULTS_SCHEMA = "pytest-aigve/results/1"


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.chmod(temp, 0o644)  # mkstemp makes it private; reports are meant to be shared
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


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

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        record = getattr(report, RECORD_ATTRIBUTE, None)
        if record is not None:
            self.enabled = True  # under xdist, suites are collected on the workers
            self.records[report.nodeid] = record

    @pytest.hookimpl
    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            if report.nodeid.endswith((".yaml", ".yml")):
                self.enabled = True
            self.collection_errors.append({"node": report.nodeid, "message": report.longreprtext})

    def summary(self) -> dict[str, int]:
        counts = Counter(record["outcome"] for record in self.records.values())
        return {"passed": counts["passed"], "warned": counts["warned"], "failed": counts["failed"],
                "errors": counts["error"],
                "collection_errors": len(self.collection_errors), "total": len(self.records)}

    def results(self, exitstatus: int | None) -> dict[str, Any]:
        records = list(self.records.values())
        devices = sorted({r["device"] for r in records if r.get("device")})
        return {
            "schema": RESULTS_SCHEMA,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "duration_s": round(time.time() - self.started, 3),
            "exit_status": exitstatus,
            "interrupted": exitstatus == pytest.ExitCode.INTERRUPTED,
            "summary": self.summary(),
            "environment": describe_environment(", ".join(devices) or None),
            "collection_errors": self.collection_errors,
            "baseline": None if self.baseline is None else {
                "name": self.baseline.name, "path": str(self.baseline.path), "created": self.baseline.created,
                "commit": self.baseline.environment.get("git_commit")},
            "records": records,
        }

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.enabled:
            self.write(exitstatus)

    def write(self, exitstatus: int | None) -> None:
        results = self.results(exitstatus)
        self.config.hook.pytest_aigve_results(records=results["records"], config=self.config)
        if self.json_path is not None:
            without_images = {**results, "records": [{k: v for k, v in r.items() if k != "thumbnails"}
                                                     for r in results["records"]]}
            write_atomic(self.json_path, json.dumps(without_images, indent=2, allow_nan=False) + "\n")
            self.written.append(self.json_path)
        if self.options.markdown_path is not None:
            from .summary import markdown

            write_atomic(self.options.markdown_path, markdown(results))
            self.written.append(self.options.markdown_path)
        if self.html_path is not None:
            from .html import render_html

            write_atomic(self.html_path, render_html(results))
            self.written.append(self.html_path)
        if self.options.save_baseline_path is not None and exitstatus != pytest.ExitCode.INTERRUPTED:
            self._save_baseline(results)

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
        if not self.written or self.config.get_verbosity() < 0:
            return
        from .summary import terminal_lines

        if self.records:
            terminalreporter.section("aigve scores")
            for line in terminal_lines(list(self.records.values())):
                terminalreporter.write_line(line)
            warned = [r for r in self.records.values() if r["outcome"] == "warned"]
            for record in warned:
                terminalreporter.write_line(f"WARN {record['nodeid']}: {record['message']}", yellow=True)
        for path in self.written:
            terminalreporter.write_line(f"aigve report: {path}")
        if self.saved_baseline is not None:
            terminalreporter.write_line(f"aigve baseline saved: {self.saved_baseline}")
