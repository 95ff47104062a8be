"""What travels between the client and the service, as plain JSON data: a check's request (metric, parameters,
protocol, bootstrap settings, and for each set the SHA-256 of each video's bytes with its label and prompt) and its
result (everything `engine.CheckResult` holds except the metric object and the resampler, which cannot travel).

The service rebuilds a one-check Suite whose videos are its own stored blobs (it never reads a path the client
names) and runs the same `evaluate_check` a local run does; the bootstrap interval is computed there, with the
suite's resamples, level and seed, because the resampler needs the metric's per-video data. Paths of stored blobs
in messages travel as `blob:<sha256>` and the client puts its own file paths back."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from ..errors import AigveError
from ..gate import BootstrapSpec, GatePolicy, Threshold
from ..stats import Interval
from ..videos.sources import SkippedVideo, Video, VideoSet

if TYPE_CHECKING:
    from ..engine import CheckResult
    from ..metrics.base import Metric
    from ..metrics.registry import MetricRegistry
    from ..suite import CheckSpec, Suite

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
BLOB_MARK = "blob:"
_BLOB_REF_RE = re.compile(r"blob:([0-9a-f]{64})")


class WireError(AigveError):
    """A request the service cannot take as it is (HTTP 400): the message says what is wrong."""


# --- client side: the request -----------------------------------------------------------------------------------


def check_request(suite: Suite, check: CheckSpec, hashes: Mapping[Path, str], problems: Mapping[Path, str],
                  with_interval: bool, thumbnails: bool) -> dict[str, Any]:
    """The request for one check; `hashes` gives the SHA-256 of every usable video file of the check's sets,
    `problems` why each other one is no video (left out and listed as skipped, as a local run does)."""
    sets = []
    for name in check.sets:
        video_set = suite.sets[name]
        sets.append({
            "name": name,
            "videos": [{"sha256": hashes[video.path], "label": video.label, "key": video.key,
                        "prompt": video.prompt} for video in video_set.videos if video.path in hashes],
            "skipped": [*(_skipped(s) for s in video_set.skipped),
                        *({"label": video.label, "reason": problems[video.path]}
                          for video in video_set.videos if video.path in problems)],
        })
    spec = check.policy.bootstrap
    return {
        "suite": suite.name, "check": check.id, "metric": check.metric, "params": dict(check.params),
        "protocol": check.protocol.to_dict(), "on_bad_video": check.on_bad_video,
        "bootstrap": {"resamples": spec.resamples, "level": spec.level, "seed": spec.seed},
        "with_interval": with_interval, "thumbnails": thumbnails, "sets": sets,
        "pairs": [[ref.label, cand.label] for ref, cand in check.pairs
                  if ref.path in hashes and cand.path in hashes],
        "unpaired": [_skipped(s) for s in check.unpaired],
        "without_prompt": [_skipped(s) for s in check.without_prompt],
    }


def check_videos(suite: Suite, check: CheckSpec) -> list[Path]:
    """Every video file a check reads, once each: of a paired check, the videos of its pairs only (the unpaired
    ones are listed as skipped already)."""
    if check.pairs:
        return list(dict.fromkeys(video.path for pair in check.pairs for video in pair))
    return list(dict.fromkeys(video.path for name in check.sets for video in suite.sets[name].videos))


def _skipped(skipped: SkippedVideo) -> dict[str, str]:
    return {"label": skipped.label, "reason": skipped.reason}


# --- service side: the request read back ------------------------------------------------------------------------


def _field(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...], what: str = "the request") -> Any:
    value = data.get(key)
    if not isinstance(value, kind):
        raise WireError(f"{what}: '{key}' is missing or not a {getattr(kind, '__name__', kind)}")
    return value


def request_blobs(request: Mapping[str, Any]) -> list[str]:
    """The blob hashes a request names (checked to be SHA-256 hex digests)."""
    hashes: list[str] = []
    for video_set in _field(request, "sets", list):
        for video in _field(video_set, "videos", list, "a set"):
            sha = _field(video, "sha256", str, "a video")
            if not SHA256_RE.match(sha):
                raise WireError(f"a video: 'sha256' {sha[:80]!r} is not a lowercase SHA-256 hex digest")
            hashes.append(sha)
    return list(dict.fromkeys(hashes))


def _skipped_list(data: Mapping[str, Any], key: str) -> tuple[SkippedVideo, ...]:
    return tuple(SkippedVideo(str(item["label"]), str(item["reason"])) for item in data.get(key) or [])


def rebuild(request: Mapping[str, Any], blob_path: Callable[[str], Path], registry: MetricRegistry,
            suite_path: Path) -> tuple[Suite, CheckSpec]:
    """The one-check Suite and CheckSpec of a request, over stored blobs. Unknown metrics and bad parameters give
    the messages a local run gives (the registry's and the metric's own)."""
    from ..protocol import protocol_from_mapping
    from ..suite import BAD_VIDEO_POLICIES, CheckSpec, Suite

    metric_cls = registry.get(_field(request, "metric", str))
    params = metric_cls.validate_params(_field(request, "params", dict))
    explicit = [r.key for r in metric_cls.backbone_requests(params) if r.weights]
    if explicit:
        raise WireError(f"{metric_cls.name}: the service uses its own weights folder; a weights path in the suite "
                        f"(backbone {', '.join(explicit)}) is not accepted remotely (put the file in the service's "
                        "weights folder instead)")
    protocol = protocol_from_mapping(_field(request, "protocol", dict))
    on_bad_video = request.get("on_bad_video", "error")
    if on_bad_video not in BAD_VIDEO_POLICIES:
        raise WireError(f"'on_bad_video' must be one of {', '.join(BAD_VIDEO_POLICIES)}")
    bootstrap = _field(request, "bootstrap", dict)
    resamples = bootstrap.get("resamples")
    if resamples is not None and (not isinstance(resamples, int) or not 10 <= resamples <= 10_000):
        raise WireError("bootstrap: 'resamples' must be an integer from 10 to 10000")
    policy = GatePolicy(bootstrap=BootstrapSpec(resamples, float(bootstrap.get("level", 0.95)),
                                                int(bootstrap.get("seed", 0))))
    request_blobs(request)  # checks the hashes
    sets: dict[str, VideoSet] = {}
    by_label: dict[str, dict[str, Video]] = {}
    for raw in _field(request, "sets", list):
        name = _field(raw, "name", str, "a set")
        videos = tuple(Video(blob_path(v["sha256"]), str(v.get("key") or v["label"]), str(v["label"]),
                             v.get("prompt") or None) for v in raw["videos"])
        sets[name] = VideoSet(name, videos, "remote", _skipped_list(raw, "skipped"))
        by_label[name] = {video.label: video for video in videos}
    names = tuple(sets)
    expected = 2 if metric_cls.spec.kind in ("paired", "sets") else 1
    if len(names) != expected:
        raise WireError(f"metric '{metric_cls.name}' reads {expected} set(s); the request gives {len(names)}")
    pairs = []
    for ref_label, cand_label in request.get("pairs") or []:
        try:
            pairs.append((by_label[names[0]][ref_label], by_label[names[-1]][cand_label]))
        except KeyError:
            raise WireError(f"a pair names a video the sets do not have: {ref_label!r}, {cand_label!r}") from None
    if metric_cls.spec.kind == "paired" and not pairs:
        raise WireError(f"metric '{metric_cls.name}' compares pairs; the request gives none")
    check = CheckSpec(str(request.get("check") or metric_cls.name), metric_cls.name, names, params,
                      Threshold(None, None), protocol, on_bad_video, 0, pairs=tuple(pairs),
                      unpaired=_skipped_list(request, "unpaired"), policy=policy,
                      without_prompt=_skipped_list(request, "without_prompt"))
    suite = Suite(suite_path, str(request.get("suite") or "remote"), "", protocol, sets, (check,))
    return suite, check


def result_payload(outcome: CheckResult, blob_dir: Path) -> dict[str, Any]:
    """A CheckResult as JSON data; paths of stored blobs become `blob:<sha256>`."""
    result = outcome.result
    payload = {
        "value": result.value, "per_video": dict(result.per_video), "details": dict(result.details),
        "warnings": list(result.warnings), "no_interval": result.no_interval,
        "backbone": None if result.backbone is None else result.backbone.to_dict(),
        "set_level": result.samples is not None,
        "videos_used": outcome.videos_used, "skipped": [_skipped(s) for s in outcome.skipped],
        "resolution": outcome.resolution, "seconds": outcome.seconds, "thumbnails": outcome.thumbnails,
        "interval": None if outcome.interval is None else outcome.interval.to_dict(),
        "bootstrap_seconds": outcome.bootstrap_seconds, "decode_seconds": outcome.decode_seconds,
        "video_notes": outcome.video_notes, "videos_decoded": outcome.videos_decoded,
    }
    return cast(dict[str, Any], json.loads(scrub_paths(dumps(payload), blob_dir)))


def scrub_paths(text: str, blob_dir: Path) -> str:
    """The service's blob paths in a text (a message, or JSON) as `blob:<sha256>`."""
    return text.replace(str(blob_dir) + "/", BLOB_MARK)


def dumps(data: Any) -> str:
    """JSON; NumPy numbers as Python numbers, anything else unknown as its text; NaN kept (a per-video NaN)."""
    return json.dumps(data, default=_plain)


def _plain(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


# --- client side: the result read back ---------------------------------------------------------------------------


def restore_paths(text: str, paths_by_hash: Mapping[str, Path]) -> str:
    """`blob:<sha256>` back to the client's own path of that video."""
    return _BLOB_REF_RE.sub(lambda m: str(paths_by_hash.get(m.group(1), m.group(0))), text)


def check_result(payload: Mapping[str, Any], metric: Metric, paths_by_hash: Mapping[str, Path],
                 remote: Mapping[str, Any]) -> CheckResult:
    """The CheckResult of a service's answer, equal to the local one but for what cannot travel: no resampler
    (the interval came computed) and no set-level samples (a set-level score is compared with a baseline by the
    unpaired rules). `remote` (URL, device, version, bytes uploaded) goes into the details."""
    from ..engine import CheckResult
    from ..metrics.contract import BackboneInfo, MetricResult

    data = json.loads(restore_paths(json.dumps(payload), paths_by_hash))
    interval = data.get("interval")
    details = {**data["details"], "remote": dict(remote)}
    result = MetricResult(float(data["value"]), {str(k): float(v) for k, v in data["per_video"].items()}, details,
                          tuple(data["warnings"]), None, data.get("no_interval"),
                          None if data.get("backbone") is None else BackboneInfo(**data["backbone"]), None)
    return CheckResult(metric, result, {k: list(v) for k, v in data["videos_used"].items()},
                       [SkippedVideo(s["label"], s["reason"]) for s in data["skipped"]], list(data["resolution"]),
                       float(data["seconds"]), data["thumbnails"],
                       None if interval is None else Interval(float(interval["low"]), float(interval["high"]),
                                                              float(interval["level"]), int(interval["resamples"]),
                                                              int(interval["seed"])),
                       float(data["bootstrap_seconds"]), float(data["decode_seconds"]), data["video_notes"],
                       int(data["videos_decoded"]))
