"""`python -m pytest_aigve validate suite.yaml ...`: every problem of a suite at once, without running it.

A pytest run stops a suite at its first error (a collection error); while writing a suite one wants the whole
list. Video files are listed but not decoded: bad videos still surface only when a check reads them.
"""

from __future__ import annotations

from pathlib import Path

from .errors import SuiteError
from .metrics.registry import MetricRegistry
from .safetext import printable
from .suite import Suite, load_suite


def validate(path: Path, registry: MetricRegistry) -> tuple[Suite | None, list[SuiteError]]:
    problems: list[SuiteError] = []
    try:
        suite = load_suite(path, registry, problems)
    except SuiteError as exc:  # the file as a whole cannot be read (syntax, missing sections)
        return None, [*problems, exc]
    return suite, problems


def cli_validate(paths: list[Path]) -> int:
    registry = MetricRegistry()  # the built-in metrics; plugins' metrics are known inside a pytest run
    total = 0
    for path in paths:
        suite, problems = validate(path, registry)
        for problem in sorted(problems, key=lambda p: p.line or 0):
            print(printable(str(problem)))
        if suite is not None and not problems:
            videos = sum(len(video_set.videos) for video_set in suite.sets.values())
            print(printable(f"{path}: ok: {len(suite.checks)} checks over {len(suite.sets)} video sets "
                            f"({videos} videos)"))
        total += len(problems)
    if total:
        print(f"{total} problem(s) in {len(paths)} suite file(s)")
    return 1 if total else 0
