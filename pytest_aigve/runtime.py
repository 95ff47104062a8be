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
    from .engine import EvalContext
    from .metrics.registry import MetricRegistry
    from .suite import CheckSpec


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
        """Metrics and backbones: the built-in ones and what plugins register through the hooks."""
        from .features.registry import BackboneRegistry
        from .metrics.registry import MetricRegistry

        backbones = BackboneRegistry()
        self.config.hook.pytest_aigve_register_backbones(registry=backbones)
        registry = MetricRegistry(backbones=backbones)
        self.config.hook.pytest_aigve_register_metrics(registry=registry)
        return registry

    @cached_property
    def device_type(self) -> str:
        """cpu or cuda: what suite loading checks precisions against. A bad --aigve-device is a usage error."""
        try:
            return resolve_device(self.options.device).split(":")[0]
        except AigveError as exc:
            raise pytest.UsageError(str(exc)) from None

    def needs_interval(self, check: CheckSpec) -> bool:
        """The bootstrap interval costs up to a recomputation per resample: made only where the gate may use it
        (interval or auto mode) or something this run writes shows it (reports, a saved baseline)."""
        options = self.options
        writes = (options.json_path, options.html_path, options.markdown_path, options.save_baseline_path)
        return check.policy.mode in ("auto", "interval") or any(path is not None for path in writes)

    @cached_property
    def context(self) -> EvalContext:
        import torch

        from .engine import EvalContext
        from .videos.cache import ClipCache
        from .videos.pipeline import default_decode_workers, make_source

        device = torch.device(resolve_device(self.options.device))
        if device.type == "cuda":
            # comparability first: no TF32 in convolutions or matmuls
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
        workers = self.options.decode_workers or default_decode_workers()
        return EvalContext(device=device, clips=ClipCache(self.options.clip_cache_bytes, make_source(workers)),
                           registry=self.registry, decode_workers=workers,
                           progress=self._progress, make_thumbnails=self.options.html_path is not None,
                           weights_dir=self.options.weights_dir,
                           allow_unverified_weights=self.options.allow_unverified_weights,
                           feature_cache_dir=self.options.feature_cache_dir,
                           weights_dir_source=self.options.weights_dir_source,
                           rehash_weights=self.options.rehash_weights, weights_memo_dir=self.options.weights_memo_dir)

    def _progress(self, message: str, final: bool, elapsed: float) -> None:
        """-vv: a line per video; otherwise a line when a check's videos took long (-v: 2 s, default: 10 s)."""
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        verbosity = self.config.get_verbosity()
        if reporter is None or verbosity < 0:
            return
        if verbosity >= 2 or (final and elapsed > (2.0 if verbosity == 1 else 10.0)):
            reporter.write_line(f"  aigve: {message} ({elapsed:.1f} s)")
