"""The reviewer's table (check, value ± interval, baseline, Δ, Δ%, tolerance, verdict), for the terminal,
Markdown and HTML, and the inline SVG chart of a score against its baseline."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..safetext import markdown_text, one_line

VERDICT_WORDS = {"passed": "pass", "warned": "warn", "failed": "FAIL", "error": "ERROR", "skipped": "skip"}
HEADER = ("Check", "Value", "Interval", "Baseline", "Δ", "Δ%", "Tolerance", "Verdict")


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.5g}"


@dataclass(frozen=True)
class Row:
    check: str
    value: str
    interval: str
    baseline: str
    delta: str
    delta_pct: str
    tolerance: str
    verdict: str
    status: str

    def cells(self) -> tuple[str, ...]:
        return (self.check, self.value, self.interval, self.baseline, self.delta, self.delta_pct, self.tolerance,
                self.verdict)


def row(record: dict[str, Any]) -> Row:
    gate = record.get("gate") or {}
    interval = record.get("interval")
    interval_text = "—" if not interval else (f"[{_num(interval['low'])}, {_num(interval['high'])}] "
                                              f"{interval['level'] * 100:g}%")
    baseline = gate.get("baseline_value")
    pct = gate.get("delta_pct")
    status = gate.get("status", "")
    verdict = VERDICT_WORDS.get(record["outcome"], record["outcome"])
    if status in ("improved", "regressed", "within noise", "new") and record["outcome"] != "error":
        verdict = f"{verdict} ({status})"
    delta = gate.get("delta")
    return Row(f"{record['suite']}::{record['check']}", _num(record.get("value")), interval_text,
               "—" if baseline is None else f"{_num(baseline)} ({gate.get('baseline')})",
               "—" if delta is None else f"{delta:+.4g}", "—" if pct is None else f"{pct:+.2f}%",
               gate.get("tolerance", "—") if baseline is not None else "—", verdict, status)


def _coefficient_number(value: Any) -> str:
    """A coefficient as shown: None (undefined, e.g. constant ratings) or a JSON "nan" shown as such."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:.3g}"
    return "—" if value is None else str(value)


def coefficient_text(coefficient: dict[str, Any] | None, interval: bool = True) -> str:
    """`0.54 [-0.1, 0.9]`: a correlation with its bootstrap interval (plain text)."""
    if not coefficient:
        return "—"
    text = _coefficient_number(coefficient.get("value"))
    if interval and (coefficient.get("low") is not None or coefficient.get("high") is not None):
        text += f" [{_coefficient_number(coefficient.get('low'))}, {_coefficient_number(coefficient.get('high'))}]"
    return text


AGREEMENT_HEADER = ("Check", "Ratings", "Spearman", "Kendall", "PLCC", "n", "Verdict")


def agreement_cells(record: dict[str, Any]) -> tuple[str, ...]:
    """One row of the agreement table of a record that has `agreement` (plain text; each output escapes it)."""
    agreement = record["agreement"]
    coefficients = agreement.get("coefficients") or {}
    return (f"{record['suite']}::{record['check']}", str(agreement.get("ratings", "—")),
            coefficient_text(coefficients.get("spearman")),
            coefficient_text(coefficients.get("kendall"), interval=False),
            coefficient_text(coefficients.get("plcc"), interval=False), str(agreement.get("n", "—")),
            str(agreement.get("verdict", "—")))


def rows(records: list[dict[str, Any]]) -> list[Row]:
    return [row(record) for record in records]


def terminal_lines(records: list[dict[str, Any]]) -> list[str]:
    table = [HEADER, *(r.cells() for r in rows(records))]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADER))]
    return [one_line("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
            for line in table]


def _md(text: str) -> str:
    return markdown_text(str(text))


def headline(results: dict[str, Any]) -> str:
    summary = results["summary"]
    text = (f"{summary['passed']} passed, {summary['warned']} warned, {summary['failed']} failed, "
            f"{summary['errors']} errors")
    if summary.get("not_run"):
        text += f", {summary['not_run']} not run"
    if results.get("interrupted"):
        text += " (interrupted)"
    elif not results.get("complete", True):
        text += " (incomplete)"
    return text


def notices(results: dict[str, Any]) -> list[tuple[str, str]]:
    """(kind, text) lines every report shows: incompleteness, baseline matching, warnings, skipped videos.
    Plain text; each output escapes it its own way."""
    lines: list[tuple[str, str]] = []
    summary = results["summary"]
    if summary.get("not_run"):
        shown = ", ".join(results.get("not_run", [])[:10])
        lines.append(("incomplete", f"{summary['not_run']} collected check(s) did not run: {shown}; this run is "
                                    "not a complete evaluation"))
    baseline = results.get("baseline") or {}
    if baseline.get("new_checks"):
        lines.append(("baseline", f"checks with no entry in baseline {baseline['name']} (not compared): "
                                  + ", ".join(baseline["new_checks"])))
    if baseline.get("unmatched_entries"):
        lines.append(("baseline", f"entries of baseline {baseline['name']} that no check matched (renamed or "
                                  "removed checks): " + ", ".join(baseline["unmatched_entries"])))
    if baseline.get("suites_not_run"):
        lines.append(("baseline", f"suites of baseline {baseline['name']} not in this run: "
                                  + ", ".join(baseline["suites_not_run"])))
    for record in results["records"]:
        name = f"{record['suite']}::{record['check']}"
        lines.extend(("warning", f"{name}: {warning}") for warning in record.get("warnings", []))
        skipped = record.get("videos_skipped", [])
        if skipped:
            listing = "; ".join(f"{s['video']} ({s['reason']})" for s in skipped[:5])
            more = f"; and {len(skipped) - 5} more" if len(skipped) > 5 else ""
            lines.append(("skipped", f"{name}: {len(skipped)} video(s) left out: {listing}{more}"))
    return lines


ICONS = {"failed": "❌", "error": "💥", "warned": "⚠️", "passed": "✅", "skipped": "⏭️"}
ORDER = {"error": 0, "failed": 1, "warned": 2, "passed": 3, "skipped": 4}


def _worst_lines(record: dict[str, Any], count: int = 3) -> list[str]:
    """The videos behind a failing check: those failing a per-video gate, else the worst scores."""
    from ..gate import worst_first

    failed = (record.get("gate") or {}).get("videos_failed", [])
    if failed:
        return [f"  - {_md(f['video'])} = {f['value']:.5g} ({_md(f['reason'])})" for f in failed[:count]]
    scores, before = record.get("per_video", {}), record.get("per_video_baseline", {})
    lines = []
    for key in worst_first(scores, before, record["higher_is_better"])[:count]:
        was = f" (baseline {before[key]:.5g})" if key in before else ""
        lines.append(f"  - {_md(key)} = {scores[key]:.5g}{was}")
    return lines


def markdown(results: dict[str, Any]) -> str:
    """The PR comment / job summary: failures first, with the videos behind them and what to do."""
    icon = "❌" if results["summary"]["failed"] or results["summary"]["errors"] or not results.get(
        "complete", True) else "✅"
    lines = [f"## {icon} AIGVE evaluation: {headline(results)}", ""]
    if results.get("report_url"):
        lines += [f"Full report with per-video tables and frames: [HTML report]({results['report_url']})", ""]
    baseline = results.get("baseline")
    if baseline:
        lines += [f"Compared with baseline **{_md(baseline['name'])}** ({_md(baseline.get('created', ''))}, "
                  f"commit {_md(str(baseline.get('commit') or 'unknown'))}).", ""]
    records = sorted(results["records"], key=lambda r: ORDER.get(r["outcome"], 5))  # stable: suite order kept
    notes = [r for r in records if r["outcome"] in ("failed", "warned", "error") and r["message"]]
    if notes:
        lines += ["### Failures", ""]
        for r in notes:
            lines.append(f"- {ICONS.get(r['outcome'], '')} **{_md(r['suite'])}::{_md(r['check'])}** "
                         f"({r['outcome']}): {_md(r['message'][:500])}")
            lines += _worst_lines(r) if r.get("per_video") else []
            advice = (r.get("gate") or {}).get("advice")
            if advice:
                lines.append(f"  - what now: {_md(advice)}")
        lines.append("")
    if records:
        lines += ["| | " + " | ".join(HEADER) + " |", "|---|" + "---|" * len(HEADER)]
        lines += [f"| {ICONS.get(r['outcome'], '')} | " + " | ".join(_md(cell) for cell in row(r).cells()) + " |"
                  for r in records]
        lines.append("")
    agreeing = [r for r in records if r.get("agreement")]
    if agreeing:
        lines += ["### Agreement with human ratings", "", "| " + " | ".join(AGREEMENT_HEADER) + " |",
                  "|" + "---|" * len(AGREEMENT_HEADER)]
        lines += ["| " + " | ".join(_md(cell) for cell in agreement_cells(r)) + " |" for r in agreeing]
        lines.append("")
    extra = notices(results)
    if extra:
        lines += ["### Notices", ""]
        lines += [f"- **{kind}**: {_md(text[:1000])}" for kind, text in extra]
        lines.append("")
    mismatches = [r for r in records if r.get("fingerprint_diff")]
    if mismatches:
        lines += ["### Protocol differences from the baseline", ""]
        lines += [f"- {_md(r['check'])}: " + ", ".join(f"`{one_line(d).replace('`', '')}`"
                                                       for d in r["fingerprint_diff"])
                  for r in mismatches]
        lines.append("")
    for error in results["collection_errors"]:
        lines.append(f"- 💥 collection error in {_md(error['node'])}: {_md(error['message'][:500])}")
    return "\n".join(lines).rstrip() + "\n"


def chart_svg(record: dict[str, Any], width: int = 180, height: int = 22) -> str:
    """Value (dot), bootstrap interval (bar), baseline (line) and tolerated bound (dashed), on one axis.
    Built from numbers only: safe to embed unescaped."""
    value = record.get("value")
    if value is None:
        return ""
    gate = record.get("gate") or {}
    interval = record.get("interval")
    points = [value]
    if interval:
        points += [interval["low"], interval["high"]]
    for key in ("baseline_value", "bound"):
        if gate.get(key) is not None:
            points.append(gate[key])
    low, high = min(points), max(points)
    span = (high - low) or max(abs(high), 1.0) * 0.1
    low, high = low - span * 0.1, high + span * 0.1

    def x(v: float) -> float:
        return round(6 + (width - 12) * (v - low) / (high - low), 1)

    mid = height // 2
    colour = {"failed": "#cf222e", "error": "#9a6700", "warned": "#9a6700"}.get(record["outcome"], "#1a7f37")
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
             f'<line x1="4" x2="{width - 4}" y1="{mid}" y2="{mid}" stroke="#d0d7de"/>']
    if interval:
        parts.append(f'<rect x="{x(interval["low"])}" y="{mid - 4}" height="8" rx="2" fill="{colour}" '
                     f'fill-opacity="0.25" width="{max(1.0, x(interval["high"]) - x(interval["low"]))}"/>')
    if gate.get("bound") is not None:
        parts.append(f'<line x1="{x(gate["bound"])}" x2="{x(gate["bound"])}" y1="2" y2="{height - 2}" '
                     'stroke="#57606a" stroke-dasharray="2,2"/>')
    if gate.get("baseline_value") is not None:
        parts.append(f'<line x1="{x(gate["baseline_value"])}" x2="{x(gate["baseline_value"])}" y1="2" '
                     f'y2="{height - 2}" stroke="#0969da" stroke-width="2"/>')
    parts.append(f'<circle cx="{x(value)}" cy="{mid}" r="4" fill="{colour}"/></svg>')
    return "".join(parts)
