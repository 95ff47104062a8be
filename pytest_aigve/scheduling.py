"""Decode groups: checks that read the same videos with the same decode protocol belong together.

Under pytest-xdist each worker has its own clip cache, so two checks over one set that land on two workers decode
the set twice. Checks are grouped into the connected components of "shares a (video, decode key)"; with xdist's
`loadgroup` distribution a group goes to one worker, and unrelated groups still run in parallel.

The xdist controller collects nothing, and xdist's own loadgroup learns groups from node ids the workers rewrite
(`nodeid@group`), which no longer takes effect on pytest 9.2 (pytest-dev/pytest-xdist#1386). So the controller
computes the groups itself from the collected node ids (`groups_by_nodeid`, loading each suite file again) and
schedules them with `decode_group_scheduler`. Pure up to that scheduler, which imports xdist when called.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import AigveError

if TYPE_CHECKING:
    from xdist.remote import Producer
    from xdist.scheduler.protocol import Scheduling

    from .suite import CheckSpec, Suite

GROUP_PREFIX = "aigve"
HASH_CHARS = 8
# xdist reads the group after the last '@' of a node id, and only when no ']' follows it: keep both out of names
_UNSAFE = re.compile(r"[^A-Za-z0-9_.+\-]")

ClipKey = tuple[str, Hashable]  # (resolved video path, the protocol's decode key)


@dataclass(frozen=True)
class CheckReads:
    """What one check decodes: its videos (resolved paths) under one decode key."""

    check: str  # unique among the checks grouped together, e.g. the node id
    first_set: str  # names the group when this check is the first of it
    videos: tuple[str, ...]
    decode_key: Hashable

    def clip_keys(self) -> list[ClipKey]:
        return [(video, self.decode_key) for video in self.videos]


@lru_cache(maxsize=65_536)
def _resolved(path: Path) -> str:
    return str(path.resolve())


def check_reads(check_id: str, suite: Suite, check: CheckSpec) -> CheckReads:
    """The videos of every set the check names, as the clip cache identifies them (resolved paths)."""
    videos = tuple(_resolved(Path(video.path)) for name in check.sets for video in suite.sets[name].videos)
    return CheckReads(check=check_id, first_set=check.sets[0], videos=videos, decode_key=check.protocol.decode_key())


class _UnionFind:
    def __init__(self, size: int) -> None:
        self.parent = list(range(size))

    def find(self, index: int) -> int:
        while self.parent[index] != index:
            self.parent[index] = self.parent[self.parent[index]]
            index = self.parent[index]
        return index

    def union(self, a: int, b: int) -> None:
        root_a, root_b = self.find(a), self.find(b)
        if root_a != root_b:
            self.parent[max(root_a, root_b)] = min(root_a, root_b)  # the root is the earliest check


def _group_name(first: CheckReads, keys: set[ClipKey]) -> str:
    """`aigve:<first set>:<hash of the clips read>`: the same files and protocols give the same name on every
    worker and in every run, whatever other checks the suite has."""
    payload = "\n".join(sorted(repr(key) for key in keys)) if keys else f"check {first.check}"
    digest = hashlib.sha256(payload.encode()).hexdigest()[:HASH_CHARS]
    return f"{GROUP_PREFIX}:{_UNSAFE.sub('_', first.first_set)}:{digest}"


def decode_groups(checks: Sequence[CheckReads]) -> list[str]:
    """One group name per check, in order: checks that share a (video, decode key), directly or through other
    checks, get the same name. A check that reads no video is a group of its own."""
    components = _UnionFind(len(checks))
    first_reader: dict[ClipKey, int] = {}
    for index, reads in enumerate(checks):
        for key in reads.clip_keys():
            components.union(first_reader.setdefault(key, index), index)
    keys: dict[int, set[ClipKey]] = {}
    for index, reads in enumerate(checks):
        keys.setdefault(components.find(index), set()).update(reads.clip_keys())
    names = {root: _group_name(checks[root], clip_keys) for root, clip_keys in keys.items()}
    return [names[components.find(index)] for index in range(len(checks))]


def implies_load(option: Any) -> bool:
    """xdist's `-n N` without `--dist` (or `-d`): xdist would pick plain `load` scheduling. `option` is pytest's
    parsed command line, read before xdist's own pytest_cmdline_main fills in `dist`."""
    return (getattr(option, "dist", None) == "no" and bool(getattr(option, "numprocesses", None))
            and not getattr(option, "distload", False))


def groups_by_nodeid(nodeids: Sequence[str], rootpath: Path,
                     load: Callable[[Path], Suite | None]) -> dict[str, str]:
    """The decode group of each suite check among collected node ids (`<suite file>::<check id>`, relative to
    `rootpath`). `load` gives a file's suite, or None for a file that is no suite. A suite that fails to load here is
    left out: its checks are scheduled one by one, and the workers report its error."""
    by_file: dict[str, list[str]] = {}
    for nodeid in nodeids:
        file, separator, _ = nodeid.partition("::")
        if separator:
            by_file.setdefault(file, []).append(nodeid)
    reads: list[CheckReads] = []
    for file, ids in by_file.items():
        try:
            suite = load(rootpath / file)
        except (AigveError, OSError):
            continue
        if suite is None:
            continue
        checks = {check.id: check for check in suite.checks}
        reads += [check_reads(nodeid, suite, checks[check_id]) for nodeid in ids
                  if (check_id := nodeid.partition("::")[2]) in checks]
    return dict(zip((one.check for one in reads), decode_groups(reads), strict=True))


def decode_group_scheduler(config: Any, log: Producer,
                           groups_of: Callable[[Sequence[str]], Mapping[str, str]]) -> Scheduling:
    """xdist's loadgroup scheduler, with the suite checks grouped by `groups_of` (called once, on the collected node
    ids) and every other test by its own `xdist_group` mark, as xdist does. Call only under xdist.

    `groups_of` loads the suites, which imports torch (through the metrics) in the controller: about 2 s on a busy
    2-core machine, once per run. Importing it in a thread while the workers start was slower still: the import
    holds the GIL that the controller's execnet threads need to start the workers."""
    from xdist.scheduler import LoadGroupScheduling

    class DecodeGroupScheduling(LoadGroupScheduling):
        groups: Mapping[str, str] | None = None

        def schedule(self) -> None:
            if self.groups is None and self.registered_collections:
                self.groups = groups_of(next(iter(self.registered_collections.values())))
            super().schedule()

        def _split_scope(self, nodeid: str) -> str:
            group = (self.groups or {}).get(nodeid)
            return super()._split_scope(nodeid) if group is None else group

        def remove_node(self, node: Any) -> str | None:
            """A crashed worker's unfinished group goes to another worker, but never the check it crashed on:
            xdist's group schedulers requeue that one too, so one check that kills its worker (out of memory, a
            segfault in a decoder) would kill every replacement worker in turn. It is reported as crashed once."""
            workload = self.assigned_work.get(node, {})
            crashed = next((nodeid for unit in workload.values() for nodeid, done in unit.items() if not done), None)
            if crashed is None:
                return super().remove_node(node)
            for unit in workload.values():
                if crashed in unit:
                    unit[crashed] = True  # done: not run again
            super().remove_node(node)
            return crashed

    return DecodeGroupScheduling(config, log)
