"""Thresholds and verdicts; pure functions, no pytest."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np


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


GateMode = Literal["auto", "point", "interval", "paired"]
GATE_MODES: tuple[GateMode, ...] = ("auto", "point", "interval", "paired")
MIN_SHARED_VIDEOS = 2  # a paired comparison needs at least this many videos present in both runs


@dataclass(frozen=True)
class Tolerance:
    """An allowed change against a baseline: absolute, relative to the baseline (pct), or both (the stricter)."""

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

    def describe_for(self, baseline: float) -> str:
        """What the tolerance means at this baseline: '0.5', '2% = 0.6', 'stricter of 0.5 and 2% = 0.5'."""
        if self.abs is None and self.pct is None:
            return "0"
        if self.pct is None:
            return f"{self.abs:g}"
        effective = f"{self.allowed(baseline):.4g}"
        if self.abs is None:
            return f"{self.pct:g}% = {effective}"
        return f"stricter of {self.abs:g} and {self.pct:g}% = {effective}"


@dataclass(frozen=True)
class BootstrapSpec:
    resamples: int | None = None  # None: the metric's default (1000 per-video scores, 200 set-level)
    level: float = 0.95
    seed: int = 0


@dataclass(frozen=True)
class PerVideoBounds:
    """No single video may score outside [min, max]."""

    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class GatePolicy:
    tolerance: Tolerance | None = None  # None: the metric's default tolerance (0 where it has none)
    mode: GateMode = "auto"  # auto: paired when the baseline shares videos, else interval for small sets, else point
    bootstrap: BootstrapSpec = BootstrapSpec()
    warn: bool = False  # a failing check warns instead of failing
    small_set: int = 50
    per_video: PerVideoBounds = PerVideoBounds()
    # no video worse than its own baseline score by more than this; None: the metric's default; False: off
    max_drop: Tolerance | bool | None = None


@dataclass(frozen=True)
class BaselineScore:
    name: str
    value: float
    interval: tuple[float, float] | None = None
    per_video: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class PairedDelta:
    """Δ = run − baseline over the videos both runs scored (same keys), with a seeded paired bootstrap interval
    of the mean Δ (keys resampled jointly, so video-to-video spread cancels)."""

    mean: float
    low: float
    high: float
    shared: int
    level: float

    def to_dict(self) -> dict[str, float | int]:
        return {"mean": self.mean, "low": self.low, "high": self.high, "shared": self.shared, "level": self.level}


def paired_delta(scores: dict[str, float], baseline: dict[str, float], spec: BootstrapSpec,
                 resamples: int) -> PairedDelta | None:
    shared = [key for key in scores if key in baseline]
    if len(shared) < MIN_SHARED_VIDEOS:
        return None
    deltas = np.array([scores[key] - baseline[key] for key in shared], dtype=np.float64)
    rng = np.random.default_rng(spec.seed)
    picks = rng.integers(0, deltas.size, size=(resamples, deltas.size))
    means = deltas[picks].mean(axis=1)
    tail = (1.0 - spec.level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    mean = float(deltas.mean())
    return PairedDelta(mean, float(min(low, mean)), float(max(high, mean)), len(shared), spec.level)


@dataclass(frozen=True)
class VideoFailure:
    video: str
    value: float
    baseline: float | None
    reason: str

    def to_dict(self) -> dict[str, object]:
        return {"video": self.video, "value": self.value, "baseline": self.baseline, "reason": self.reason}


def per_video_failures(scores: dict[str, float], baseline: dict[str, float], higher_is_better: bool,
                       bounds: PerVideoBounds, max_drop: Tolerance | None) -> list[VideoFailure]:
    """Videos below the per-video min, above its max, or worse than their own baseline score by more than
    max_drop; worst first."""
    found: list[tuple[float, VideoFailure]] = []
    sign = 1.0 if higher_is_better else -1.0
    for key, value in scores.items():
        if bounds.min is not None and value < bounds.min:
            found.append((value - bounds.min, VideoFailure(key, value, baseline.get(key),
                                                           f"below the per-video min {bounds.min:g}")))
        elif bounds.max is not None and value > bounds.max:
            found.append((bounds.max - value, VideoFailure(key, value, baseline.get(key),
                                                           f"above the per-video max {bounds.max:g}")))
        elif max_drop is not None and key in baseline:
            drop = sign * (baseline[key] - value)  # > 0: worse than its baseline score
            if drop > max_drop.allowed(baseline[key]):
                found.append((-drop, VideoFailure(key, value, baseline[key],
                                                  f"{'dropped' if higher_is_better else 'rose'} "
                                                  f"{abs(value - baseline[key]):.4g} from {format_value(baseline[key])}"
                                                  f" (max_drop {max_drop.describe_for(baseline[key])})")))
    return [failure for _, failure in sorted(found, key=lambda pair: pair[0])]


@dataclass
class GateResult:
    verdict: str  # pass | fail | warn
    status: str  # improved | within tolerance | within noise | regressed | no baseline | new
    mode: str  # point | interval | paired (what was used)
    message: str
    baseline: BaselineScore | None = None
    delta: float | None = None
    delta_pct: float | None = None
    bound: float | None = None
    tolerance: str = "0"
    paired: PairedDelta | None = None
    videos_failed: list[VideoFailure] = field(default_factory=list)
    advice: str = ""  # what to do next: accept a regression, refresh the baseline after an improvement

    def to_dict(self) -> dict[str, object]:
        return {"verdict": self.verdict, "status": self.status, "mode": self.mode, "message": self.message,
                "baseline": None if self.baseline is None else self.baseline.name,
                "baseline_value": None if self.baseline is None else self.baseline.value,
                "baseline_interval": None if self.baseline is None or self.baseline.interval is None
                else list(self.baseline.interval),
                "delta": self.delta, "delta_pct": self.delta_pct, "bound": self.bound, "tolerance": self.tolerance,
                "paired": None if self.paired is None else self.paired.to_dict(),
                "videos_failed": [failure.to_dict() for failure in self.videos_failed], "advice": self.advice}


def _mode(policy: GatePolicy, interval: tuple[float, float] | None, set_size: int, paired: PairedDelta | None) -> str:
    mode = policy.mode
    if mode == "auto":
        if paired is not None:
            return "paired"
        mode = "interval" if set_size < policy.small_set else "point"
    if mode == "paired" and paired is None:
        mode = "interval"  # no shared videos: the unpaired interval is what is left
    return "point" if mode == "interval" and interval is None else mode


def _change_range(mode: str, value: float, interval: tuple[float, float] | None, baseline: BaselineScore,
                  paired: PairedDelta | None) -> tuple[float, float]:
    """The range of run − baseline the gate judges: a point, the run's interval shifted, or the paired interval."""
    if mode == "paired" and paired is not None:
        return paired.low, paired.high
    if mode == "interval" and interval is not None:
        return interval[0] - baseline.value, interval[1] - baseline.value
    return value - baseline.value, value - baseline.value


def evaluate_gate(metric: str, value: float, interval: tuple[float, float] | None, higher_is_better: bool,
                  threshold: Threshold, policy: GatePolicy, baseline: BaselineScore | None,
                  set_size: int, paired: PairedDelta | None = None,
                  videos_failed: list[VideoFailure] | None = None) -> GateResult:
    """Absolute bounds, the baseline comparison and the per-video gates.

    The change against the baseline is judged on one range (a point, the interval, or the paired interval of
    Δ), the same way in both directions: regressed when the whole range is worse than the tolerance allows,
    improved when the whole range is better by more than it, otherwise within tolerance (or within noise,
    when the point value alone would have failed).
    """
    if not math.isfinite(value):
        return GateResult("fail", "no baseline", "point", f"{metric} = {value}, which is not a finite number")
    mode = _mode(policy, interval, set_size, paired if baseline is not None else None)
    low, high = interval if (mode in ("interval", "paired") and interval is not None) else (value, value)
    shown = f"{metric} = {format_value(value)}" + (f" [{format_value(low)}, {format_value(high)}]"
                                                   if mode == "interval" else "")
    problems: list[str] = []
    if threshold.min is not None and high < threshold.min:
        problems.append(f"expected >= {threshold.min:g}")
    if threshold.max is not None and low > threshold.max:
        problems.append(f"expected <= {threshold.max:g}")
    result = GateResult("pass", "no baseline", mode, "", tolerance=(policy.tolerance or Tolerance()).describe())
    if baseline is not None:
        _compare(result, metric, value, interval, higher_is_better, policy, baseline, paired, problems)
    failures = videos_failed or []
    if failures:
        result.videos_failed = failures
        listing = "; ".join(f"{f.video} = {format_value(f.value)} ({f.reason})" for f in failures[:5])
        more = f"; and {len(failures) - 5} more" if len(failures) > 5 else ""
        problems.append(f"{len(failures)} video(s) failed the per-video gate: {listing}{more}")
        if baseline is not None and result.status != "regressed":
            result.advice = (f"look at these videos in the HTML report; if the change is intended, accept it: "
                             f"--aigve-baseline {baseline.name} --aigve-update-baseline")
    direction = "higher is better" if higher_is_better else "lower is better"
    if problems:
        result.verdict = "warn" if policy.warn else "fail"
        result.message = f"{shown}, {'; '.join(problems)} ({direction}, {mode} gate)"
    else:
        context = "" if baseline is None else (f", baseline {baseline.name}: {format_value(baseline.value)} "
                                               f"({result.delta:+.4g}, {result.status})")
        result.message = f"{shown}, threshold {threshold.describe()}{context}"
    return result


def _compare(result: GateResult, metric: str, value: float, interval: tuple[float, float] | None,
             higher_is_better: bool, policy: GatePolicy, baseline: BaselineScore, paired: PairedDelta | None,
             problems: list[str]) -> None:
    result.baseline = baseline
    result.paired = paired
    result.delta = value - baseline.value
    result.delta_pct = None if baseline.value == 0 else 100 * result.delta / abs(baseline.value)
    tolerance = policy.tolerance or Tolerance()
    allowed = tolerance.allowed(baseline.value)
    result.tolerance = tolerance.describe_for(baseline.value)
    sign = 1.0 if higher_is_better else -1.0
    result.bound = baseline.value - sign * allowed
    change_low, change_high = _change_range(result.mode, value, interval, baseline, paired)
    gain_low, gain_high = sorted((sign * change_low, sign * change_high))
    if gain_high < -allowed:
        result.status = "regressed"
        pct = "" if result.delta_pct is None else f", {result.delta_pct:+.1f}%"
        judged = "" if result.mode != "paired" or paired is None else (
            f"; paired over {paired.shared} videos: mean Δ {paired.mean:+.4g} "
            f"[{paired.low:+.4g}, {paired.high:+.4g}] @{paired.level:g}")
        problems.append(f"regressed from baseline {baseline.name}: {format_value(baseline.value)} "
                        f"({result.delta:+.4g}{pct}; allowed {result.tolerance}{judged})")
        result.advice = (f"if this change is intended, accept it: --aigve-baseline {baseline.name} "
                         "--aigve-update-baseline")
    elif gain_low > allowed or (allowed == 0 and gain_low > 0):
        result.status = "improved"
        result.advice = (f"improved beyond the tolerance: refresh the baseline with --aigve-baseline "
                         f"{baseline.name} --aigve-update-baseline")
    elif sign * (value - result.bound) < 0:
        result.status = "within noise"  # the point value is past the bound, the judged range is not
    else:
        result.status = "within tolerance"


def worst_first(scores: dict[str, float], baseline: dict[str, float], higher_is_better: bool) -> list[str]:
    """Video keys ordered worst first: by the change against their own baseline score where there is one
    (videos without one after), else by score."""
    sign = 1.0 if higher_is_better else -1.0
    if baseline:
        changed = sorted((key for key in scores if key in baseline), key=lambda k: sign * (scores[k] - baseline[k]))
        rest = sorted((key for key in scores if key not in baseline), key=lambda k: sign * scores[k])
        return changed + rest
    return sorted(scores, key=lambda key: sign * scores[key])
