"""The one place metrics are registered: name -> "module:Class", imported when first used."""

from __future__ import annotations

import importlib
from collections.abc import Iterable

from ..errors import AigveError
from .base import Metric

BUILTIN_METRICS: dict[str, str] = {
    "flicker": "pytest_aigve.metrics.flicker:TemporalFlicker",
    "psnr": "pytest_aigve.metrics.psnr:PSNR",
    "ssim": "pytest_aigve.metrics.ssim:SSIM",
    "fid": "pytest_aigve.metrics.fid:FID",
    "kid": "pytest_aigve.metrics.kid:KID",
    "is": "pytest_aigve.metrics.inception_score:InceptionScore",
    "fvd": "pytest_aigve.metrics.fvd:FVD",
    "fvd_r3d18": "pytest_aigve.metrics.fvd_r3d18:FVDR3D18",
    "cd_fvd": "pytest_aigve.metrics.cd_fvd:CDFVD",
}


class MetricRegistry:
    def __init__(self, entries: Iterable[tuple[str, str | type[Metric]]] = BUILTIN_METRICS.items()) -> None:
        self._targets: dict[str, str | type[Metric]] = dict(entries)

    def register(self, name: str, target: str | type[Metric]) -> None:
        """Add a metric by class or by "module:Class" path (for third-party plugins)."""
        if name in self._targets and self._targets[name] != target:
            raise AigveError(f"metric '{name}' is already registered as {self._targets[name]!r}")
        self._targets[name] = target

    def names(self) -> list[str]:
        return sorted(self._targets)

    def __contains__(self, name: object) -> bool:
        return name in self._targets

    def get(self, name: str) -> type[Metric]:
        target = self._targets.get(name)
        if target is None:
            raise AigveError(f"unknown metric '{name}'; known: {', '.join(self.names())}")
        if isinstance(target, str):
            module_name, _, class_name = target.partition(":")
            target = getattr(importlib.import_module(module_name), class_name)
            self._targets[name] = target
        assert isinstance(target, type) and issubclass(target, Metric), f"{name} is not a Metric: {target!r}"
        return target
