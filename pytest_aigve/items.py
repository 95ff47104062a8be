"""Collection nodes: a suite file collects one CheckItem per check.

setup() decodes and computes (anything going wrong there is a pytest *error*: the metric
could not compute); runtest() applies the threshold (a *failure*: the score is out of bounds).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from .errors import AigveError
from .gate import check_threshold
from .metrics.registry import MetricRegistry
from .records import RECORD_ATTRIBUTE, ItemRecord
from .runner import CheckResult, EvalContext, evaluate_check
from .runtime import AigveRuntime
from .suite import CheckSpec, Suite, load_suite


class ThresholdFailure(AssertionError):
    """The score is out of its bounds; shown as plain text, without a traceback."""


class SuiteFile(pytest.File):
    def __init__(self, *, runtime: AigveRuntime, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.runtime = runtime

    @property
    def registry(self) -> MetricRegistry:
        return self.runtime.registry

    def collect(self) -> list[CheckItem]:
        try:
            suite = load_suite(self.path, self.registry)
        except AigveError as exc:
            raise self.CollectError(str(exc)) from None
        return [CheckItem.from_parent(self, name=check.id, suite=suite, check=check) for check in suite.checks]


class CheckItem(pytest.Item):
    def __init__(self, *, suite: Suite, check: CheckSpec, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.suite = suite
        self.check = check
        metric_cls = self.parent.registry.get(check.metric)  # type: ignore[union-attr]
        self.higher_is_better = metric_cls.higher_is_better
        self.result: CheckResult | None = None
        self.record = ItemRecord(
            nodeid=self.nodeid, suite=suite.name, suite_file=str(suite.path), check=check.id,
            metric=check.metric, sets=list(check.sets), higher_is_better=self.higher_is_better,
            threshold=check.threshold.to_dict(), protocol=check.protocol.to_dict(), params=dict(check.params),
            line=check.line, set_sizes={name: len(suite.sets[name].videos) for name in check.sets},
            precision=metric_cls.precision,
        )

    @property
    def context(self) -> EvalContext:
        return self.parent.runtime.context  # type: ignore[union-attr]

    def setup(self) -> None:
        try:
            self.record.device = str(self.context.device)
            self.result = evaluate_check(self.suite, self.check, self.context)
        except AigveError as exc:
            self.record.message = str(exc)
            pytest.fail(f"{self.check.id}: cannot compute {self.check.metric}: {exc}", pytrace=False)
        self._record_result(self.result)

    def _record_result(self, outcome: CheckResult) -> None:
        record, result = self.record, outcome.result
        record.value = result.value
        record.per_video = result.per_video
        record.details = {k: v for k, v in result.details.items() if k != "backbone"}
        if "backbone" in result.details:
            record.backbone = result.details["backbone"]
            record.precision = record.backbone["precision"]
        record.warnings = list(result.warnings)
        record.videos_used = outcome.videos_used
        record.videos_skipped = [{"video": s.label, "reason": s.reason} for s in outcome.skipped]
        record.resolution = outcome.resolution
        record.timings["compute_s"] = round(outcome.seconds, 4)
        record.thumbnails = outcome.thumbnails
        used = len(outcome.videos_used[self.check.sets[-1]])  # videos of a one-set check, pairs of a paired one
        self.user_properties.extend([
            ("aigve.metric", self.check.metric),
            ("aigve.value", repr(result.value)),
            ("aigve.threshold", self.check.threshold.describe()),
            ("aigve.higher_is_better", str(self.higher_is_better).lower()),
            ("aigve.set_size", str(used)),
            ("aigve.videos_skipped", str(len(outcome.skipped))),
            ("aigve.protocol", json.dumps(self.check.protocol.to_dict(), sort_keys=True)),
            ("aigve.device", self.record.device),
            ("aigve.precision", self.record.precision),
        ])
        if record.backbone:
            self.user_properties.extend([("aigve.backbone", record.backbone["name"]),
                                         ("aigve.weights_sha256", record.backbone["weights_sha256"])])
        for warning in record.warnings:
            self.user_properties.append(("aigve.warning", warning))

    def runtest(self) -> None:
        assert self.result is not None
        verdict = check_threshold(self.check.metric, self.result.result.value, self.check.threshold,
                                  self.higher_is_better)
        self.record.message = verdict.message
        self.user_properties.append(("aigve.verdict", "pass" if verdict.passed else "fail"))
        if not verdict.passed:
            raise ThresholdFailure(verdict.message)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str | Any:
        if isinstance(excinfo.value, ThresholdFailure):
            sets = ", ".join(f"'{name}' ({self.record.set_sizes[name]} videos)" for name in self.check.sets)
            return (f"{self.suite.path.name}:{self.check.line}: {excinfo.value}\n"
                    f"  sets: {sets}\n  protocol: {self.check.protocol.describe()}")
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Any, int, str]:
        return self.path, self.check.line - 1, self.name

    def aigve_finish_report(self, report: pytest.TestReport) -> None:
        """Attach the final record to the report of the phase that decided the outcome."""
        record = self.record
        if report.when == "setup" and not report.passed:
            record.outcome = "skipped" if report.skipped else "error"
            if not record.message:  # a crash, not one of our errors: keep the end of the traceback
                record.message = report.longreprtext[-4000:]
        elif report.when == "call":
            record.outcome = "passed" if report.passed else "failed"
            if report.failed and not isinstance(getattr(report, "longrepr", None), str) and not record.message:
                record.message = report.longreprtext[-4000:]
        else:
            if report.when == "setup":
                record.timings["setup_s"] = round(report.duration, 4)
            return
        record.timings[f"{report.when}_s"] = round(report.duration, 4)
        setattr(report, RECORD_ATTRIBUTE, record.to_dict())
