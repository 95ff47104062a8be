"""A set-level score against its baseline with the same videos: the baseline run's candidate features are found
in the feature cache by the content hashes the baseline kept, and the paired bootstrap draws the same videos on
both sides. Without them (another machine, a cleared cache) there is no paired comparison: the unpaired rules
apply, with a warning saying why."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ..gate import MIN_SHARED_VIDEOS, BootstrapSpec, PairedDelta
from ..metrics.contract import SetSamples
from ..protocol import ClipProtocol
from ..stats import paired_set_delta
from .context import EvalContext

# above this feature width, with more samples than dimensions, an exact resample costs a full eigendecomposition
# (as for the interval): no paired comparison there
EXACT_RESAMPLE_MAX_DIM = 1024


def paired_set_comparison(ctx: EvalContext, samples: SetSamples, baseline_hashes: Mapping[str, str],
                          protocol: ClipProtocol, suite_dir: Path, bootstrap: BootstrapSpec,
                          resamples: int) -> tuple[PairedDelta | None, str | None]:
    """(the paired delta, None), or (None, a warning) when the baseline's features are not in the cache, or
    (None, None) when there is nothing to pair (too few shared videos, or too costly to resample exactly)."""
    shared = [label for label in samples.candidate if label in baseline_hashes]
    if len(shared) < MIN_SHARED_VIDEOS:
        return None, None
    backbone = ctx.backbone(samples.request, suite_dir)
    columns = backbone.output_columns(samples.request.output)
    before = {}
    for label in shared:
        raw = ctx.features.cached(baseline_hashes[label], protocol, backbone)
        if raw is not None:
            before[label] = raw[:, columns] if raw.ndim == 2 else raw[None, columns]
    if len(before) < MIN_SHARED_VIDEOS:
        return None, (f"not compared paired with the baseline: the features of its candidate videos are not in "
                      f"the feature cache ({len(before)} of {len(shared)} found); the unpaired interval is used. "
                      "Keep the feature cache between CI runs to compare paired")
    keys = [label for label in shared if label in before]
    rows = max(sum(len(block) for block in samples.reference), sum(len(samples.candidate[k]) for k in keys))
    if rows > samples.reference[0].shape[1] > EXACT_RESAMPLE_MAX_DIM:
        return None, None
    delta = paired_set_delta(samples.reference, [samples.candidate[k] for k in keys], [before[k] for k in keys],
                             samples.statistic, resamples, bootstrap.level, bootstrap.seed)
    return PairedDelta(delta.mean, delta.low, delta.high, delta.shared, delta.level), None
