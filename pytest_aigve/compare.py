"""`python -m pytest_aigve compare A B`: the scores of two stored runs side by side.

A and B are each a baseline name (in the baseline folder, `--dir`), `NAME~N` (the N-th earlier version of a
baseline, from its history folder), a baseline JSON file, or a results JSON file (`reports/aigve-results.json`).
Scores are matched by `<suite>::<check>`; the status reads the metric's direction, so "better" is a higher PSNR
but a lower FVD. Scores whose protocol fingerprints differ are not compared ("protocol differs"): their numbers
come from different measurements.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .baseline import (
    BASELINE_SCHEMA,
    DEFAULT_BASELINE_DIR,
    baseline_history,
    fingerprint_diff,
    history_dir,
    load_baseline,
    resolve_baseline_path,
    score_key,
)
from .errors import AigveError
from .safetext import markdown_text, one_line

RESULTS_SCHEMA = "pytest-aigve/results/1"  # report.results.RESULTS_SCHEMA, without importing pytest
HEADER = ("Check", "A value", "B value", "Δ", "Δ%", "Status")
_EARLIER = re.compile(r"^(?P<name>.+)~(?P<back>\d+)$")


class CompareError(AigveError):
    """An input that cannot be compared; the message names the file and what to do."""


@dataclass(frozen=True)
class Score:
    value: float | None  # None: the check ran but produced no value (an error), or the value was not finite
    higher_is_better: bool | None
    fingerprint: dict[str, Any] | None
    outcome: str = ""  # results files only: passed, failed, error, ...


@dataclass
class Run:
    label: str  # what the user typed
    path: Path
    kind: str  # "baseline" or "results"
    created: str = ""
    commit: str | None = None
    scores: dict[str, Score] = field(default_factory=dict)

    def describe(self) -> str:
        parts = [f"{self.kind} {self.path}"]
        if self.created:
            parts.append(f"created {self.created}")
        if self.commit:
            parts.append(f"commit {self.commit[:12]}")
        return ", ".join(parts)


@dataclass(frozen=True)
class Row:
    key: str
    a: float | None
    b: float | None
    delta: float | None
    delta_pct: float | None
    status: str
    diff: tuple[str, ...] = ()  # fingerprint fields that differ


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def resolve(spec: str, folder: Path, cwd: Path) -> Path:
    """A path to an existing file, `NAME~N` from the history, else <folder>/<spec>.json."""
    earlier = _EARLIER.match(spec)
    if earlier and not (cwd / spec).is_file():
        current = resolve_baseline_path(earlier["name"], folder, cwd)
        versions = baseline_history(current)
        back = int(earlier["back"])
        if back == 0:
            return current
        if back > len(versions):
            where = history_dir(current)
            if not versions:
                raise CompareError(f"{spec}: {where} holds no earlier version of {current}; one is kept there each "
                                   "time --aigve-save-baseline or --aigve-update-baseline overwrites it")
            raise CompareError(f"{spec}: {where} holds {len(versions)} earlier version(s) of {current}; ask for "
                               f"at most {earlier['name']}~{len(versions)}")
        return versions[-back]
    return resolve_baseline_path(spec, folder, cwd)


def load_run(spec: str, folder: Path, cwd: Path | None = None) -> Run:
    """Read one side of the comparison; CompareError (naming the file) when it cannot be read."""
    cwd = cwd or Path.cwd()
    path = resolve(spec, folder, cwd)
    if not path.is_file():
        known = sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []
        raise CompareError(f"{spec}: no such file {path} (baselines in {folder}: {', '.join(known) or 'none'}); "
                           "give a baseline name, NAME~N, or the path of a baseline or results JSON file")
    try:
        data = json.loads(path.read_bytes())
    except OSError as exc:
        raise CompareError(f"cannot read {path}: {exc.strerror or exc}; check the file's permissions") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise CompareError(f"{path} is not valid JSON ({exc}); give a baseline or results file written by "
                           "pytest-aigve") from None
    schema = data.get("schema") if isinstance(data, dict) else None
    if schema == BASELINE_SCHEMA:
        return _baseline_run(spec, path)
    if schema == RESULTS_SCHEMA:
        return _results_run(spec, path, data)
    raise CompareError(f"{path} is neither a pytest-aigve baseline ({BASELINE_SCHEMA}) nor a results file "
                       f"({RESULTS_SCHEMA}), its schema is {schema!r}; give a file written by pytest-aigve")


def _baseline_run(spec: str, path: Path) -> Run:
    try:
        baseline = load_baseline(path)  # the plugin's own checks: finite values, well-formed intervals
    except AigveError as exc:
        raise CompareError(str(exc)) from None
    scores = {key: Score(entry.get("value") if _finite(entry.get("value")) else None,
                         entry.get("higher_is_better") if isinstance(entry.get("higher_is_better"), bool) else None,
                         entry.get("fingerprint") or None)
              for key, entry in baseline.scores.items()}
    commit = baseline.environment.get("git_commit")
    return Run(spec, path, "baseline", baseline.created, commit if isinstance(commit, str) else None, scores)


def _results_run(spec: str, path: Path, data: dict[str, Any]) -> Run:
    records = data.get("records")
    if not isinstance(records, list):
        raise CompareError(f"{path}: 'records' must be a list, found {type(records).__name__}; the results file "
                           "is damaged, run the suite again")
    scores: dict[str, Score] = {}
    for index, record in enumerate(records):
        if not isinstance(record, dict) or not isinstance(record.get("suite"), str) or not isinstance(
                record.get("check"), str):
            raise CompareError(f"{path}: record {index} lacks a 'suite' and 'check' name; the results file is "
                               "damaged, run the suite again")
        value: Any = record.get("value")
        if value is not None and not _finite(value) and not isinstance(value, str):
            # the JSON writer turns non-finite values into strings ("nan"); anything else is damage
            raise CompareError(f"{path}: record {index} ({record['suite']}::{record['check']}) has value "
                               f"{value!r}, expected a number or null; run the suite again")
        direction = record.get("higher_is_better")
        fingerprint = record.get("fingerprint")
        scores[score_key(record["suite"], record["check"])] = Score(
            float(value) if _finite(value) else None, direction if isinstance(direction, bool) else None,
            fingerprint if isinstance(fingerprint, dict) and fingerprint else None, str(record.get("outcome", "")))
    environment = data.get("environment")
    commit = environment.get("git_commit") if isinstance(environment, dict) else None
    return Run(spec, path, "results", str(data.get("created", "")), commit if isinstance(commit, str) else None,
               scores)


def _status(a: Score, b: Score, delta: float) -> str:
    scale = max(abs(a.value or 0.0), abs(b.value or 0.0), 1.0)
    if abs(delta) <= 1e-12 * scale:  # float round-off of the same computation is "same"
        return "same"
    direction = b.higher_is_better if b.higher_is_better is not None else a.higher_is_better
    if direction is None:
        return "changed"  # a score without a known direction: neither better nor worse
    return "better" if (delta > 0) == direction else "worse"


def compare_runs(a: Run, b: Run) -> list[Row]:
    """One row per score in either run: A's order, then those only in B."""
    rows: list[Row] = []
    for key in [*a.scores, *(k for k in b.scores if k not in a.scores)]:
        left, right = a.scores.get(key), b.scores.get(key)
        if left is None or right is None:
            rows.append(Row(key, left.value if left else None, right.value if right else None, None, None,
                            "only in B" if left is None else "only in A"))
            continue
        diff = tuple(fingerprint_diff(left.fingerprint, right.fingerprint)) if (
            left.fingerprint and right.fingerprint) else ()
        if left.value is None or right.value is None:
            missing = [side for side, score in (("A", left), ("B", right)) if score.value is None]
            rows.append(Row(key, left.value, right.value, None, None, f"no value in {' and '.join(missing)}", diff))
            continue
        delta = right.value - left.value
        pct = delta / abs(left.value) * 100 if left.value != 0 else None
        status = "protocol differs" if diff else _status(left, right, delta)
        rows.append(Row(key, left.value, right.value, delta, pct, status, diff))
    return rows


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.6g}"


def cells(row: Row) -> tuple[str, ...]:
    return (row.key, _num(row.a), _num(row.b), "—" if row.delta is None else f"{row.delta:+.4g}",
            "—" if row.delta_pct is None else f"{row.delta_pct:+.2f}%", row.status)


def counts(rows: list[Row]) -> str:
    tally: dict[str, int] = {}
    for row in rows:
        status = "no value" if row.status.startswith("no value") else row.status
        tally[status] = tally.get(status, 0) + 1
    order = ("better", "worse", "same", "changed", "protocol differs", "no value", "only in A", "only in B")
    return ", ".join(f"{tally[s]} {s}" for s in order if s in tally) or "no scores"


def render_text(a: Run, b: Run, rows: list[Row]) -> str:
    table = [HEADER, *(cells(row) for row in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADER))]
    lines = [f"A: {a.label} ({a.describe()})", f"B: {b.label} ({b.describe()})", ""]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
              for line in table]
    lines += ["", counts(rows)]
    differing = [row for row in rows if row.diff]
    if differing:
        lines += ["", "Protocol differences (A -> B):"]
        lines += [f"  {row.key}: {'; '.join(row.diff)}" for row in differing]
    return "\n".join(one_line(line) for line in lines) + "\n"


def render_markdown(a: Run, b: Run, rows: list[Row]) -> str:
    def md(text: str) -> str:
        return markdown_text(text)

    lines = [f"**A**: {md(a.label)} ({md(a.describe())})  ", f"**B**: {md(b.label)} ({md(b.describe())})", "",
             "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(md(cell) for cell in cells(row)) + " |" for row in rows]
    lines += ["", md(counts(rows))]
    differing = [row for row in rows if row.diff]
    if differing:
        lines += ["", "Protocol differences (A -> B):", ""]
        lines += [f"- {md(row.key)}: {md('; '.join(row.diff))}" for row in differing]
    return "\n".join(lines) + "\n"


def cli_compare(a: str, b: str, folder: Path | None, as_markdown: bool) -> int:
    """Print the table; 0 whatever the scores say (this is a report, not a gate), 2 when an input is unusable."""
    import sys

    folder = folder if folder is not None else Path(DEFAULT_BASELINE_DIR)
    try:
        runs = load_run(a, folder), load_run(b, folder)
    except CompareError as exc:
        print(f"python -m pytest_aigve compare: error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    rows = compare_runs(*runs)
    sys.stdout.write((render_markdown if as_markdown else render_text)(*runs, rows))
    return 0
