"""Typed parameter declarations and the one set of validators metrics use.

A validator returns the normalised value or raises ValueError(reason); Metric.validate_params turns that into an
error naming the parameter, the suite line and the parameter's help. `affects_score=False` marks parameters that
cannot change a score (batch size, an explicit weights path whose hash is recorded anyway): the baseline
fingerprint leaves them out, so changing them never blocks a comparison.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class ParamSpec(Generic[T]):
    default: T
    check: Callable[[Any], T]  # returns the normalised value or raises ValueError(reason)
    help: str
    affects_score: bool = True


def positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"must be a positive integer, got {value!r}")
    return value


def nonnegative_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"must be an integer >= 0, got {value!r}")
    return value


def positive_float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"must be a positive number, got {value!r}")
    return float(value)


def file_path(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ValueError(f"must be a file path, got {value!r}")
    return value


def choice(*allowed: str) -> Callable[[Any], str]:
    """A validator accepting one of `allowed` (strings)."""

    def check(value: Any) -> str:
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}, got {value!r}")
        return str(value)

    return check


def optional(check: Callable[[Any], T]) -> Callable[[Any], T | None]:
    """`check`, or None for a missing value."""

    def maybe(value: Any) -> T | None:
        return None if value is None else check(value)

    return maybe
