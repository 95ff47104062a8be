"""Per-process state built on first use, so a pytest run without suites never imports torch."""

from __future__ import annotations

import os
from functools import cached_property
from typing import TYPE_CHECKING

import pytest

from .baseline import Baseline, load_baseline
from .errors import AigveError
from .options import AigveOptions

if TYPE_CHECKING:
    from .metrics.registry import MetricRegistry
    from .runner import EvalContext


def resolve_device(requested: str) -> str:
    import torch

    if requested == "cpu":
        return "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise AigveError(f"--aigve-device {requested}: CUDA is not available on this machine; use cpu or auto")
    if requested == "auto":
        if not torch.cuda.is_available():
            return "cpu"
        # one GPU per xdist worker, indexing into the visible devices
        worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
        index = int(worker[2:]) if worker[2:].isdigit() else 0
        return f"cuda:{index % torch.cuda.device_count()}"
    return requested


class AigveRuntime:
    def __init__(self, config: pytest.Config, options: AigveOptions) -> None:
        self.config = config
        self.options = options
        self.baseline: Baseline | None = None
        if options.baseline_path is not None and not (options.update_baseline and
                                                      not options.baseline_path.exists()):
            try:
                self.baseline = load_baseline(options.baseline_path)
            except AigveError as exc:
                raise pytest.UsageError(f"--aigve-baseline: {exc}") from None

    @cached_property
    def registry(self) -> MetricRegistry:
        from .metrics.registry import MetricRegistry

        registry = MetricRegistry()
        self.config.hook.pytest_aigve_register_metrics(registry=registry)
        return registry

    @cached_property
    def context(self) -> EvalContext:
        import torch

        from .runner import EvalContext
        from .videos.cache import ClipCache

        device = torch.device(resolve_device(self.options.device))
        if device.type == "cuda":
            # comparability first: no TF32 in convolutions or matmuls
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
        return EvalContext(device=device, clips=ClipCache(self.options.clip_cache_bytes), registry=self.registry,
                           progress=self._progress, make_thumbnails=self.options.html_path is not None,
                           weights_dir=self.options.weights_dir,
                           allow_unverified_weights=self.options.allow_unverified_weights,
                           feature_cache_dir=self.options.feature_cache_dir)

    def _progress(self, message: str, final: bool, elapsed: float) -> None:
        """-vv: a line per video; otherwise a line when a check's videos took long (-v: 2 s, default: 10 s)."""
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        verbosity = self.config.get_verbosity()
        if reporter is None or verbosity < 0:
            return
        if verbosity >= 2 or (final and elapsed > (2.0 if verbosity == 1 else 10.0)):
            reporter.write_line(f"  aigve: {message} ({elapsed:.1f} s)")
