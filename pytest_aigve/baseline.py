"""Baselines: the scores of an accepted run, as one JSON file per baseline, and protocol fingerprints.

A baseline file holds, per score (`<suite>::<check>`): the value, its bootstrap interval, the set sizes,
the metric's direction and the fingerprint of everything that produced it (metric, parameters, clip
protocol, backbone and weights hash, precision), plus the environment of the run that saved it.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import math
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import AigveError
from .files import write_atomic

BASELINE_SCHEMA = "pytest-aigve/baseline/1"
DEFAULT_BASELINE_DIR = ".aigve/baselines"


def score_key(suite: str, check: str) -> str:
    return f"{suite}::{check}"


def fingerprint(metric: str, score_params: dict[str, Any], protocol: dict[str, Any],
                backbone: dict[str, Any] | None) -> dict[str, Any]:
    """What must match for two scores to be compared: the metric, the parameters that can change a score (the
    metric's `score_params`: batch size and an explicit weights path are left out, the weights hash is in the
    backbone), the protocol and the backbone."""
    data: dict[str, Any] = {"metric": metric,
                            "params": dict(sorted(score_params.items())),
                            "protocol": dict(sorted(protocol.items()))}
    if backbone:
        data["backbone"] = {k: backbone.get(k) for k in ("name", "weights_sha256", "precision")}
    return data


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        flat: dict[str, Any] = {}
        for key, value in data.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): data}


def fingerprint_diff(baseline: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """'protocol.fps: 8.0 -> 6.0' for every field that differs."""
    old, new = _flatten(baseline), _flatten(current)
    return [f"{key}: {old.get(key, '(absent)')!s} -> {new.get(key, '(absent)')!s}"
            for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]


@dataclass
class Baseline:
    name: str
    path: Path
    created: str = ""
    environment: dict[str, Any] = field(default_factory=dict)
    scores: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"schema": BASELINE_SCHEMA, "name": self.name, "created": self.created,
                           "environment": self.environment, "scores": self.scores},
                          indent=2, sort_keys=False, allow_nan=False) + "\n"


def resolve_baseline_path(name_or_path: str, folder: Path, invocation_dir: Path) -> Path:
    """A path to an existing file, else <folder>/<name>.json."""
    candidate = invocation_dir / name_or_path
    if name_or_path.endswith(".json") or candidate.is_file():
        return candidate
    return folder / f"{name_or_path}.json"


def load_baseline(path: Path) -> Baseline:
    if not path.is_file():
        known = sorted(p.stem for p in path.parent.glob("*.json")) if path.parent.is_dir() else []
        raise AigveError(f"baseline not found: {path} (baselines in {path.parent}: {', '.join(known) or 'none'}); "
                         "save one with --aigve-save-baseline NAME")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AigveError(f"baseline {path} is not valid JSON ({exc}); restore it from version control or save "
                         "it again") from None
    if not isinstance(data, dict) or data.get("schema") != BASELINE_SCHEMA or not isinstance(data.get("scores"),
                                                                                              dict):
        raise AigveError(f"baseline {path} is not a pytest-aigve baseline (expected schema {BASELINE_SCHEMA})")
    for key, entry in data["scores"].items():
        problem = entry_problem(entry)
        if problem:
            raise AigveError(f"baseline {path}: entry '{key}': {problem}; save the baseline again "
                             "(--aigve-save-baseline) or restore the file from version control")
    environment = data.get("environment", {})
    return Baseline(str(data.get("name", path.stem)), path, str(data.get("created", "")),
                    dict(environment) if isinstance(environment, dict) else {}, dict(data["scores"]))


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def entry_problem(entry: Any) -> str | None:
    """What is wrong with one baseline entry (NaN, a missing field, a wrong type), or None."""
    if not isinstance(entry, dict):
        return f"expected a mapping, found {type(entry).__name__}"
    if entry.get("value") is not None and not _finite(entry["value"]):
        return f"'value' must be a finite number, found {entry['value']!r}"
    interval = entry.get("interval")
    if interval is not None and (not isinstance(interval, dict) or not all(
            _finite(interval.get(end)) for end in ("low", "high")) or interval["low"] > interval["high"]):
        return f"'interval' must be {{low, high}} with finite low <= high, found {interval!r}"
    if not isinstance(entry.get("fingerprint", {}), dict):
        return f"'fingerprint' must be a mapping, found {entry['fingerprint']!r}"
    per_video = entry.get("per_video", {})
    if not isinstance(per_video, dict) or not all(_finite(v) for v in per_video.values()):
        return "'per_video' must map video keys to finite numbers"
    hashes = entry.get("video_hashes", {})
    if not isinstance(hashes, dict) or not all(isinstance(v, str) and len(v) == 64 for v in hashes.values()):
        return "'video_hashes' must map video keys to SHA-256 hex digests"
    return None


def git_commit(folder: Path) -> str | None:
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True,
                              timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def entry_from_record(record: dict[str, Any]) -> dict[str, Any]:
    return {"value": record["value"], "interval": record.get("interval"), "set_sizes": record["set_sizes"],
            "metric": record["metric"], "higher_is_better": record["higher_is_better"],
            "fingerprint": record["fingerprint"],
            # per-video scores by video label (the pairing key's file name): what paired gates compare
            "per_video": record.get("per_video", {}),
            "video_hashes": record.get("video_hashes", {})}


HISTORY_DIR = "history"  # <baseline folder>/history/<name>/<UTC timestamp>.json: earlier versions of a baseline
HISTORY_KEEP = 20  # versions kept per baseline name; the oldest are deleted beyond this
_HISTORY_NAME = re.compile(r"^(\d{8}T\d{6}Z)(?:-(\d+))?\.json$")


def history_dir(path: Path) -> Path:
    """Where earlier versions of the baseline file `path` are kept: next to it, so that a CI cache or artifact of
    the baseline folder carries them along."""
    return path.parent / HISTORY_DIR / path.stem


def _history_order(entry: Path) -> tuple[str, int]:
    match = _HISTORY_NAME.match(entry.name)
    assert match is not None
    return match.group(1), int(match.group(2) or 0)


def baseline_history(path: Path) -> list[Path]:
    """Earlier versions of the baseline file `path`, oldest first. Only files named as `save_baseline` names them
    count (anything else a user puts in the folder is neither listed nor deleted)."""
    folder = history_dir(path)
    if not folder.is_dir():
        return []
    return sorted((entry for entry in folder.iterdir() if entry.is_file() and _HISTORY_NAME.match(entry.name)),
                  key=_history_order)


def _utc_stamp(created: Any, fallback: float) -> str:
    """The saved file's own `created` time in UTC (names sort chronologically whatever the saving machine's time
    zone), else `fallback` (the file's mtime). No colons: they are not allowed in artifact or Windows file names."""
    when: datetime.datetime | None = None
    if isinstance(created, str):
        with contextlib.suppress(ValueError):
            when = datetime.datetime.strptime(created, "%Y-%m-%dT%H:%M:%S%z")
    if when is None:
        when = datetime.datetime.fromtimestamp(fallback, datetime.timezone.utc)
    return when.astimezone(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def keep_in_history(path: Path, keep: int = HISTORY_KEEP) -> Path | None:
    """Copy the current baseline file into its history folder (before it is overwritten) and delete the oldest
    versions beyond `keep`. Returns the history file, or None when there was no file to keep.

    A copy, not a move: the baseline itself is then replaced atomically, so a reader never finds it missing."""
    if not path.is_file():
        return None
    data = path.read_bytes()
    try:
        created = json.loads(data).get("created")
    except (ValueError, AttributeError):
        created = None  # an unreadable old file is still kept, byte for byte: it may be all there is to restore
    stamp = _utc_stamp(created, path.stat().st_mtime)
    folder = history_dir(path)
    target, counter = folder / f"{stamp}.json", 0
    while target.exists():  # two saves within one second
        counter += 1
        target = folder / f"{stamp}-{counter}.json"
    write_atomic(target, data)  # a crash never leaves a half version behind
    history = baseline_history(path)
    for old in history[:max(len(history) - keep, 0)]:
        old.unlink(missing_ok=True)
    return target


def save_baseline(path: Path, name: str, records: list[dict[str, Any]], environment: dict[str, Any],
                  keep_others: Baseline | None) -> Baseline:
    """Write this run's scores (items that produced a value); scores of checks that did not run are kept, and the
    previous file goes to the baseline's history folder (at most HISTORY_KEEP versions)."""
    scores = dict(keep_others.scores) if keep_others else {}
    for record in records:
        if record.get("value") is not None and record.get("fingerprint"):
            scores[score_key(record["suite"], record["check"])] = entry_from_record(record)
    baseline = Baseline(name, path, time.strftime("%Y-%m-%dT%H:%M:%S%z"), environment, scores)
    keep_in_history(path)
    write_atomic(path, baseline.to_json())
    return baseline
