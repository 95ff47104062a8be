"""Video sets from folders, globs, explicit lists, AIGVE annotation JSON and mixed folders, and the prompts a
set's `prompts:` key attaches to its videos (a CSV, JSONL or JSON manifest, or `.txt` files beside the videos),
and the human ratings its `ratings:` key attaches (a CSV or JSONL manifest, read and matched the same way).

Every function here raises ParamError(key, message) for a bad definition; the suite loader
turns the key into a file:line location.

Folder and glob sets list every entry with a video name that is not a folder, including dangling symlinks,
symlink loops and Git LFS pointer files (an unfetched git-annex or LFS checkout): they are bad videos that the
check reports by name (decode.check_file says what each is), never files that silently vanish from a set.
Walks count the directory entries they visit and stop past MAX_SCANNED_PATHS; globs stay inside the suite's
folder unless the set says `allow_outside: true`.
"""

from __future__ import annotations

import csv
import fnmatch
import json
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import ParamError

VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".mov", ".webm", ".mkv", ".avi", ".m4v")
ANNOTATION_LIST_KEYS: tuple[str, ...] = ("data_list", "datset_list", "dataset_list")  # upstream misspellings
DEFAULT_GENERATED_SUFFIXES: tuple[str, ...] = ("synthetic", "generated")
# annotation fields that are neither ratings nor labels of the video
ANNOTATION_NOT_RATINGS: tuple[str, ...] = ("id", "video_path_pd", "video_path_gt", "prompt_gt")
PROMPT_SIDECAR = "txt"  # `prompts: txt`: clip.mp4 -> clip.txt
PROMPT_PATH_COLUMNS: tuple[str, ...] = ("path", "video")  # the column (CSV) or key (JSONL) naming the video
MAX_SCANNED_PATHS = 100_000  # directory entries one folder or glob set may visit (`glob: /**/*.mp4` would not end)


@dataclass(frozen=True)
class Video:
    path: Path
    key: str  # pairs a reference video with a candidate video
    label: str  # short name for reports
    prompt: str | None = None
    # human ratings by field (an annotation entry's numbers, a `ratings:` manifest's numeric columns), and the
    # entry's text fields (e.g. model, category: what `agreement: {group_by: ...}` groups by)
    ratings: Mapping[str, float] = field(default_factory=dict, hash=False)
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)


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


class _Walk:
    """Directory listings for one set, counted as they are read: a runaway walk stops while walking."""

    def __init__(self, name: str, key: str, what: str, root: Path) -> None:
        self.name, self.key, self.what, self.root = name, key, what, root
        self.visited = 0
        self._listings: dict[str, list[os.DirEntry[str]]] = {}

    def entries(self, folder: str) -> list[os.DirEntry[str]]:
        """The folder's entries sorted by name; an unreadable folder has none (as with glob)."""
        if folder in self._listings:
            return self._listings[folder]
        found: list[os.DirEntry[str]] = []
        try:
            with os.scandir(folder) as listing:
                for entry in listing:
                    self.visited += 1
                    if self.visited > MAX_SCANNED_PATHS:
                        raise ParamError(self.key, f"video set '{self.name}': {self.what} visited more than "
                                                   f"{MAX_SCANNED_PATHS} paths under {self.root} without "
                                                   "finishing; narrow it (e.g. 'videos/*.mp4' rather than "
                                                   "'**/*.mp4', or no 'recursive: true'), or point it at a "
                                                   "smaller folder")
                    found.append(entry)
        except OSError:
            pass
        found.sort(key=lambda entry: entry.name)
        self._listings[folder] = found
        return found


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()  # follows symlinks; False for a dangling link or a loop
    except OSError:
        return False


def _is_file_like(entry: os.DirEntry[str]) -> bool:
    """A file, or a symlink that names no folder: a dangling link or a loop is a bad video, not nothing."""
    try:
        return not _is_dir(entry) and (entry.is_symlink() or entry.is_file())
    except OSError:
        return False


def _has_extension(path: Path, extensions: Sequence[str]) -> bool:
    return path.suffix.lower() in extensions


def _folder_files(folder: Path, recursive: bool, walk: _Walk) -> list[Path]:
    """File-like entries of a folder (and its subfolders, without following symlinked folders, like rglob)."""
    files: list[Path] = []
    pending = [str(folder)]
    while pending:
        current = pending.pop()
        for entry in walk.entries(current):
            if _is_dir(entry):
                if recursive and not entry.is_symlink():
                    pending.append(entry.path)
            elif _is_file_like(entry):
                files.append(Path(entry.path))
    return sorted(files)


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
    walk = _Walk(name, "folder", f"folder {spec['folder']}" + (" (recursive)" if recursive else ""), folder)
    paths = [p for p in _folder_files(folder, recursive, walk) if _has_extension(p, extensions)]
    videos = [Video(p, _label(p, folder).rsplit(".", 1)[0], _label(p, folder)) for p in paths]
    _ensure_nonempty(name, "folder", videos, f"folder {folder}" + (" (recursive)" if recursive else ""))
    return VideoSet(name, tuple(videos), f"folder {spec['folder']}")


def _has_magic(segment: str) -> bool:
    return any(char in segment for char in "*?[")


def _outside(pattern: str, base: Path) -> bool:
    """Whether a pattern can match outside `base`: its literal leading folders normalise to a place outside,
    or a '..' follows a wildcard (where '**' may match no folder at all)."""
    segments = Path(pattern).parts
    literal: list[str] = []
    for index, segment in enumerate(segments):
        if _has_magic(segment):
            if ".." in segments[index:]:
                return True
            break
        literal.append(segment)
    root = os.path.abspath(base)
    prefix = os.path.normpath(os.path.join(root, *literal)) if literal else root
    return os.path.commonpath([root, prefix]) != root


def _glob(pattern: str, base: Path, walk: _Walk) -> list[Path]:
    """Like glob.glob(recursive=True): '*' and '**' skip names starting with '.' unless the pattern's segment
    does, '**' follows symlinked folders (each folder once); matches are file-like entries, sorted."""
    full = Path(pattern) if os.path.isabs(pattern) else base / pattern
    start, segments = (full.anchor, list(full.parts[1:])) if full.is_absolute() else (".", list(full.parts))
    matches: dict[str, None] = {}
    expanded: set[tuple[int, int, int]] = set()  # (device, inode, segment) '**' went into: cycles end

    def hidden_ok(name: str, segment: str) -> bool:
        return not name.startswith(".") or segment.startswith(".")

    def descend(folder: str, index: int) -> None:
        if index == len(segments):
            return
        segment, last = segments[index], index == len(segments) - 1
        if segment == "**":
            descend(folder, index + 1)  # '**' as no folder at all
            for entry in walk.entries(folder):
                if not _is_dir(entry) or entry.name.startswith("."):
                    if last and _is_file_like(entry) and not entry.name.startswith("."):
                        matches[entry.path] = None  # a trailing '**' matches the files below too
                    continue
                try:
                    info = entry.stat()
                except OSError:
                    continue
                identity = (info.st_dev, info.st_ino, index)
                if identity not in expanded:
                    expanded.add(identity)
                    descend(entry.path, index)
        elif _has_magic(segment):
            for entry in walk.entries(folder):
                if not hidden_ok(entry.name, segment) or not fnmatch.fnmatch(entry.name, segment):
                    continue
                if last:
                    if _is_file_like(entry):
                        matches[entry.path] = None
                elif _is_dir(entry):
                    descend(entry.path, index + 1)
        else:  # a literal name: no listing needed
            path = os.path.join(folder, segment)
            if not last:
                if os.path.isdir(path):
                    descend(path, index + 1)
            elif os.path.lexists(path) and not os.path.isdir(path):
                matches[path] = None

    descend(start, 0)
    return [Path(match) for match in sorted(matches)]


def glob_set(name: str, spec: Mapping[str, Any], base: Path) -> VideoSet:
    patterns = spec["glob"]
    if isinstance(patterns, str):
        patterns = [patterns]
    if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
        raise ParamError("glob", f"'glob' must be a pattern or a list of patterns, got {patterns!r}")
    allow_outside = spec.get("allow_outside", False)
    if not isinstance(allow_outside, bool):
        raise ParamError("allow_outside", f"'allow_outside' must be true or false, got {allow_outside!r}")
    found: dict[Path, None] = {}
    walk = _Walk(name, "glob", "", base)  # one budget for the set: listings are shared between its patterns
    for pattern in patterns:
        walk.what = f"glob '{pattern}'"
        if not allow_outside and _outside(pattern, base):
            raise ParamError("glob", f"video set '{name}': glob '{pattern}' reaches outside the suite's folder "
                                     f"{base}; use a pattern relative to it (without '..'), or set "
                                     "'allow_outside: true' on the set if the videos really live elsewhere")
        for path in _glob(pattern, base, walk):
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
    """AIGVE annotation JSON: {"data_list": [{"video_path_pd", "video_path_gt", "prompt_gt"}, ...]}. Every other
    number of an entry is a rating of its video (AIGVE-Bench: technical_quality, dynamic, ..., overall), every other
    text a label (model, category)."""
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
        ratings, labels = _split_fields({k: v for k, v in entry.items() if k not in ANNOTATION_NOT_RATINGS},
                                        {k for k, v in entry.items() if _as_rating(v) is not None
                                         and not isinstance(v, str)})
        videos.append(Video(video_dir / relative, Path(str(key_source)).stem, relative,
                            None if prompt is None else str(prompt), ratings, labels))
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
    walk = _Walk(name, "mixed_folder", f"mixed folder {spec['mixed_folder']}", folder)
    files = [p for p in _folder_files(folder, False, walk) if _has_extension(p, VIDEO_EXTENSIONS)]
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


# --- prompts: a manifest or sidecar files attached to a set's videos ----------------------------------------------


@dataclass(frozen=True)
class _ManifestEntry:
    name: str  # as written: a path relative to the manifest's folder, a bare file name or a stem
    fields: Mapping[str, Any]  # the entry's other columns (CSV: strings; JSONL and JSON: as parsed)
    where: str  # "line 3" (CSV, JSONL) or "key 'clip.mp4'" (JSON)


def _read_text(path: Path, what: str, key: str = "prompts") -> str:
    if not path.is_file():
        raise ParamError(key, f"{key} {what} not found: {path} (paths are relative to the suite file)")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ParamError(key, f"{key} {what} {path} is not UTF-8 ({exc.reason} at byte {exc.start}); "
                              "save it as UTF-8") from None
    except OSError as exc:
        raise ParamError(key, f"cannot read {key} {what} {path}: {exc.strerror or exc}") from None


def _csv_entries(path: Path, key: str, required: Sequence[str]) -> list[_ManifestEntry]:
    reader = csv.DictReader(_read_text(path, "file", key).splitlines(keepends=True))
    header = reader.fieldnames or []
    column = next((c for c in PROMPT_PATH_COLUMNS if c in header), None)
    if column is None or any(name not in header for name in required):
        wanted = "".join(f" and a '{name}' column" for name in required)
        example = ",".join(("path", *required)) if required else "path,overall"
        raise ParamError(key, f"{key} file {path}: line 1 must be a header with a 'path' (or 'video') column"
                              f"{wanted}, found {header!r}; e.g. '{example}'")
    try:
        return [_ManifestEntry(row[column] or "", {name: value or "" for name, value in row.items()
                                                   if name != column and name is not None}, f"line {reader.line_num}")
                for row in reader]
    except csv.Error as exc:
        raise ParamError(key, f"{key} file {path}: line {reader.line_num} is not valid CSV ({exc}); "
                              "quote values holding commas or quotes") from None


def _jsonl_entries(path: Path, key: str, required: Sequence[str]) -> list[_ManifestEntry]:
    entries = []
    for number, line in enumerate(_read_text(path, "file", key).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ParamError(key, f"{key} file {path}: line {number} is not valid JSON ({exc.msg}, "
                                  f"column {exc.colno}); each line must be one object") from None
        column = next((c for c in PROMPT_PATH_COLUMNS if c in item), None) if isinstance(item, dict) else None
        if column is None or not isinstance(item[column], str) or \
                any(not isinstance(item.get(name), str) for name in required):
            wanted = "".join(f" and a string '{name}'" for name in required)
            example = '{"path": "clip.mp4", "prompt": "a cat"}' if required else '{"path": "clip.mp4", "overall": 4}'
            raise ParamError(key, f"{key} file {path}: line {number} needs a string 'path' (or 'video'){wanted}, "
                                  f"like {example}")
        entries.append(_ManifestEntry(item[column], {k: v for k, v in item.items() if k != column},
                                      f"line {number}"))
    return entries


def _json_prompt_entries(path: Path, key: str, required: Sequence[str]) -> list[_ManifestEntry]:
    try:
        data = json.loads(_read_text(path, "file", key))
    except json.JSONDecodeError as exc:
        raise ParamError(key, f"{key} file {path} is not valid JSON (line {exc.lineno}, column {exc.colno}: "
                              f"{exc.msg}); fix or regenerate it") from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ParamError(key, f"{key} file {path} must be one JSON object mapping video file names (or "
                              'stems) to prompts, like {"clip.mp4": "a cat"}; use .jsonl for one object a line')
    return [_ManifestEntry(name, {"prompt": prompt}, f"key {name!r}") for name, prompt in data.items()]


ManifestReader = Callable[[Path, str, Sequence[str]], list[_ManifestEntry]]
PROMPT_READERS: dict[str, ManifestReader] = {".csv": _csv_entries, ".jsonl": _jsonl_entries,
                                             ".json": _json_prompt_entries}
RATING_READERS: dict[str, ManifestReader] = {".csv": _csv_entries, ".jsonl": _jsonl_entries}


def _sidecar_prompts(videos: Sequence[Video]) -> dict[Path, str]:
    prompts = {}
    for video in videos:
        sidecar = video.path.with_suffix(".txt")
        if sidecar.exists():
            prompts[video.path] = _read_text(sidecar, "sidecar").removesuffix("\n").removesuffix("\r")
    return prompts


def _match(entry: _ManifestEntry, folder: Path, videos: Sequence[Video]) -> list[Video]:
    """The videos an entry names: by path relative to the manifest's folder; a bare name (no folder part) also by
    file name, then by stem, where that names one video."""
    target = os.path.normpath(folder / entry.name)
    found = [video for video in videos if os.path.normpath(video.path) == target]
    if found or Path(entry.name).name != entry.name:
        return found
    for attribute in ("name", "stem"):
        found = [video for video in videos if getattr(video.path, attribute) == entry.name]
        if len(found) == 1:
            return found
    return []


def _manifest(path: Path, video_sets: Sequence[VideoSet], key: str, readers: Mapping[str, ManifestReader],
              required: Sequence[str] = ()) -> dict[Path, _ManifestEntry]:
    """The entry of a `prompts:` or `ratings:` manifest naming each video of the sets (by video path). Entries
    naming no video are ignored, unless none names any (a wrong manifest); two entries for one video must agree."""
    reader = readers.get(path.suffix.lower())
    if reader is None:
        kinds = ", ".join(readers)
        raise ParamError(key, f"'{key}' must name a {kinds.replace(', ', ' or ')} file, got {path.name!r}")
    entries = [entry for entry in reader(path, key, required) if entry.name]
    videos = [video for video_set in video_sets for video in video_set.videos]
    given_by: dict[Path, _ManifestEntry] = {}
    unmatched: list[str] = []
    for entry in entries:
        found = _match(entry, path.parent, videos)
        if not found:
            unmatched.append(entry.name)
        for video in found:
            first = given_by.setdefault(video.path, entry)
            if first.fields != entry.fields:
                raise ParamError(key, f"{key} file {path}: {first.where} and {entry.where} give different "
                                      f"{key} for {video.label}; keep one")
    if not given_by:
        names = ", ".join(repr(name) for name in unmatched[:5]) + (f" and {len(unmatched) - 5} more"
                                                                   if len(unmatched) > 5 else "")
        sets = " and ".join(f"'{video_set.name}'" for video_set in video_sets)
        raise ParamError(key, f"{key} file {path} names no video of set {sets} "
                              f"({len(entries)} entries: {names or 'none'}); give paths relative to "
                              f"{path.parent}, or bare file names or stems (e.g. {videos[0].path.name!r})")
    return given_by


def attach_prompts(video_sets: Sequence[VideoSet], value: Any, base: Path) -> list[VideoSet]:
    """The sets with the prompts of their `prompts:` source (a manifest relative to `base`, or 'txt'), which take
    precedence over prompts the set's own source gave (annotations, files). Entries naming no video of the sets
    are ignored, unless no entry names any (a wrong manifest): then it is an error naming the entries."""
    if not isinstance(value, str) or not value:
        raise ParamError("prompts", f"'prompts' must be a .csv, .jsonl or .json file, or '{PROMPT_SIDECAR}', "
                                    f"got {value!r}")
    videos = [video for video_set in video_sets for video in video_set.videos]
    if value == PROMPT_SIDECAR:
        prompts = _sidecar_prompts(videos)
        if not prompts:
            sample = videos[0].path.with_suffix(".txt")
            raise ParamError("prompts", f"'prompts: {PROMPT_SIDECAR}': no video of set "
                                        f"'{video_sets[0].name}' has a .txt beside it (looked for {sample}, ...)")
    elif Path(value).suffix.lower() not in PROMPT_READERS:
        raise ParamError("prompts", f"'prompts' must name a .csv, .jsonl or .json file, or be '{PROMPT_SIDECAR}' "
                                    f"(a .txt beside each video), got {Path(value).name!r}")
    else:
        found = _manifest(base / value, video_sets, "prompts", PROMPT_READERS, ("prompt",))
        prompts = {video: str(entry.fields["prompt"]) for video, entry in found.items() if entry.fields["prompt"]}
    return [replace(video_set, videos=tuple(replace(video, prompt=prompts[video.path]) if video.path in prompts
                                            else video for video in video_set.videos))
            for video_set in video_sets]


def _as_rating(value: Any) -> float | None:
    """A number (JSON) or a numeric text (CSV) as a finite float; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def _split_fields(fields: Mapping[str, Any], numeric: set[str]) -> tuple[dict[str, float], dict[str, str]]:
    """An entry's ratings (its numeric columns) and labels (its text columns); empty cells are neither."""
    ratings: dict[str, float] = {}
    labels: dict[str, str] = {}
    for name, value in fields.items():
        if value is None or value == "":
            continue
        rating = _as_rating(value) if name in numeric else None
        if rating is not None:
            ratings[name] = rating
        elif isinstance(value, str):
            labels[name] = value
    return ratings, labels


def attach_ratings(video_sets: Sequence[VideoSet], value: Any, base: Path) -> list[VideoSet]:
    """The sets with the ratings of their `ratings:` manifest (CSV or JSONL: a `path` or `video` column, then one
    column per rating): columns whose every value is a number are ratings, the others labels (e.g. `model`, for
    `group_by`). They take precedence over those of the set's own source (annotations)."""
    if not isinstance(value, str) or not value:
        raise ParamError("ratings", f"'ratings' must name a .csv or .jsonl file, got {value!r}")
    found = _manifest(base / value, video_sets, "ratings", RATING_READERS)
    columns: dict[str, bool] = {}
    for entry in found.values():
        for name, cell in entry.fields.items():
            if cell is not None and cell != "":
                columns[name] = columns.get(name, True) and _as_rating(cell) is not None
    numeric = {name for name, is_number in columns.items() if is_number}
    split = {path: _split_fields(entry.fields, numeric) for path, entry in found.items()}

    def rated(video: Video) -> Video:
        if video.path not in split:
            return video
        ratings, labels = split[video.path]
        return replace(video, ratings={**video.ratings, **ratings}, labels={**video.labels, **labels})

    return [replace(video_set, videos=tuple(rated(video) for video in video_set.videos)) for video_set in video_sets]
