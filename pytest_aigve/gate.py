"""Thresholds and verdicts; pure functions, no pytest."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Threshold:
    min: float | None = None
    max: float | None = None

    def describe(self) -> str:
        if self.min is not None and self.max is not None:
            return f"in [{self.min:g}, {self.max:g}]"
        if self.min is not None:
            return f">= {self.min:g}"
        if self.max is not None:
            return f"<= {self.max:g}"
        return "none (recorded only)"

    def to_dict(self) -> dict[str, float | None]:
        return {"min": self.min, "max": self.max}


def format_value(value: float) -> str:
    return f"{value:.6g}"


GATE_MODES = ("auto", "point", "interval")


@dataclass(frozen=True)
class Tolerance:
    """Allowed regression against a baseline, in the metric's worse direction only."""

    abs: float | None = None
    pct: float | None = None

    def allowed(self, baseline: float) -> float:
        """The allowed amount: with both set, the stricter (a regression fails if it breaks either)."""
        amounts = [a for a in (self.abs, None if self.pct is None else abs(baseline) * self.pct / 100) if a is not None]
        return min(amounts) if amounts else 0.0

    def describe(self) -> str:
        parts = ([f"{self.abs:g}"] if self.abs is not None else []) + ([f"{self.pct:g}%"] if self.pct is not None
                                                                        else [])
        return " and ".join(parts) if parts else "0"


@dataclass(frozen=True)
class BootstrapSpec:
    resamples: int | None = None  # None: the metric's default (1000 per-video scores, 200 set-level)
    level: float = 0.95
    seed: int = 0


@dataclass(frozen=True)
class GatePolicy:
    tolerance: Tolerance = Tolerance()
    mode: str = "auto"  # auto: interval for sets smaller than small_set videos, else point
    bootstrap: BootstrapSpec = BootstrapSpec()
    warn: bool = False  # a failing check warns instead of failing
    small_set: int = 50


@dataclass(frozen=True)
class BaselineScore:
    name: str
    value: float
    interval: tuple[float, float] | None = None


@dataclass
class GateResult:
    verdict: str  # pass | fail | warn
    status: str  # improved | within tolerance | within noise | regressed | no baseline
    mode: str  # point | interval (what was used)
    message: str
    baseline: BaselineScore | None = None
    delta: float | None = None
    delta_pct: float | None = None
    bound: float | None = None
    tolerance: str = "0"

    def to_dict(self) -> dict[str, object]:
        return {"verdict": self.verdict, "status": self.status, "mode": self.mode, "message": self.message,
                "baseline": None if self.baseline is None else self.baseline.name,
                "baseline_value": None if self.baseline is None else self.baseline.value,
                "baseline_interval": None if self.baseline is None or self.baseline.interval is None
                else list(self.baseline.interval),
                "delta": self.delta, "delta_pct": self.delta_pct, "bound": self.bound, "tolerance": self.tolerance}


def _mode(policy: GatePolicy, interval: tuple[float, float] | None, set_size: int) -> str:
    mode = policy.mode
    if mode == "auto":
        mode = "interval" if set_size < policy.small_set else "point"
    return "point" if interval is None else mode


def evaluate_gate(metric: str, value: float, interval: tuple[float, float] | None, higher_is_better: bool,
                  threshold: Threshold, policy: GatePolicy, baseline: BaselineScore | None,
                  set_size: int) -> GateResult:
    """Absolute bounds and the baseline comparison, in point or interval mode.

    Interval mode fails only when the whole interval is on the wrong side of a bound; point mode compares
    the value. Improvements never fail.
    """
    if not math.isfinite(value):
        return GateResult("fail", "no baseline", "point", f"{metric} = {value}, which is not a finite number")
    mode = _mode(policy, interval, set_size)
    low, high = interval if (mode == "interval" and interval is not None) else (value, value)
    shown = f"{metric} = {format_value(value)}" + (f" [{format_value(low)}, {format_value(high)}]"
                                                   if mode == "interval" else "")
    problems: list[str] = []
    if threshold.min is not None and high < threshold.min:
        problems.append(f"expected >= {threshold.min:g}")
    if threshold.max is not None and low > threshold.max:
        problems.append(f"expected <= {threshold.max:g}")
    result = GateResult("pass", "no baseline", mode, "", tolerance=policy.tolerance.describe())
    if baseline is not None:
        result.baseline = baseline
        result.delta = value - baseline.value
        result.delta_pct = None if baseline.value == 0 else 100 * result.delta / abs(baseline.value)
        allowed = policy.tolerance.allowed(baseline.value)
        sign = 1.0 if higher_is_better else -1.0
        result.bound = baseline.value - sign * allowed
        best_end = high if higher_is_better else low
        gain = sign * result.delta
        if sign * (best_end - result.bound) < 0:
            result.status = "regressed"
            pct = "" if result.delta_pct is None else f", {result.delta_pct:+.1f}%"
            problems.append(f"regressed from baseline {baseline.name}: {format_value(baseline.value)} "
                            f"({result.delta:+.4g}{pct}; allowed {policy.tolerance.describe()})")
        elif gain > allowed or (allowed == 0 and gain > 0):
            result.status = "improved"
        elif sign * (value - result.bound) < 0:
            result.status = "within noise"  # the value is past the bound, its interval is not
        else:
            result.status = "within tolerance"
    direction = "higher is better" if higher_is_better else "lower is better"
    if problems:
        result.verdict = "warn" if policy.warn else "fail"
        result.message = f"{shown}, {'; '.join(problems)} ({direction}, {mode} gate)"
    else:
        context = "" if baseline is None else (f", baseline {baseline.name}: {format_value(baseline.value)} "
                                               f"({result.delta:+.4g}, {result.status})")
        result.message = f"{shown}, threshold {threshold.describe()}{context}"
    return result
