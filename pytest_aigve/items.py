"""Collection nodes: a suite file collects one CheckItem per check.

setup() decodes, computes and checks the protocol against the baseline (anything going wrong there is a
pytest *error*: the score could not be computed or compared); runtest() applies the gate: bounds and
baseline tolerance, point or interval (a *failure*, or a warning for `warn: true` checks).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pytest

from .baseline import fingerprint_diff, score_key
from .errors import AigveError
from .gate import (
    BaselineScore,
    GatePolicy,
    GateResult,
    PairedDelta,
    Tolerance,
    evaluate_gate,
    paired_delta,
    per_video_failures,
    worst_first,
)
from .metrics.registry import MetricRegistry
from .records import RECORD_ATTRIBUTE, ItemRecord, fill_record, gate_properties
from .report.thumbnails import WORST_VIDEOS, worst_video_strips
from .runtime import AigveRuntime
from .safetext import printable
from .suite import CheckSpec, Suite, load_suite

if TYPE_CHECKING:
    from .engine import CheckResult, EvalContext


class ThresholdFailure(AssertionError):
    """The score is out of its bounds; shown as plain text, without a traceback."""


class AigveGateWarning(UserWarning):
    """A check set to `warn: true` missed its gate: shown in the warnings summary and every report."""


class SuiteFile(pytest.File):
    def __init__(self, *, runtime: AigveRuntime, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.runtime = runtime

    @property
    def registry(self) -> MetricRegistry:
        return self.runtime.registry

    def collect(self) -> list[CheckItem]:
        try:
            # remote checks run on the service's device: the precisions it can run are checked there
            device_type = None if self.runtime.options.remote_url else self.runtime.device_type
            suite = load_suite(self.path, self.registry, device_type=device_type)
        except AigveError as exc:
            raise self.CollectError(printable(str(exc))) from None
        unmatched = self._baseline_unmatched(suite)
        return [CheckItem.from_parent(self, name=check.id, suite=suite, check=check, baseline_unmatched=unmatched)
                for check in suite.checks]

    def _baseline_unmatched(self, suite: Suite) -> list[str]:
        """Baseline entries of this suite that no check of it matches (a renamed or removed check). Found at
        collection, before -k or -m deselect anything, so a filtered run does not report them."""
        baseline = self.runtime.baseline
        if baseline is None:
            return []
        ids = {score_key(suite.name, check.id) for check in suite.checks}
        prefix = score_key(suite.name, "")
        return sorted(key for key in baseline.scores if key.startswith(prefix) and key not in ids)


class CheckItem(pytest.Item):
    def __init__(self, *, suite: Suite, check: CheckSpec, baseline_unmatched: list[str] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.suite = suite
        self.check = check
        assert isinstance(self.parent, SuiteFile)
        self.runtime: AigveRuntime = self.parent.runtime
        metric_cls = self.runtime.registry.get(check.metric)
        self.higher_is_better = metric_cls.higher_is_better
        self.result: CheckResult | None = None
        self.record = ItemRecord(
            nodeid=self.nodeid, suite=suite.name, suite_file=str(suite.path), check=check.id,
            metric=check.metric, sets=list(check.sets), higher_is_better=self.higher_is_better,
            inputs=metric_cls.spec.kind,
            threshold=check.threshold.to_dict(), protocol=check.protocol.to_dict(), params=dict(check.params),
            line=check.line, set_sizes={name: len(suite.sets[name].videos) for name in check.sets},
            precision=metric_cls.precision, on_missing_baseline=suite.on_missing_baseline,
            suite_baseline_unmatched=list(baseline_unmatched or []),
        )
        if self.runtime.baseline is not None:
            self.record.baseline_status = "new" if self._baseline_entry() is None else "matched"

    @property
    def context(self) -> EvalContext:
        return self.runtime.context

    def setup(self) -> None:
        try:
            options = self.runtime.options
            if options.remote_url is not None:  # computed by the evaluation service; everything else stays here
                from .remote.client import evaluate_remote

                self.result, where = evaluate_remote(options.remote_url, options.remote_token, self.suite, self.check,
                                                     self.runtime.registry, self.runtime.needs_interval(self.check),
                                                     options.html_path is not None)
                self.record.device = str(where["device"])
                self.record.decode_workers = int(where["decode_workers"])
            else:
                from .engine import evaluate_check

                self.record.device = str(self.context.device)
                self.record.decode_workers = self.context.decode_workers
                self.result = evaluate_check(self.suite, self.check, self.context,
                                             self.runtime.needs_interval(self.check))
        except AigveError as exc:
            self.record.message = str(exc)
            pytest.fail(printable(f"{self.check.id}: cannot compute {self.check.metric}: {exc}"), pytrace=False)
        self._record_result(self.result)
        self._record_agreement()
        self._check_fingerprint()

    def _record_agreement(self) -> None:
        """With `agreement:`, the per-video scores against the videos' human ratings (an error if not measurable)."""
        spec = self.check.agreement
        if spec is None:
            return
        from .agreement import agreement_properties, agreement_record

        if self.check.without_rating:
            self.record.warnings.append(f"left out of the agreement with '{spec.ratings}' (no rating): "
                                        f"{', '.join(s.label for s in self.check.without_rating)}")
        try:
            self.record.agreement = agreement_record(self.check.metric, spec, self.record.per_video,
                                                     self.suite.sets[self.check.sets[-1]].videos,
                                                     self.higher_is_better, self.check.policy.bootstrap)
        except AigveError as exc:
            self.record.message = str(exc)
            pytest.fail(printable(f"{self.check.id}: cannot measure the agreement: {exc}"), pytrace=False)
        self.user_properties.extend(agreement_properties(self.record.agreement))

    def _baseline_entry(self) -> tuple[str, dict[str, Any]] | None:
        """(baseline name, this check's entry), when the baseline has one."""
        baseline = self.runtime.baseline
        entry = None if baseline is None else baseline.scores.get(score_key(self.suite.name, self.check.id))
        return None if entry is None or baseline is None else (baseline.name, entry)

    def _check_fingerprint(self) -> None:
        """A score is compared only with a baseline score made the same way; otherwise this is an error."""
        found = self._baseline_entry()
        if found is None:
            return
        name, entry = found
        differences = fingerprint_diff(entry.get("fingerprint", {}), self.record.fingerprint)
        if not differences:
            return
        self.record.fingerprint_diff = differences
        options = self.runtime.options
        if options.allow_protocol_mismatch or options.update_baseline:
            self.record.warnings.append(f"compared with baseline despite protocol differences: "
                                        f"{'; '.join(differences)}")
            return
        message = (f"not compared with baseline {name}: the protocol differs ({'; '.join(differences)}); "
                   "restore the protocol, accept it with --aigve-update-baseline, or compare anyway with "
                   "--aigve-allow-protocol-mismatch")
        self.record.message = message
        pytest.fail(f"{self.check.id}: {message}", pytrace=False)

    def _record_result(self, outcome: CheckResult) -> None:
        metric_cls = self.runtime.registry.get(self.check.metric)
        self.user_properties.extend(fill_record(self.record, outcome, self.suite, self.check,
                                                metric_cls.score_params(self.check.params)))

    def _baseline_score(self) -> BaselineScore | None:
        found = self._baseline_entry()
        if found is None or found[1].get("value") is None:
            return None
        name, entry = found
        interval = entry.get("interval")
        return BaselineScore(name, float(entry["value"]),
                             None if not interval else (float(interval["low"]), float(interval["high"])),
                             {str(k): float(v) for k, v in entry.get("per_video", {}).items()})

    def _paired_set_delta(self, policy: GatePolicy, resamples: int) -> PairedDelta | None:
        """The set-level score against the baseline's with the same videos, where the feature cache still has the
        baseline's (engine.paired); otherwise None and the unpaired rules apply."""
        from .engine.paired import paired_set_comparison

        samples = self.result.result.samples if self.result is not None else None
        found = self._baseline_entry()
        if samples is None or found is None:
            return None
        delta, warning = paired_set_comparison(self.context, samples, found[1].get("video_hashes", {}),
                                               self.check.protocol, self.suite.path.parent, policy.bootstrap,
                                               resamples)
        if warning:
            self.record.warnings.append(warning)
        return delta

    def _max_drop(self) -> Tolerance | None:
        setting = self.check.policy.max_drop
        if setting is False:
            return None
        if isinstance(setting, Tolerance):
            return setting
        return self.runtime.registry.get(self.check.metric).default_max_drop

    def runtest(self) -> None:
        assert self.result is not None
        record = self.record
        interval = None if record.interval is None else (float(record.interval["low"]),
                                                         float(record.interval["high"]))
        policy = self.check.policy
        if policy.tolerance is None:
            policy = replace(policy, tolerance=self.runtime.registry.get(self.check.metric).default_tolerance)
        if self.runtime.options.update_baseline:  # accepting this run: report regressions, do not fail them
            policy = replace(policy, warn=True)
        used = len(record.videos_used.get(self.check.sets[-1], []))
        baseline = self._baseline_score()
        scores = record.per_video
        before = {} if baseline is None else baseline.per_video
        record.per_video_baseline = {key: before[key] for key in scores if key in before}
        resamples = policy.bootstrap.resamples or self.result.metric.bootstrap_resamples
        paired = None if baseline is None else paired_delta(scores, before, policy.bootstrap, resamples)
        if baseline is not None and self.result.result.samples is not None:
            try:
                paired = self._paired_set_delta(policy, resamples)
            except (AigveError, ValueError) as exc:  # never a crash of the gate: the unpaired rules still apply
                record.warnings.append(f"not compared paired with the baseline: {exc}")
        failures = per_video_failures(scores, before, self.higher_is_better, policy.per_video,
                                      self._max_drop() if baseline is not None else None)
        gate = evaluate_gate(self.check.metric, self.result.result.value, interval, self.higher_is_better,
                             self.check.threshold, policy, baseline, used, paired, failures)
        if record.baseline_status == "new":
            self._gate_new_check(gate, policy.warn)
        if record.agreement is not None:
            from .agreement import apply_to_gate

            apply_to_gate(gate, record.agreement, policy.warn)
        record.gate = gate.to_dict()
        worst = worst_first(scores, record.per_video_baseline, self.higher_is_better)[:WORST_VIDEOS]
        if self.context.make_thumbnails:
            record.worst_videos = worst_video_strips(self.suite, self.check, self.context.clips, worst)
        record.message = gate.message
        self.user_properties.extend(gate_properties(record, gate))
        if gate.verdict == "fail":
            raise ThresholdFailure(gate.message)
        if gate.verdict == "warn":
            self.warn(AigveGateWarning(f"{self.nodeid}: {gate.message}"))

    def _gate_new_check(self, gate: GateResult, warn_only: bool) -> None:
        """The baseline has no entry for this check: a new check, or a renamed check or suite."""
        baseline = self.runtime.baseline
        assert baseline is not None
        gate.status = "new"
        renamed = self.record.suite_baseline_unmatched
        hint = (f"; entries of this suite no check matched: {', '.join(renamed[:5])}" if renamed else
                f"; the baseline has no entry of suite '{self.suite.name}' (renamed suite?)"
                if not any(k.startswith(score_key(self.suite.name, "")) for k in baseline.scores) else "")
        text = (f"no entry for '{score_key(self.suite.name, self.check.id)}' in baseline {baseline.name}: not "
                f"compared (new check, or a renamed check or suite{hint}); accept it with --aigve-baseline "
                f"{baseline.name} --aigve-update-baseline")
        if self.suite.on_missing_baseline == "error" and not self.runtime.options.update_baseline:
            gate.verdict = "warn" if warn_only else "fail"
            gate.message = f"{gate.message}; {text} (on_missing_baseline: error)"
        else:
            self.record.warnings.append(text)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str | Any:
        if isinstance(excinfo.value, ThresholdFailure):
            sets = ", ".join(f"'{name}' ({self.record.set_sizes[name]} videos)" for name in self.check.sets)
            return printable(f"{self.suite.path.name}:{self.check.line}: {excinfo.value}\n"
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
            if report.passed and record.gate.get("verdict") == "warn":
                record.outcome = "warned"
            if report.failed and not isinstance(getattr(report, "longrepr", None), str) and not record.message:
                record.message = report.longreprtext[-4000:]
        else:
            if report.when == "setup":
                record.timings["setup_s"] = round(report.duration, 4)
            return
        record.timings[f"{report.when}_s"] = round(report.duration, 4)
        setattr(report, RECORD_ATTRIBUTE, record.to_dict())
