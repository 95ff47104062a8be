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


@dataclass(frozen=True)
class Verdict:
    passed: bool
    message: str


def format_value(value: float) -> str:
    return f"{value:.6g}"


def check_threshold(metric: str, value: float, threshold: Threshold, higher_is_better: bool) -> Verdict:
    if not math.isfinite(value):
        return Verdict(False, f"{metric} = {value}, which is not a finite number")
    direction = "higher is better" if higher_is_better else "lower is better"
    shown = f"{metric} = {format_value(value)}"
    if threshold.min is not None and value < threshold.min:
        return Verdict(False, f"{shown}, expected {threshold.describe()} ({direction})")
    if threshold.max is not None and value > threshold.max:
        return Verdict(False, f"{shown}, expected {threshold.describe()} ({direction})")
    return Verdict(True, f"{shown}, threshold {threshold.describe()}")
