"""One record per item: what the JSON, HTML and JUnit reports are made of. Plain JSON-safe data."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

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
