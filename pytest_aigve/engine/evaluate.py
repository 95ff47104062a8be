"""Evaluate one check: inputs -> metric -> a checked, final result. Pure core: no pytest here.

The metric's frozen MetricResult is never changed: the engine derives the final one (round-off clipped, the
backbone's feature counts, warnings about weights, decoding and the cache) with dataclasses.replace."""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field, replace

from ..errors import MetricError
from ..files import sha256_file
from ..metrics.base import Metric
from ..metrics.contract import BackboneInfo, MetricResult
from ..report.thumbnails import thumbnails_for
from ..stats import Interval, bootstrap_interval
from ..suite import CheckSpec, Suite
from ..videos.sources import SkippedVideo
from .context import EvalContext
from .inputs import SuiteInputs


@dataclass(frozen=True)
class CheckResult:
    metric: Metric
    result: MetricResult
    videos_used: dict[str, list[str]]
    skipped: list[SkippedVideo]
    resolution: list[str]
    seconds: float
    thumbnails: dict[str, list[dict[str, str]]]
    interval: Interval | None = None
    bootstrap_seconds: float = 0.0
    decode_seconds: float = 0.0  # part of `seconds` spent decoding
    # set -> video label -> what decoding did to its clip ("loop: 3 -> 16 frames", "upsampled: ...")
    video_notes: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    videos_decoded: int = 0


# DecodedClip.notes are "kind: detail"; the one warning per kind on the score starts with these words
NOTE_HEADINGS = {"loop": "short_video loop applied to", "pad": "short_video pad applied to",
                 "upsampled": "fps above the source rate (frames repeated) for"}
NOTES_LISTED = 5


def summarise_notes(video_notes: dict[str, dict[str, list[str]]], multi_set: bool) -> list[str]:
    """One warning per kind of note: "short_video loop applied to 2 videos: a.mp4 (3 -> 16 frames), ..."."""
    by_kind: dict[str, list[str]] = {}
    for set_name, per_video in video_notes.items():
        for label, notes in per_video.items():
            for note in notes:
                kind, _, detail = note.partition(": ")
                by_kind.setdefault(kind, []).append(f"{label} ({set_name}: {detail})" if multi_set
                                                    else f"{label} ({detail})")
    lines = []
    for kind, entries in by_kind.items():
        listed = ", ".join(entries[:NOTES_LISTED])
        if len(entries) > NOTES_LISTED:
            listed += f", and {len(entries) - NOTES_LISTED} more"
        videos = f"{len(entries)} video{'' if len(entries) == 1 else 's'}"
        lines.append(f"{NOTE_HEADINGS.get(kind, kind + ' for')} {videos}: {listed}")
    return lines



def evaluate_check(suite: Suite, check: CheckSpec, ctx: EvalContext, with_interval: bool = True) -> CheckResult:
    """The check's final result; the bootstrap interval only `with_interval` (a gate or a report needs it)."""
    metric = ctx.registry.get(check.metric)(check.params, ctx.device)
    inputs = SuiteInputs(suite, check, ctx)
    started = time.perf_counter()
    try:
        result = metric.evaluate(inputs)
    except MetricError as exc:
        if inputs.skipped and not any(inputs.used.values()):
            listing = "; ".join(f"{s.label}: {s.reason}" for s in inputs.skipped[:5])
            raise MetricError(f"every video was skipped as bad ({listing})") from exc
        raise
    seconds = time.perf_counter() - started
    decodes = inputs.decode_stats.decodes  # this check's own, whatever else decodes in the process
    decode_seconds = inputs.decode_stats.wait_seconds  # the part of `seconds` the check waited for decoding
    if not math.isfinite(result.value):
        raise MetricError(f"{check.metric} produced a non-finite value ({result.value}) from the videos and "
                          "weights of this check; it is never reported as a score (check the inputs and weights, "
                          "and report it if they are sound)")
    details = {**result.details, "videos_decoded": decodes}
    if inputs.text_features_computed or inputs.text_features_cached:  # distinct prompts, encoded or from the cache
        details["text_features_computed"] = inputs.text_features_computed
        details["text_features_cached"] = inputs.text_features_cached
    warnings = list(result.warnings)
    backbone = result.backbone
    if backbone is not None:
        backbone = replace(backbone, features_computed=inputs.features_computed,
                           features_cached=inputs.features_cached)
        if backbone.weights_check.startswith("UNVERIFIED"):
            warnings.append(f"weights {backbone.weights}: {backbone.weights_check}; this score is not comparable "
                            "with scores from the published weights")
    value = _clip_round_off(metric, result.value)
    if value != result.value:
        details["unclipped_value"] = result.value
    differences = metric.protocol_differences(check.protocol.to_dict())
    if differences:
        details["not_reference_protocol"] = (f"not comparable with published {metric.reference_name} numbers: "
                                             f"{'; '.join(differences)}")
    thumbnails = ({name: thumbnails_for(suite.sets[name], check.protocol, ctx.clips, ctx.thumbnails)
                   for name in check.sets} if ctx.make_thumbnails else {name: [] for name in check.sets})
    started = time.perf_counter()
    interval: Interval | None = None
    if not with_interval:
        details["interval"] = "not computed: neither a gate nor a report of this run uses it"
    else:
        key = _interval_key(suite, check, metric, inputs, value, backbone)
        interval = _stored_interval(ctx, key, value)
        problem = None
        if interval is not None:
            details["interval_reused"] = True  # the same videos, protocol, parameters and backbone as a run before
        else:
            interval, problem = _interval(metric, replace(result, value=value), check)
            if interval is not None and key is not None:
                ctx.features.save_record(INTERVALS, key, interval.to_dict())
        if problem is not None and result.resample is None:
            details["interval"] = problem
        elif problem is not None:  # a resampler that failed: say so on the score
            warnings.append(f"no bootstrap interval: {problem}")
    bootstrap_seconds = time.perf_counter() - started
    warnings.extend(summarise_notes(inputs.video_notes, multi_set=len(check.sets) > 1))
    warnings.extend(dict.fromkeys(inputs.cache_warnings))
    final = replace(result, value=value, details=details, warnings=tuple(warnings), backbone=backbone)
    return CheckResult(metric, final, inputs.used, inputs.skipped, sorted(inputs.resolutions), seconds, thumbnails,
                       interval, bootstrap_seconds, decode_seconds, inputs.video_notes, decodes)


ROUND_OFF = 1e-6  # float64 cancellation in a Fréchet distance of identical sets is ~1e-10


def _clip_round_off(metric: Metric, value: float) -> float:
    """A value a hair outside the metric's range (FID of identical sets: -2e-10) is round-off: the value is
    clipped, like its interval, so the two agree (the caller keeps the raw value in the details). Further out is
    a bug."""
    low, high = metric.value_range
    if low is not None and value < low:
        bound = low
    elif high is not None and value > high:
        bound = high
    else:
        return value
    if abs(value - bound) > ROUND_OFF * max(1.0, abs(bound)):
        raise MetricError(f"{metric.name} = {value!r} is outside its range [{low}, {high}]; this is "
                          "not round-off, so it is not reported as a score")
    return float(bound)


# a bootstrap interval is a deterministic function of the videos' bytes, the protocol, the metric's parameters,
# the backbone, the value and the bootstrap settings: stored in the feature cache by a key of all of them, a warm
# re-run of unchanged inputs reuses it instead of recomputing hundreds of resamples (36 s of a 37 s warm FID at
# 100 clips). Bump the format whenever the resampling code changes what it returns.
INTERVALS = "intervals"
INTERVAL_FORMAT = "1"


def _interval_key(suite: Suite, check: CheckSpec, metric: Metric, inputs: SuiteInputs, value: float,
                  backbone: BackboneInfo | None) -> str | None:
    """The interval's cache key, or None when a used video cannot be hashed (it is then computed)."""
    spec = check.policy.bootstrap
    videos: list[tuple[str, str]] = []
    for name in check.sets:
        by_label = {video.label: video for video in suite.sets[name].videos}
        for label in inputs.used[name]:
            video = by_label.get(label)
            if video is None:
                return None
            try:
                videos.append((label, sha256_file(video.path)))
            except OSError:
                return None
    identity = {
        "format": INTERVAL_FORMAT, "metric": check.metric, "params": metric.score_params(check.params),
        "protocol": check.protocol.fingerprint(), "value": repr(value), "videos": videos,
        "backbone": None if backbone is None else [backbone.name, backbone.weights_sha256, backbone.precision,
                                                   backbone.output],
        "bootstrap": [spec.resamples or metric.bootstrap_resamples, spec.level, spec.seed],
        "range": list(metric.value_range),
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


def _stored_interval(ctx: EvalContext, key: str | None, value: float) -> Interval | None:
    """A stored interval for `key` when it is well formed and contains the value; otherwise None."""
    stored = None if key is None else ctx.features.record(INTERVALS, key)
    if stored is None:
        return None
    try:
        interval = Interval(float(stored["low"]), float(stored["high"]), float(stored["level"]),
                            int(stored["resamples"]), int(stored["seed"]))
    except (KeyError, TypeError, ValueError):
        return None
    if not (math.isfinite(interval.low) and math.isfinite(interval.high) and interval.low <= value <= interval.high):
        return None
    return interval


def _interval(metric: Metric, result: MetricResult, check: CheckSpec) -> tuple[Interval | None, str | None]:
    """The bootstrap interval, or None and why not."""
    if result.resample is None:
        return None, result.no_interval or "not computed: this metric cannot be resampled"
    spec = check.policy.bootstrap
    try:
        interval = bootstrap_interval(result.value, result.resample, spec.resamples or metric.bootstrap_resamples,
                                      spec.level, spec.seed)
    except ValueError as exc:
        return None, str(exc)
    low, high = metric.value_range  # e.g. a distance is never negative, however wide its spread
    return replace(interval, low=interval.low if low is None else max(low, interval.low),
                   high=interval.high if high is None else min(high, interval.high)), None


