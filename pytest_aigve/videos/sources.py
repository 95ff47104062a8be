"""Video sets from folders, globs, explicit lists, AIGVE annotation JSON and mixed folders.

Every function here raises ParamError(key, message) for a bad definition; the suite loader
turns the key into a file:line location.
"""

from __future__ import annotations

import glob as globmod
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ParamError

VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".mov", ".webm", ".mkv", ".avi", ".m4v")
ANNOTATION_LIST_KEYS: tuple[str, ...] = ("data_list", "datset_list", "dataset_list")  # upstream misspellings
DEFAULT_GENERATED_SUFFIXES: tuple[str, ...] = ("synthetic", "generated")


@dataclass(frozen=True)
class Video:
    path: Path
    key: str  # pairs a reference video with a candidate video
    label: str  # short name for reports
    prompt: str | None = None


@dataclass(frozen=True)
class SkippedVideo:
    label: str
    reason: str


@dataclass(frozen=True)
class VideoSet:
    name: str
    videos: tuple[Video, ...]
    source: str
    skipped: tuple[SkippedVideo, ...] = field(default=())


def _is_video(path: Path, extensions: Sequence[str]) -> bool:
    return path.is_file() and path.suffix.lower() in extensions


def _ensure_nonempty(name: str, key: str, videos: Sequence[Video], where: str) -> None:
    if not videos:
        exts = ", ".join(VIDEO_EXTENSIONS)
        raise ParamError(key, f"video set '{name}' is empty: no video files ({exts}) in {where}; "
                              "check the path or add videos")


def _label(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def _extensions(spec: Mapping[str, Any]) -> tuple[str, ...]:
    raw = spec.get("extensions", VIDEO_EXTENSIONS)
    if not isinstance(raw, list | tuple) or not all(isinstance(e, str) for e in raw) or not raw:
        raise ParamError("extensions", f"'extensions' must be a list like ['.mp4', '.webm'], got {raw!r}")
    return tuple(e.lower() if e.startswith(".") else f".{e.lower()}" for e in raw)


def folder_set(name: str, spec: Mapping[str, Any], base: Path) -> VideoSet:
    folder = base / str(spec["folder"])
    if not folder.exists():
        raise ParamError("folder", f"video set '{name}': folder not found: {folder} "
                                   f"(paths are relative to the suite file's folder {base})")
    if not folder.is_dir():
        raise ParamError("folder", f"video set '{name}': {folder} is not a folder; use 'files' for single videos")
    recursive = spec.get("recursive", False)
    if not isinstance(recursive, bool):
        raise ParamError("recursive", f"'recursive' must be true or false, got {recursive!r}")
    extensions = _extensions(spec)
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    paths = sorted(p for p in candidates if _is_video(p, extensions))
    videos = [Video(p, _label(p, folder).rsplit(".", 1)[0], _label(p, folder)) for p in paths]
    _ensure_nonempty(name, "folder", videos, f"folder {folder}" + (" (recursive)" if recursive else ""))
    return VideoSet(name, tuple(videos), f"folder {spec['folder']}")


def glob_set(name: str, spec: Mapping[str, Any], base: Path) -> VideoSet:
    patterns = spec["glob"]
    if isinstance(patterns, str):
        patterns = [patterns]
    if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
        raise ParamError("glob", f"'glob' must be a pattern or a list of patterns, got {patterns!r}")
    found: dict[Path, None] = {}
    for pattern in patterns:
        for match in sorted(globmod.glob(str(base / pattern), recursive=True)):
            path = Path(match)
            if path.is_file():
                found[path] = None
    videos = [Video(p, p.stem, _label(p, base)) for p in found]
    _ensure_nonempty(name, "glob", videos, f"glob {patterns} under {base}")
    return VideoSet(name, tuple(videos), f"glob {', '.join(patterns)}")


def files_set(name: str, spec: Mapping[str, Any], base: Path) -> VideoSet:
    entries = spec["files"]
    if not isinstance(entries, list):
        raise ParamError("files", f"'files' must be a list of paths (or {{path, prompt}} mappings), got {entries!r}")
    videos = []
    for entry in entries:
        prompt = None
        if isinstance(entry, Mapping):
            if "path" not in entry:
                raise ParamError("files", f"video set '{name}': entry {dict(entry)!r} has no 'path'")
            prompt = entry.get("prompt")
            entry = entry["path"]
        if not isinstance(entry, str):
            raise ParamError("files", f"video set '{name}': entries must be paths, got {entry!r}")
        path = base / entry
        videos.append(Video(path, path.stem, entry, None if prompt is None else str(prompt)))
    _ensure_nonempty(name, "files", videos, "its 'files' list")
    return VideoSet(name, tuple(videos), f"list of {len(videos)} files")


def _read_annotation_json(path: Path) -> Any:
    if not path.is_file():
        raise ParamError("annotations", f"annotation file not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ParamError("annotations", f"annotation file {path} is not valid JSON (line {exc.lineno}, "
                                        f"column {exc.colno}: {exc.msg}); fix or regenerate it") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ParamError("annotations", f"cannot read annotation file {path}: {exc}") from None


def annotation_set(name: str, spec: Mapping[str, Any], base: Path) -> VideoSet:
    """AIGVE annotation JSON: {"data_list": [{"video_path_pd", "video_path_gt", "prompt_gt"}, ...]}."""
    path = base / str(spec["annotations"])
    data = _read_annotation_json(path)
    role = spec.get("role", "generated")
    if role not in ("generated", "reference"):
        raise ParamError("role", f"'role' must be 'generated' (video_path_pd) or 'reference' (video_path_gt), "
                                 f"got {role!r}")
    field_name = "video_path_pd" if role == "generated" else "video_path_gt"
    entries = None
    if isinstance(data, dict):
        entries = next((data[k] for k in ANNOTATION_LIST_KEYS if k in data), None)
    if not isinstance(entries, list):
        found = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise ParamError("annotations", f"annotation file {path} has no list under "
                                        f"{' / '.join(ANNOTATION_LIST_KEYS)} (found: {found})")
    video_dir = base / str(spec["video_dir"]) if "video_dir" in spec else path.parent
    if not video_dir.is_dir():
        raise ParamError("video_dir", f"video set '{name}': video_dir not found: {video_dir}")
    videos = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get(field_name), str):
            raise ParamError("annotations", f"annotation file {path}: entry {index} has no '{field_name}' "
                                            f"(role '{role}'); every entry needs one")
        relative = entry[field_name]
        key_source = entry.get("video_path_gt") or relative
        prompt = entry.get("prompt_gt")
        videos.append(Video(video_dir / relative, Path(str(key_source)).stem, relative,
                            None if prompt is None else str(prompt)))
    _ensure_nonempty(name, "annotations", videos, f"annotation file {path}")
    return VideoSet(name, tuple(videos), f"annotations {spec['annotations']} ({role})")


def _split_generated(stem: str, suffixes: Iterable[str]) -> str | None:
    """The base stem if `stem` ends with _<suffix> or -<suffix> (case-insensitive), else None."""
    lowered = stem.lower()
    for suffix in suffixes:
        for sep in ("_", "-"):
            tail = f"{sep}{suffix.lower()}"
            if lowered.endswith(tail) and len(stem) > len(tail):
                return stem[: -len(tail)]
    return None


def mixed_folder_sets(name: str, spec: Mapping[str, Any], base: Path) -> tuple[VideoSet, VideoSet]:
    """Split one folder into `<name>.real` and `<name>.generated`, paired by base file name."""
    folder = base / str(spec["mixed_folder"])
    if not folder.is_dir():
        raise ParamError("mixed_folder", f"video set '{name}': folder not found: {folder} "
                                         f"(paths are relative to the suite file's folder {base})")
    suffixes = spec.get("suffixes", list(DEFAULT_GENERATED_SUFFIXES))
    if isinstance(suffixes, str):
        suffixes = [suffixes]
    if not isinstance(suffixes, list) or not suffixes or not all(isinstance(s, str) and s for s in suffixes):
        raise ParamError("suffixes", f"'suffixes' must be a list of names like [generated], got {suffixes!r}")
    unmatched_policy = spec.get("unmatched", "error")
    if unmatched_policy not in ("error", "skip"):
        raise ParamError("unmatched", f"'unmatched' must be 'error' or 'skip', got {unmatched_policy!r}")
    files = sorted(p for p in folder.iterdir() if _is_video(p, VIDEO_EXTENSIONS))
    generated: dict[Path, str] = {}
    real_by_stem: dict[str, list[Path]] = {}
    for path in files:
        base_stem = _split_generated(path.stem, suffixes)
        if base_stem is None:
            real_by_stem.setdefault(path.stem, []).append(path)
        else:
            generated[path] = base_stem
    pairs: list[tuple[Path, Path, str]] = []
    used_real: set[Path] = set()
    problems: list[SkippedVideo] = []
    for gen_path, base_stem in generated.items():
        options = real_by_stem.get(base_stem, [])
        options = sorted(options, key=lambda p: (p.suffix.lower() != gen_path.suffix.lower(),
                                                  _extension_rank(p.suffix)))
        if not options:
            problems.append(SkippedVideo(gen_path.name, f"no real video named '{base_stem}.*' to pair with"))
            continue
        pairs.append((options[0], gen_path, base_stem))
        used_real.add(options[0])
    for stems in real_by_stem.values():
        for path in stems:
            if path not in used_real:
                problems.append(SkippedVideo(path.name, "no generated video "
                                             f"'{path.stem}_{suffixes[0]}.*' (or another suffix) to pair with"))
    if problems and unmatched_policy == "error":
        listing = "; ".join(f"{p.label}: {p.reason}" for p in problems)
        raise ParamError("mixed_folder", f"video set '{name}': {len(problems)} unmatched file(s) in {folder}: "
                                         f"{listing}. Rename them, or set 'unmatched: skip' to leave them out")
    if not pairs:
        raise ParamError("mixed_folder", f"video set '{name}': no real/generated pairs in {folder} "
                                         f"(generated files end with _{suffixes[0]} or -{suffixes[0]})")
    real = tuple(Video(r, key, _label(r, folder)) for r, _, key in pairs)
    gen = tuple(Video(g, key, _label(g, folder)) for _, g, key in pairs)
    source = f"mixed folder {spec['mixed_folder']}"
    return (VideoSet(f"{name}.real", real, source + " (real)", tuple(problems)),
            VideoSet(f"{name}.generated", gen, source + " (generated)", tuple(problems)))


def _extension_rank(suffix: str) -> int:
    lowered = suffix.lower()
    return VIDEO_EXTENSIONS.index(lowered) if lowered in VIDEO_EXTENSIONS else len(VIDEO_EXTENSIONS)


def pair_sets(reference: VideoSet, candidate: VideoSet) -> tuple[list[tuple[Video, Video]], list[SkippedVideo]]:
    """Pair videos by key; returns the pairs (in candidate order) and what could not be paired."""
    problems: list[SkippedVideo] = []
    ref_by_key: dict[str, Video] = {}
    for video in reference.videos:
        if video.key in ref_by_key:
            raise ParamError("reference", f"set '{reference.name}' has two videos with pairing key '{video.key}' "
                                          f"({ref_by_key[video.key].label}, {video.label}); rename one")
        ref_by_key[video.key] = video
    pairs: list[tuple[Video, Video]] = []
    seen: set[str] = set()
    for video in candidate.videos:
        if video.key in seen:
            raise ParamError("candidate", f"set '{candidate.name}' has two videos with pairing key "
                                          f"'{video.key}'; rename one")
        seen.add(video.key)
        match = ref_by_key.get(video.key)
        if match is None:
            problems.append(SkippedVideo(video.label, f"no video '{video.key}' in reference set '{reference.name}'"))
        else:
            pairs.append((match, video))
    for key, video in ref_by_key.items():
        if key not in seen:
            problems.append(SkippedVideo(video.label, f"no video '{key}' in candidate set '{candidate.name}'"))
    return pairs, problems
