"""The self-contained HTML report: one file, inline CSS, thumbnails as data: URIs, everything escaped."""

from __future__ import annotations

from typing import Any

import jinja2
import markupsafe

from ..safetext import printable


def _visible(value: Any) -> Any:
    """Every {{ value }} of the template: bidi overrides and control characters shown as escapes, so a file
    name cannot reorder or hide what the reviewer reads (markup we built ourselves passes unchanged)."""
    return printable(value) if isinstance(value, str) and not isinstance(value, markupsafe.Markup) else value


_ENV = jinja2.Environment(
    finalize=_visible,
    loader=jinja2.PackageLoader("pytest_aigve", "report/templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _format_value(value: Any) -> str:
    return "—" if value is None else f"{value:.6g}"


def _threshold(threshold: dict[str, float | None]) -> str:
    low, high = threshold.get("min"), threshold.get("max")
    if low is not None and high is not None:
        return f"{low:g} … {high:g}"
    if low is not None:
        return f"≥ {low:g}"
    if high is not None:
        return f"≤ {high:g}"
    return "—"


_ENV.filters["value"] = _format_value
_ENV.filters["threshold"] = _threshold


def _set_strips(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One thumbnail strip row per (suite, set), in first-seen order."""
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for record in records:
        for set_name, thumbs in record.get("thumbnails", {}).items():
            key = (record["suite"], set_name)
            if key not in seen and thumbs:
                seen[key] = {"suite": record["suite"], "set": set_name, "thumbs": thumbs,
                             "size": record["set_sizes"].get(set_name, len(thumbs))}
    return list(seen.values())


def per_video_rows(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Per-video rows, worst first (by the change against the baseline where there is one), failing ones marked."""
    from ..gate import worst_first

    scores, before = record.get("per_video", {}), record.get("per_video_baseline", {})
    failed = {f["video"]: f["reason"] for f in (record.get("gate") or {}).get("videos_failed", [])}
    notes = record.get("video_notes", {})
    return [{"video": key, "score": scores[key], "baseline": before.get(key),
             "delta": None if key not in before else scores[key] - before[key],
             "prompt": record.get("prompts", {}).get(key, ""), "failed": failed.get(key, ""),
             "notes": "; ".join(f"{set_name}: {note}" if len(notes) > 1 else note
                                for set_name, by_label in notes.items() for note in by_label.get(key, []))}
            for key in worst_first(scores, before, record["higher_is_better"])]


def render_html(results: dict[str, Any]) -> str:
    from .summary import chart_svg, headline, notices, row

    template = _ENV.get_template("report.html.j2")
    records = results["records"]
    table = [{"record": r, "row": row(r), "chart": markupsafe.Markup(chart_svg(r)), "videos": per_video_rows(r)}
             for r in records]
    return template.render(results=results, records=records, table=table, summary=results["summary"],
                           set_strips=_set_strips(records), env=results["environment"],
                           baseline=results.get("baseline"), notices=notices(results), headline=headline(results))
