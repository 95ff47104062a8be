"""The self-contained HTML report: one file, inline CSS, thumbnails as data: URIs, everything escaped."""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True)
class Coefficient:
    name: str
    value: str  # with its interval
    level: str  # "95%", or "" where no interval was computed


@dataclass(frozen=True)
class ModelRow:
    group: str
    n: str
    mean_score: str
    mean_rating: str
    rank_score: str
    rank_rating: str


@dataclass(frozen=True)
class AgreementView:
    """What the report shows of an agreement check: plain text (escaped by the template) and the scatter plot
    (markup built from escaped text only)."""

    ratings: str
    n: str
    direction: str
    coefficients: list[Coefficient]
    gate: str
    verdict: str
    message: str
    scatter: markupsafe.Markup
    group_by: str
    models: list[ModelRow]
    model_kendall: str
    pairwise_accuracy: str


def _text(value: Any) -> str:
    return "—" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def agreement_view(record: dict[str, Any]) -> AgreementView | None:
    from .scatter import scatter_svg
    from .summary import coefficient_text

    agreement = record.get("agreement")
    if not agreement:
        return None
    coefficients = []
    for name, coefficient in (agreement.get("coefficients") or {}).items():
        level = (coefficient or {}).get("level")
        coefficients.append(Coefficient(name, coefficient_text(coefficient),
                                        f"{level * 100:g}%" if isinstance(level, int | float) else ""))
    gate = ", ".join(f"{key.removeprefix('min_')} ≥ {_text(bound)}" if key.startswith("min_")
                     else f"{key} {_text(bound)}" for key, bound in (agreement.get("gate") or {}).items())
    ratings = str(agreement.get("ratings", "ratings"))
    scatter = scatter_svg(agreement.get("points") or [], f"{record['metric']} score", ratings)
    models = agreement.get("models") or {}
    return AgreementView(
        ratings=ratings, n=_text(agreement.get("n")), direction=str(agreement.get("direction", "")),
        coefficients=coefficients, gate=gate or "—", verdict=str(agreement.get("verdict", "—")),
        message=str(agreement.get("message", "")),
        scatter=markupsafe.Markup(scatter),  # safe: scatter_svg builds it from escaped text only
        group_by=str(models.get("group_by", "")),
        models=[ModelRow(str(m.get("group", "?")), _text(m.get("n")), _text(m.get("mean_score")),
                         _text(m.get("mean_rating")), _text(m.get("rank_score")), _text(m.get("rank_rating")))
                for m in models.get("table") or []],
        model_kendall=_text(models.get("kendall")), pairwise_accuracy=_text(models.get("pairwise_accuracy")))


def render_html(results: dict[str, Any]) -> str:
    from .summary import chart_svg, headline, notices, row

    template = _ENV.get_template("report.html.j2")
    records = results["records"]
    table = [{"record": r, "row": row(r), "chart": markupsafe.Markup(chart_svg(r)), "videos": per_video_rows(r),
              "agreement": agreement_view(r)}
             for r in records]
    return template.render(results=results, records=records, table=table, summary=results["summary"],
                           set_strips=_set_strips(records), env=results["environment"],
                           baseline=results.get("baseline"), notices=notices(results), headline=headline(results))
