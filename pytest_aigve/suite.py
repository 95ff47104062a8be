"""Suite files: YAML -> frozen dataclasses, validated with file:line errors. No pytest import."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

from .errors import ParamError, SuiteError
from .gate import GATE_MODES, BootstrapSpec, GatePolicy, PerVideoBounds, Threshold, Tolerance
from .metrics.base import Metric
from .metrics.registry import MetricRegistry
from .protocol import ClipProtocol, protocol_from_mapping
from .videos import sources
from .videos.sources import SkippedVideo, Video, VideoSet
from .yamlmarks import MarkedDict, load_marked_yaml

TOP_LEVEL_KEYS = ("suite", "description", "protocol", "on_bad_video", "on_missing_baseline", "defaults",
                  "video_sets", "checks")
MissingBaselinePolicy = Literal["warn", "error"]
MISSING_BASELINE_POLICIES: tuple[MissingBaselinePolicy, ...] = ("warn", "error")
MAX_RESAMPLES = 10_000  # a Fréchet resample costs a full recomputation: 10 000 is already an hour on a CPU
GATE_KEYS = ("tolerance", "gate", "bootstrap", "warn", "per_video", "max_drop")
DEFAULTS_KEYS = (*GATE_KEYS, "small_set", "metrics")
CHECK_KEYS = ("name", "metric", "set", "reference", "candidate", "params", "min", "max", "protocol",
              "on_bad_video", "description", "agreement", *GATE_KEYS)
AGREEMENT_KEYS = ("ratings", "min_spearman", "min_kendall", "min_plcc", "group_by", "gate")
AgreementGate = Literal["point", "interval"]
AGREEMENT_GATES: tuple[AgreementGate, ...] = ("point", "interval")
BadVideoPolicy = Literal["error", "skip"]
BAD_VIDEO_POLICIES: tuple[BadVideoPolicy, ...] = ("error", "skip")

SetBuilder = Callable[[str, Mapping[str, Any], Path], VideoSet]
# source key -> (builder, the other keys it accepts)
SET_SOURCES: dict[str, tuple[SetBuilder | None, tuple[str, ...]]] = {
    "folder": (sources.folder_set, ("recursive", "extensions", "prompts", "ratings")),
    "glob": (sources.glob_set, ("allow_outside", "prompts", "ratings")),
    "files": (sources.files_set, ("prompts", "ratings")),
    "annotations": (sources.annotation_set, ("video_dir", "role", "prompts", "ratings")),
    "mixed_folder": (None, ("suffixes", "unmatched", "prompts", "ratings")),  # yields two sets, see _load_sets
}
_NAME_RE = re.compile(r"^[A-Za-z0-9_.+\-\[\]]+$")


@dataclass(frozen=True)
class AgreementSpec:
    """`agreement:` of a check: how well its per-video scores track one human rating (see agreement.py)."""

    ratings: str  # the rating field, e.g. technical_quality
    min_spearman: float | None = None
    min_kendall: float | None = None
    min_plcc: float | None = None
    group_by: str | None = None  # a label field (e.g. model): also compare the groups' mean scores and ratings
    gate: AgreementGate = "point"  # point: the coefficient; interval: the high end of its bootstrap interval

    def minimums(self) -> dict[str, float]:
        """The coefficients gated, by name (spearman, kendall, plcc), with their minimum."""
        found = {"spearman": self.min_spearman, "kendall": self.min_kendall, "plcc": self.min_plcc}
        return {name: value for name, value in found.items() if value is not None}


@dataclass(frozen=True)
class CheckSpec:
    id: str  # the pytest item name, e.g. "flicker[generated]"
    metric: str
    sets: tuple[str, ...]  # (set,) or (reference, candidate)
    params: Mapping[str, Any]
    threshold: Threshold
    protocol: ClipProtocol
    on_bad_video: BadVideoPolicy
    line: int
    description: str = ""
    pairs: tuple[tuple[Video, Video], ...] = ()
    unpaired: tuple[SkippedVideo, ...] = ()
    policy: GatePolicy = field(default_factory=GatePolicy)
    # a metric that needs prompts, under on_bad_video: skip: the videos of its sets without one, left out
    without_prompt: tuple[SkippedVideo, ...] = ()
    agreement: AgreementSpec | None = None
    # with agreement under on_bad_video: skip, the videos of the set without the rating, left out of the agreement
    without_rating: tuple[SkippedVideo, ...] = ()


@dataclass(frozen=True)
class Suite:
    path: Path
    name: str
    description: str
    protocol: ClipProtocol
    sets: Mapping[str, VideoSet]
    checks: tuple[CheckSpec, ...]
    on_missing_baseline: MissingBaselinePolicy = "warn"  # a check without a baseline entry, or an entry without a check


def _unknown_key(path: Path, mapping: MarkedDict, allowed: Sequence[str], what: str) -> None:
    for key in mapping:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; allowed: {', '.join(allowed)}"
            raise SuiteError(path, mapping.line_of(key), f"{what}: unknown key '{key}'{hint}")


def _mapping(path: Path, value: Any, line: int, what: str) -> MarkedDict:
    if not isinstance(value, MarkedDict):
        raise SuiteError(path, line, f"{what} must be a mapping (key: value), got {type(value).__name__}")
    return value


def _protocol(path: Path, data: MarkedDict, base: ClipProtocol, what: str) -> ClipProtocol:
    try:
        return protocol_from_mapping(data, base)
    except ParamError as exc:
        close = difflib.get_close_matches(exc.key, [f for f in ClipProtocol.__dataclass_fields__], n=1)
        hint = f"; did you mean '{close[0]}'?" if close and close[0] != exc.key else ""
        raise SuiteError(path, data.line_of(exc.key), f"{what}: {exc}{hint}") from None


T = TypeVar("T")


def _attempt(problems: list[SuiteError] | None, load: Callable[[], T], fallback: T) -> T:
    """Load one part of a suite; when collecting problems (validate), a bad part is noted and skipped."""
    if problems is None:
        return load()
    try:
        return load()
    except SuiteError as exc:
        problems.append(exc)
        return fallback


def load_suite(path: Path, registry: MetricRegistry, problems: list[SuiteError] | None = None,
               device_type: str | None = None) -> Suite:
    """Parse and validate a suite. With `problems`, every independent part (protocol, defaults, each set, each
    check) is tried and its error collected instead of raised: what `python -m pytest_aigve validate` shows.
    `device_type` (cpu, cuda; None: not known) lets precisions the device cannot run be errors here."""
    path = Path(path)
    data = load_marked_yaml(path)
    if data is None:
        raise SuiteError(path, None, "suite file is empty; see README.md for the suite format")
    root = _mapping(path, data, 1, "a suite file")
    _attempt(problems, lambda: _unknown_key(path, root, TOP_LEVEL_KEYS, "suite"), None)
    for required in ("video_sets", "checks"):
        if required not in root:
            raise SuiteError(path, root.line, f"suite has no '{required}' section; see README.md for the format")
    protocol = ClipProtocol()
    if "protocol" in root:
        protocol = _attempt(problems, lambda: _protocol(path, _mapping(path, root["protocol"], root.line_of(
            "protocol"), "'protocol'"), ClipProtocol(), "protocol"), protocol)
    default_bad: BadVideoPolicy = "error"
    default_missing: MissingBaselinePolicy = "warn"
    on_bad_video = _attempt(problems, lambda: _bad_video_policy(path, root, "error"), default_bad)
    on_missing_baseline = _attempt(problems, lambda: _missing_baseline_policy(path, root), default_missing)
    no_defaults: tuple[GatePolicy, dict[str, GatePolicy]] = (GatePolicy(), {})
    policy, metric_policies = _attempt(problems, partial(_defaults, path, root, registry), no_defaults)
    broken_sets: set[str] = set()
    video_sets = _load_sets(path, _mapping(path, root["video_sets"], root.line_of("video_sets"), "'video_sets'"),
                            problems, broken_sets)
    checks = _load_checks(path, root, video_sets, protocol, on_bad_video, registry, policy, metric_policies,
                          problems, broken_sets, device_type)
    name = str(root.get("suite", path.name))
    return Suite(path, name, str(root.get("description", "")), protocol, video_sets, checks, on_missing_baseline)


def _missing_baseline_policy(path: Path, root: MarkedDict) -> MissingBaselinePolicy:
    value = root.get("on_missing_baseline", "warn")
    if value not in MISSING_BASELINE_POLICIES:
        raise SuiteError(path, root.line_of("on_missing_baseline"),
                         f"'on_missing_baseline' must be 'warn' or 'error', got {value!r}")
    return cast(MissingBaselinePolicy, value)


def _defaults(path: Path, root: MarkedDict, registry: MetricRegistry) -> tuple[GatePolicy, dict[str, GatePolicy]]:
    if "defaults" not in root:
        return GatePolicy(), {}
    defaults = _mapping(path, root["defaults"], root.line_of("defaults"), "'defaults'")
    _unknown_key(path, defaults, DEFAULTS_KEYS, "defaults")
    policy = _policy(path, defaults, GatePolicy(), "defaults")
    return policy, _metric_policies(path, defaults, policy, registry)


def _bad_video_policy(path: Path, mapping: MarkedDict, default: BadVideoPolicy) -> BadVideoPolicy:
    value = mapping.get("on_bad_video", default)
    if value not in BAD_VIDEO_POLICIES:
        raise SuiteError(path, mapping.line_of("on_bad_video"),
                         f"'on_bad_video' must be 'error' or 'skip', got {value!r}")
    return cast(BadVideoPolicy, value)


def _load_sets(path: Path, section: MarkedDict, problems: list[SuiteError] | None = None,
               broken: set[str] | None = None) -> dict[str, VideoSet]:
    if not section:
        raise SuiteError(path, section.line, "'video_sets' is empty; define at least one set")
    result: dict[str, VideoSet] = {}
    for name, spec in section.items():
        built: list[VideoSet] | None = _attempt(problems, partial(_load_set, path, section, name, spec), None)
        if built is None:
            (broken if broken is not None else set()).add(name)
            continue
        for video_set in built:
            result[video_set.name] = video_set
    return result


def _load_set(path: Path, section: MarkedDict, name: str, spec: Any) -> list[VideoSet]:
    line = section.line_of(name)
    if not _NAME_RE.match(name):
        raise SuiteError(path, line, f"video set name '{name}' may only use letters, digits and _ . + -")
    spec = _mapping(path, spec, line, f"video set '{name}'")
    kinds = [k for k in spec if k in SET_SOURCES]
    if len(kinds) != 1:
        found = f"found {', '.join(kinds)}" if kinds else "found none"
        raise SuiteError(path, spec.line, f"video set '{name}' needs exactly one source "
                                          f"({', '.join(SET_SOURCES)}); {found}")
    kind = kinds[0]
    builder, extra_keys = SET_SOURCES[kind]
    _unknown_key(path, spec, (kind, *extra_keys), f"video set '{name}' ({kind})")
    try:
        if builder is None:
            built = list(sources.mixed_folder_sets(name, spec, path.parent))
        else:
            built = [builder(name, spec, path.parent)]
        if "prompts" in spec:  # both sets of a mixed folder: one manifest for the pairs
            built = sources.attach_prompts(built, spec["prompts"], path.parent)
        if "ratings" in spec:
            built = sources.attach_ratings(built, spec["ratings"], path.parent)
        return built
    except ParamError as exc:
        raise SuiteError(path, spec.line_of(exc.key), str(exc)) from None


def _set_reference(path: Path, check: MarkedDict, key: str, sets: Mapping[str, VideoSet]) -> str:
    value = check[key]
    if not isinstance(value, str) or value not in sets:
        close = difflib.get_close_matches(str(value), list(sets), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise SuiteError(path, check.line_of(key),
                         f"'{key}': unknown video set {value!r}; defined: {', '.join(sets)}{hint}")
    return value


def _number(path: Path, check: MarkedDict, key: str) -> float | None:
    value = check.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SuiteError(path, check.line_of(key), f"'{key}' must be a finite number, got {value!r}")
    return float(value)


def _metric_policies(path: Path, defaults: MarkedDict, base: GatePolicy,
                     registry: MetricRegistry) -> dict[str, GatePolicy]:
    """`defaults: {metrics: {ssim: {tolerance: {abs: 0.01}}}}`: gate settings per metric over the suite's."""
    if "metrics" not in defaults:
        return {}
    section = _mapping(path, defaults["metrics"], defaults.line_of("metrics"), "defaults: 'metrics'")
    policies = {}
    for name, settings in section.items():
        if name not in registry:
            close = difflib.get_close_matches(name, registry.names(), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; known: {', '.join(registry.names())}"
            raise SuiteError(path, section.line_of(name), f"defaults: metrics: unknown metric '{name}'{hint}")
        settings = _mapping(path, settings, section.line_of(name), f"defaults: metrics: '{name}'")
        _unknown_key(path, settings, GATE_KEYS, f"defaults: metrics: {name}")
        policies[name] = _policy(path, settings, base, f"defaults for {name}")
    return policies


def _uses_broken_set(check: Any, broken: set[str]) -> bool:
    """A check naming a set that failed to load (or a part of a broken mixed folder): its own error would only
    repeat that one."""
    if not broken or not isinstance(check, Mapping):
        return False
    names = [check.get(key) for key in ("set", "reference", "candidate")]
    return any(isinstance(n, str) and (n in broken or n.split(".")[0] in broken) for n in names)


def _load_checks(path: Path, root: MarkedDict, sets: Mapping[str, VideoSet], protocol: ClipProtocol,
                 on_bad_video: BadVideoPolicy, registry: MetricRegistry, policy: GatePolicy,
                 metric_policies: Mapping[str, GatePolicy], problems: list[SuiteError] | None = None,
                 broken_sets: set[str] | None = None, device_type: str | None = None) -> tuple[CheckSpec, ...]:
    section = root["checks"]
    if not isinstance(section, list) or not section:
        raise SuiteError(path, root.line_of("checks"), "'checks' must be a non-empty list of checks")
    checks: list[CheckSpec] = []
    first_line: dict[str, int] = {}
    for index, raw in enumerate(section):
        if _uses_broken_set(raw, broken_sets or set()):
            continue

        def load(index: int = index, raw: Any = raw) -> CheckSpec:
            check = _mapping(path, raw, section.line_of(index), f"check #{index + 1}")  # type: ignore[attr-defined]
            metric_policy = metric_policies.get(str(check.get("metric")), policy)
            spec = _load_check(path, check, sets, protocol, on_bad_video, registry, metric_policy, device_type)
            if spec.id in first_line:
                raise SuiteError(path, check.line, f"duplicate check '{spec.id}' (first on line "
                                                   f"{first_line[spec.id]}); give one of them a distinct 'name'")
            first_line[spec.id] = check.line
            return spec

        spec = _attempt(problems, load, None)
        if spec is not None:
            checks.append(spec)
    return tuple(checks)


def _load_check(path: Path, check: MarkedDict, sets: Mapping[str, VideoSet], protocol: ClipProtocol,
                on_bad_video: BadVideoPolicy, registry: MetricRegistry, gate_defaults: GatePolicy,
                device_type: str | None = None) -> CheckSpec:
    _unknown_key(path, check, CHECK_KEYS, "check")
    if "metric" not in check:
        raise SuiteError(path, check.line, "check has no 'metric'")
    metric_name = check["metric"]
    if metric_name not in registry:
        close = difflib.get_close_matches(str(metric_name), registry.names(), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise SuiteError(path, check.line_of("metric"),
                         f"unknown metric {metric_name!r}{hint}; known: {', '.join(registry.names())}")
    metric_cls = registry.get(metric_name)
    where = f"check '{check.get('name', metric_name)}'"
    params_raw = _mapping(path, check.get("params", MarkedDict()), check.line_of("params"), f"{where}: 'params'")
    try:
        params = metric_cls.validate_params(params_raw)
    except ParamError as exc:
        line = params_raw.line_of(exc.key) if exc.key in params_raw else check.line_of("params")
        raise SuiteError(path, line, f"{where}: {exc}") from None
    if metric_cls.spec.kind in ("paired", "sets"):
        if "set" in check or "reference" not in check or "candidate" not in check:
            raise SuiteError(path, check.line, f"{where}: metric '{metric_name}' compares two sets; "
                                               "give 'reference' and 'candidate' (not 'set')")
        set_names: tuple[str, ...] = (_set_reference(path, check, "reference", sets),
                                      _set_reference(path, check, "candidate", sets))
    else:
        if "set" not in check or "reference" in check or "candidate" in check:
            raise SuiteError(path, check.line, f"{where}: metric '{metric_name}' reads one set; give 'set'")
        set_names = (_set_reference(path, check, "set", sets),)
    check_protocol = protocol
    if "protocol" in check:
        check_protocol = _protocol(path, _mapping(path, check["protocol"], check.line_of("protocol"),
                                                  f"{where}: 'protocol'"), protocol, f"{where}: protocol")
    overrides = metric_cls.protocol_overrides(params)
    if overrides:
        check_protocol = _protocol(path, MarkedDict(overrides), check_protocol, f"{where}: params")
    _check_requirements(path, check, params_raw, metric_cls, params, check_protocol, registry, device_type, where)
    policy = _bad_video_policy(path, check, on_bad_video)
    without_prompt = _without_prompt(path, check, sets, set_names, policy, where) if metric_cls.spec.needs_prompts \
        else ()
    low, high = _number(path, check, "min"), _number(path, check, "max")
    if low is not None and high is not None and low > high:
        raise SuiteError(path, check.line_of("min"), f"{where}: min {low:g} is above max {high:g}")
    name = check.get("name")
    if name is not None and (not isinstance(name, str) or not _NAME_RE.match(name)):
        raise SuiteError(path, check.line_of("name"), f"{where}: 'name' may only use letters, digits, _ . + - [ ]")
    item_id = name or f"{metric_name}[{'-vs-'.join(set_names)}]"
    pairs: list[tuple[Video, Video]] = []
    unpaired: list[SkippedVideo] = []
    if metric_cls.spec.kind == "paired":
        try:
            pairs, unpaired = sources.pair_sets(sets[set_names[0]], sets[set_names[1]])
        except ParamError as exc:
            raise SuiteError(path, check.line_of(exc.key), f"{where}: {exc}") from None
        if without_prompt:  # a pair with a video left out for want of a prompt is left out
            pairs = [(ref, cand) for ref, cand in pairs if ref.prompt and cand.prompt]
        if unpaired and policy == "error":
            listing = "; ".join(f"{s.label}: {s.reason}" for s in unpaired[:10])
            raise SuiteError(path, check.line, f"{where}: {len(unpaired)} unmatched video(s) between "
                                               f"'{set_names[0]}' and '{set_names[1]}': {listing}. Pair them by "
                                               "file name, or set 'on_bad_video: skip' to leave them out")
        if not pairs:
            raise SuiteError(path, check.line, f"{where}: no video of '{set_names[1]}' has a partner in "
                                               f"'{set_names[0]}' (videos pair by file name without extension)")
    gate = _policy(path, check, gate_defaults, where)
    agreement: AgreementSpec | None = None
    without_rating: tuple[SkippedVideo, ...] = ()
    if "agreement" in check:
        agreement, without_rating = _agreement(path, check, metric_cls, sets[set_names[-1]], policy, where)
    return CheckSpec(item_id, metric_name, set_names, params, Threshold(low, high), check_protocol, policy,
                     check.line, str(check.get("description", "")), tuple(pairs), tuple(unpaired), gate,
                     without_prompt, agreement, without_rating)


def _field_of_set(path: Path, spec: MarkedDict, key: str, known: Sequence[str], video_set: VideoSet,
                  what: str, where: str) -> str:
    """A rating (or label) field named by `agreement:`, which some video of the set must have."""
    value = spec[key]
    if not isinstance(value, str) or not value:
        raise SuiteError(path, spec.line_of(key), f"{where}: agreement: '{key}' must be the name of a {what} "
                                                  f"field, got {value!r}")
    if value in known:
        return value
    close = difflib.get_close_matches(value, known, n=1)
    hint = (f"; did you mean '{close[0]}'?" if close else f"; its {what}s: {', '.join(known)}" if known else
            f"; its videos have no {what}s (an 'annotations' set gives them, or a 'ratings:' CSV or JSONL manifest)")
    raise SuiteError(path, spec.line_of(key), f"{where}: agreement: no video of set '{video_set.name}' has a "
                                              f"{what} '{value}'{hint}")


def _agreement(path: Path, check: MarkedDict, metric_cls: type[Metric], video_set: VideoSet,
               policy: BadVideoPolicy, where: str) -> tuple[AgreementSpec, tuple[SkippedVideo, ...]]:
    """`agreement:` validated against the metric (per-video scores) and the set (a rating its videos have)."""
    spec = _mapping(path, check["agreement"], check.line_of("agreement"), f"{where}: 'agreement'")
    _unknown_key(path, spec, AGREEMENT_KEYS, f"{where}: agreement")
    if metric_cls.spec.kind == "sets":
        raise SuiteError(path, check.line_of("agreement"), f"{where}: 'agreement' compares each video's score with "
                                                           f"its rating, but metric '{check['metric']}' gives one "
                                                           "score for the whole set; use a per-video metric")
    if "ratings" not in spec:
        raise SuiteError(path, spec.line, f"{where}: agreement needs 'ratings': the rating field to compare with, "
                                          "e.g. {ratings: technical_quality, min_spearman: 0.3}")
    rating_names = sorted({name for video in video_set.videos for name in video.ratings})
    ratings = _field_of_set(path, spec, "ratings", rating_names, video_set, "rating", where)
    group_by = None
    if spec.get("group_by") is not None:
        label_names = sorted({name for video in video_set.videos for name in video.labels})
        group_by = _field_of_set(path, spec, "group_by", label_names, video_set, "label", where)
    minimums = {}
    for key in ("min_spearman", "min_kendall", "min_plcc"):
        value = _number(path, spec, key)
        if value is not None and not -1 <= value <= 1:
            raise SuiteError(path, spec.line_of(key), f"{where}: agreement: '{key}' must be between -1 and 1 (a "
                                                      f"correlation), got {value:g}")
        minimums[key] = value
    gate = spec.get("gate", "point")
    if gate not in AGREEMENT_GATES:
        raise SuiteError(path, spec.line_of("gate"), f"{where}: agreement: 'gate' must be 'point' or 'interval', "
                                                     f"got {gate!r}")
    missing = [video.label for video in video_set.videos if ratings not in video.ratings]
    if missing and policy == "error":
        listing = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise SuiteError(path, spec.line_of("ratings"), f"{where}: agreement: {len(missing)} video(s) of set "
                                                        f"'{video_set.name}' have no rating '{ratings}': {listing}; "
                                                        "rate them, or set 'on_bad_video: skip' to leave them out")
    agreement = AgreementSpec(ratings, minimums["min_spearman"], minimums["min_kendall"], minimums["min_plcc"],
                              group_by, cast(AgreementGate, gate))
    return agreement, tuple(SkippedVideo(label, f"no rating '{ratings}'") for label in missing)


def _without_prompt(path: Path, check: MarkedDict, sets: Mapping[str, VideoSet], set_names: Sequence[str],
                    policy: BadVideoPolicy, where: str) -> tuple[SkippedVideo, ...]:
    """For a metric that needs prompts: every video of the check's sets has one (else an error naming those
    without), or, under on_bad_video: skip, those without are left out (returned) while each set keeps one."""
    left_out: list[SkippedVideo] = []
    for set_name in set_names:
        missing = [video.label for video in sets[set_name].videos if not video.prompt]
        if not missing:
            continue
        listing = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        fix = (f"add them to the 'prompts:' source of set '{set_name}' (a CSV, JSONL or JSON manifest, or 'txt' "
               "sidecar files; see README, video sets)")
        none_left = len(missing) == len(sets[set_name].videos)  # skipping them all would leave nothing to score
        if policy == "error" or none_left:
            skip = "" if none_left else ", or set 'on_bad_video: skip' to leave them out"
            raise SuiteError(path, check.line, f"{where}: metric '{check['metric']}' needs the prompt of each video; "
                                               f"{len(missing)} video(s) of set '{set_name}' have none: {listing}; "
                                               f"{fix}{skip}")
        left_out.extend(SkippedVideo(label, "no prompt") for label in missing)
    return tuple(left_out)


def _check_requirements(path: Path, check: MarkedDict, params_raw: MarkedDict, metric_cls: type[Metric],
                        params: Mapping[str, Any], protocol: ClipProtocol, registry: MetricRegistry,
                        device_type: str | None, where: str) -> None:
    """What the metric and its backbones need that the check does not give (frames, a precision the device
    cannot run, an unknown backbone): an error at the line to change, before anything is decoded."""
    for key, problem in metric_cls.requirement_problems(params, protocol, registry.backbones, device_type):
        if key is not None and key in params_raw:
            line = params_raw.line_of(key)
        elif key is None and "protocol" in check:
            line = check.line_of("protocol")
        else:
            line = check.line
        raise SuiteError(path, line, f"{where}: {problem}")


def _nonnegative(path: Path, mapping: MarkedDict, key: str, where: str) -> float | None:
    value = mapping.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise SuiteError(path, mapping.line_of(key), f"{where}: '{key}' must be a finite number >= 0, "
                                                     f"got {value!r}")
    return float(value)


def _policy(path: Path, mapping: MarkedDict, base: GatePolicy, where: str) -> GatePolicy:
    """tolerance / gate / bootstrap / warn (and small_set in defaults) over a base policy."""
    values: dict[str, Any] = {}
    if "tolerance" in mapping:
        tolerance = _mapping(path, mapping["tolerance"], mapping.line_of("tolerance"), f"{where}: 'tolerance'")
        _unknown_key(path, tolerance, ("abs", "pct"), f"{where}: tolerance")
        values["tolerance"] = Tolerance(_nonnegative(path, tolerance, "abs", where),
                                        _nonnegative(path, tolerance, "pct", where))
    if "gate" in mapping:
        if mapping["gate"] not in GATE_MODES:
            raise SuiteError(path, mapping.line_of("gate"), f"{where}: 'gate' must be one of "
                                                            f"{', '.join(GATE_MODES)}, got {mapping['gate']!r}")
        values["mode"] = mapping["gate"]
    if "bootstrap" in mapping:
        spec = _mapping(path, mapping["bootstrap"], mapping.line_of("bootstrap"), f"{where}: 'bootstrap'")
        _unknown_key(path, spec, ("resamples", "level", "seed"), f"{where}: bootstrap")
        resamples, level, seed = spec.get("resamples", base.bootstrap.resamples), spec.get(
            "level", base.bootstrap.level), spec.get("seed", base.bootstrap.seed)
        if resamples is not None and (isinstance(resamples, bool) or not isinstance(resamples, int)
                                      or not 10 <= resamples <= MAX_RESAMPLES):
            raise SuiteError(path, spec.line_of("resamples"), f"{where}: 'resamples' must be an integer from 10 to "
                                                              f"{MAX_RESAMPLES}, got {resamples!r}")
        if isinstance(level, bool) or not isinstance(level, int | float) or not 0 < level < 1:
            raise SuiteError(path, spec.line_of("level"), f"{where}: 'level' must be between 0 and 1, e.g. 0.95")
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
            raise SuiteError(path, spec.line_of("seed"), f"{where}: 'seed' must be an integer >= 0, got {seed!r}")
        values["bootstrap"] = BootstrapSpec(resamples, float(level), seed)
    if "warn" in mapping:
        if not isinstance(mapping["warn"], bool):
            raise SuiteError(path, mapping.line_of("warn"), f"{where}: 'warn' must be true or false")
        values["warn"] = mapping["warn"]
    if "per_video" in mapping:
        bounds = _mapping(path, mapping["per_video"], mapping.line_of("per_video"), f"{where}: 'per_video'")
        _unknown_key(path, bounds, ("min", "max"), f"{where}: per_video")
        low, high = _number(path, bounds, "min"), _number(path, bounds, "max")
        if low is not None and high is not None and low > high:
            raise SuiteError(path, bounds.line_of("min"), f"{where}: per_video min {low:g} is above max {high:g}")
        values["per_video"] = PerVideoBounds(low, high)
    if "max_drop" in mapping:
        drop = mapping["max_drop"]
        if drop is False:
            values["max_drop"] = False  # off, also where the metric has a default
        else:
            drop = _mapping(path, drop, mapping.line_of("max_drop"), f"{where}: 'max_drop' ({{abs, pct}} or false)")
            _unknown_key(path, drop, ("abs", "pct"), f"{where}: max_drop")
            values["max_drop"] = Tolerance(_nonnegative(path, drop, "abs", where), _nonnegative(path, drop, "pct",
                                                                                                  where))
    if "small_set" in mapping:
        small = mapping["small_set"]
        if isinstance(small, bool) or not isinstance(small, int) or not 0 <= small <= 10**9:
            raise SuiteError(path, mapping.line_of("small_set"), f"{where}: 'small_set' must be an integer >= 0")
        values["small_set"] = small
    return replace(base, **values)
