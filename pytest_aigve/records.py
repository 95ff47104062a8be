"""One record per item: what the JSON, HTML and JUnit reports are made of (plain JSON-safe data), and how a check's
result and verdict fill it and its JUnit properties."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from .baseline import fingerprint
from .files import sha256_file

if TYPE_CHECKING:
    from .engine import CheckResult
    from .gate import GateResult
    from .suite import CheckSpec, Suite

RECORD_ATTRIBUTE = "aigve_record"  # set on pytest reports; travels through xdist with the report


@dataclass
class ItemRecord:
    nodeid: str
    suite: str
    suite_file: str
    check: str
    metric: str
    sets: list[str]
    higher_is_better: bool
    inputs: str  # single | paired | sets
    threshold: dict[str, float | None]
    protocol: dict[str, Any]
    params: dict[str, Any]
    line: int
    outcome: str = "not run"  # passed | warned | failed | error | skipped
    value: float | None = None
    message: str = ""
    set_sizes: dict[str, int] = field(default_factory=dict)
    videos_used: dict[str, list[str]] = field(default_factory=dict)
    videos_skipped: list[dict[str, str]] = field(default_factory=list)
    per_video: dict[str, float] = field(default_factory=dict)
    per_video_baseline: dict[str, float] = field(default_factory=dict)  # the baseline's scores of the same videos
    prompts: dict[str, str] = field(default_factory=dict)  # per video label, where the set has prompts
    # set-level checks: SHA-256 of each candidate video's bytes, by label; a later run compared with this one
    # finds their features in the feature cache by it (paired comparison of set-level scores)
    video_hashes: dict[str, str] = field(default_factory=dict)
    worst_videos: list[dict[str, str]] = field(default_factory=list)  # strips of the worst videos (HTML only)
    details: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    device: str = ""
    decode_workers: int = 0  # processes decoding ahead in the pytest process that computed it
    precision: str = ""
    backbone: dict[str, Any] = field(default_factory=dict)  # network, weights file and SHA-256, input, precision
    resolution: list[str] = field(default_factory=list)
    thumbnails: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    interval: dict[str, float | int] | None = None  # bootstrap interval: low, high, level, resamples, seed
    fingerprint: dict[str, Any] = field(default_factory=dict)  # what must match for a baseline comparison
    fingerprint_diff: list[str] = field(default_factory=list)  # vs. the baseline, when compared anyway
    gate: dict[str, Any] = field(default_factory=dict)  # verdict, status, mode, baseline, delta, tolerance
    # per set, per video label: what the decoder did to it (looped, padded, upsampled)
    video_notes: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    baseline_status: str = ""  # "" (no baseline compared), "matched", or "new" (the baseline has no entry)
    on_missing_baseline: str = "warn"  # the suite's policy for checks and entries that do not match
    suite_baseline_unmatched: list[str] = field(default_factory=list)  # the suite's entries no check matched
    # `agreement:` checks: the scores against human ratings (agreement.agreement_record: ratings, n, direction,
    # coefficients, gate, verdict, message, points, models); None for other checks
    agreement: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def lost_record(nodeid: str, message: str, outcome: str = "error") -> dict[str, Any]:
    """A record for an item whose own record never arrived (its xdist worker crashed): still one row in every
    report, as an error."""
    suite_file, _, check = nodeid.partition("::")
    record = ItemRecord(nodeid=nodeid, suite=suite_file.rsplit("/", 1)[-1], suite_file=suite_file, check=check,
                        metric="?", sets=[], higher_is_better=True, inputs="single", threshold={}, protocol={},
                        params={}, line=0, outcome=outcome, message=message)
    return record.to_dict()


def fill_record(record: ItemRecord, outcome: CheckResult, suite: Suite, check: CheckSpec,
                score_params: dict[str, Any]) -> list[tuple[str, str]]:
    """Fill an item's record from its check's result; returns the JUnit properties of the score."""
    result = outcome.result
    record.value = result.value
    record.per_video = dict(result.per_video)
    record.details = dict(result.details)
    if result.backbone is not None:
        record.backbone = result.backbone.to_dict()
        record.precision = result.backbone.precision
    record.warnings = list(result.warnings)
    record.videos_used = outcome.videos_used
    record.video_notes = outcome.video_notes
    if result.samples is not None:
        candidates = {video.label: video for video in suite.sets[check.sets[-1]].videos}
        record.video_hashes = {label: sha256_file(candidates[label].path)
                               for label in result.samples.candidate if label in candidates}
    videos = [cand for _, cand in check.pairs] + [ref for ref, _ in check.pairs] if check.pairs \
        else [video for name in check.sets for video in suite.sets[name].videos]
    for video in videos:
        if video.prompt and video.label in result.per_video:
            record.prompts.setdefault(video.label, video.prompt)
    record.videos_skipped = [{"video": s.label, "reason": s.reason} for s in outcome.skipped]
    record.resolution = outcome.resolution
    record.thumbnails = outcome.thumbnails
    record.interval = None if outcome.interval is None else outcome.interval.to_dict()
    record.timings.update(compute_s=round(outcome.seconds, 4), bootstrap_s=round(outcome.bootstrap_seconds, 4),
                          decode_s=round(outcome.decode_seconds, 4))
    record.fingerprint = fingerprint(check.metric, score_params, check.protocol.to_dict(), record.backbone or None)
    used = len(outcome.videos_used[check.sets[-1]])  # videos of a one-set check, pairs of a paired one
    properties = [
        ("aigve.metric", check.metric),
        ("aigve.value", repr(result.value)),
        ("aigve.threshold", check.threshold.describe()),
        ("aigve.higher_is_better", str(record.higher_is_better).lower()),
        ("aigve.set_size", str(used)),
        ("aigve.videos_skipped", str(len(outcome.skipped))),
        ("aigve.protocol", json.dumps(check.protocol.to_dict(), sort_keys=True)),
        ("aigve.device", record.device),
        ("aigve.precision", record.precision),
    ]
    if record.backbone:
        properties += [("aigve.backbone", record.backbone["name"]),
                       ("aigve.weights_sha256", record.backbone["weights_sha256"])]
        if record.backbone.get("licence"):
            properties.append(("aigve.weights_licence", record.backbone["licence"]))
    properties += [("aigve.warning", warning) for warning in record.warnings]
    return properties


def gate_properties(record: ItemRecord, gate: GateResult) -> list[tuple[str, str]]:
    """The JUnit properties of a check's verdict."""
    interval = record.interval
    properties = [
        ("aigve.verdict", gate.verdict), ("aigve.status", gate.status), ("aigve.gate_mode", gate.mode),
        ("aigve.interval", "" if interval is None else f"[{interval['low']!r}, {interval['high']!r}] "
                                                      f"@{interval['level']}"),
    ]
    if gate.baseline is not None:
        properties += [
            ("aigve.baseline", gate.baseline.name), ("aigve.baseline_value", repr(gate.baseline.value)),
            ("aigve.delta", repr(gate.delta)),
            ("aigve.delta_pct", "" if gate.delta_pct is None else f"{gate.delta_pct:.4g}"),
            ("aigve.tolerance", gate.tolerance),
        ]
    return properties
