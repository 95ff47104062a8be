"""Agreement with human ratings in the reports: the scatter plot, the HTML block and the Markdown section."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from pytest_aigve.records import ItemRecord
from pytest_aigve.report.html import render_html
from pytest_aigve.report.scatter import scatter_svg
from pytest_aigve.report.summary import markdown

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = 'a<b>&"c.mp4'


def record(check: str, agreement: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    base = ItemRecord(nodeid=f"s.yaml::{check}", suite="s", suite_file="s.yaml", check=check, metric="flicker",
                      sets=["gen"], higher_is_better=True, inputs="single", threshold={}, protocol={}, params={},
                      line=3, outcome="passed", value=0.5).to_dict()
    if agreement is not None:
        base["agreement"] = agreement
    return {**base, **fields}


def coefficient(value: float | None, low: float, high: float) -> dict[str, Any]:
    return {"value": value, "low": low, "high": high, "level": 0.95, "resamples": 1000, "seed": 0}


def agreement(points: list[dict[str, Any]], verdict: str = "pass",
              models: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"ratings": "technical_quality", "n": len(points), "direction": "higher is better",
            "coefficients": {"spearman": coefficient(0.54, -0.1, 0.9), "kendall": coefficient(0.41, -0.2, 0.8),
                             "plcc": coefficient(0.6, 0.05, 0.92)},
            "gate": {"min_spearman": 0.3}, "verdict": verdict,
            "message": f"flicker vs technical_quality: spearman 0.54 [-0.1, 0.9] (n {len(points)}), expected >= 0.3",
            "points": points, "models": models}


POINTS = [{"video": "cogvideox_0.mp4", "score": 0.97, "rating": 4.0, "outlier": False},
          {"video": "cogvideox_1.mp4", "score": 0.95, "rating": 3.0, "outlier": False},
          {"video": "opensora_0.mp4", "score": 0.91, "rating": 2.5, "outlier": False},
          {"video": HOSTILE, "score": 0.2, "rating": 4.5, "outlier": True}]
MODELS = {"group_by": "model",
          "table": [{"group": "cogvideox", "n": 2, "mean_score": 0.96, "mean_rating": 3.5, "rank_score": 1,
                     "rank_rating": 1},
                    {"group": "opensora", "n": 2, "mean_score": 0.555, "mean_rating": 3.5, "rank_score": 2,
                     "rank_rating": 2}],
          "kendall": 1.0, "pairwise_accuracy": 1.0}


def results_of(*records: dict[str, Any]) -> dict[str, Any]:
    return {"summary": {"passed": len(records), "warned": 0, "failed": 0, "errors": 0, "not_run": 0,
                        "collection_errors": 0, "total": len(records)}, "records": list(records),
            "interrupted": False, "complete": True, "collection_errors": [], "baseline": None, "not_run": [],
            "created": "now", "duration_s": 1.0, "exit_status": 0,
            "environment": {"python": "3", "platform": "x", "packages": {}}}


def svgs_of(html: str) -> list[ET.Element]:
    """Every scatter plot of a page, parsed as XML: proof that each is well formed on its own."""
    return [ET.fromstring(match) for match in re.findall(r'<svg [^>]*class="scatter".*?</svg>', html, re.S)]


def point_circles(svg: ET.Element) -> list[ET.Element]:
    group = next(g for g in svg.iter(f"{SVG}g") if g.get("class") == "points")
    return list(group.iter(f"{SVG}circle"))


# --- the scatter plot on its own --------------------------------------------------------------------------------

def test_scatter_has_one_titled_circle_per_point_and_marks_outliers() -> None:
    svg = ET.fromstring(scatter_svg(POINTS, "flicker score", "technical_quality"))
    circles = point_circles(svg)
    assert len(circles) == len(POINTS)
    titles = [circle.findtext(f"{SVG}title") for circle in circles]
    assert "cogvideox_0.mp4: score 0.97, rating 4" in titles
    assert f"{HOSTILE}: score 0.2, rating 4.5 (outlier)" in titles  # parsed back: the escaping round-trips
    assert [c.get("class") for c in circles].count("outlier") == 1
    legend = next(g for g in svg.iter(f"{SVG}g") if g.get("class") == "legend")
    assert "outlier: " + HOSTILE in "".join(legend.itertext())
    assert svg.get("width") == "360" and svg.get("height") == "260"


def test_scatter_markup_never_holds_a_raw_hostile_name() -> None:
    markup = scatter_svg(POINTS, "x <axis>", 'y "&"')
    assert HOSTILE not in markup and "<b>" not in markup and "<axis>" not in markup
    assert "a&lt;b&gt;&amp;&quot;c.mp4" in markup
    assert "<script" not in markup and "href" not in markup  # no script, no external asset


@pytest.mark.parametrize("points", [
    [{"video": "only.mp4", "score": 0.5, "rating": 3.0, "outlier": False}],
    [{"video": f"v{i}.mp4", "score": 1.0, "rating": float(i), "outlier": False} for i in range(3)],
    [{"video": f"v{i}.mp4", "score": -2.0 - i, "rating": 1.0, "outlier": i == 1} for i in range(3)],
    [{"video": f"v{i}.mp4", "score": 0.0, "rating": 0.0, "outlier": False} for i in range(2)],
], ids=["single", "identical-x", "negative", "all-equal"])
def test_scatter_degenerate_data_stays_inside_the_plot(points: list[dict[str, Any]]) -> None:
    svg = ET.fromstring(scatter_svg(points, "score", "rating"))
    circles = point_circles(svg)
    assert len(circles) == len(points)
    for circle in circles:
        assert 0 < float(circle.get("cx", "nan")) < 360 and 0 < float(circle.get("cy", "nan")) < 260
    ticks = next(g for g in svg.iter(f"{SVG}g") if g.get("class") == "ticks")
    assert len(list(ticks.iter(f"{SVG}text"))) >= 2


def test_scatter_control_characters_are_shown_not_obeyed_and_non_finite_points_counted() -> None:
    points = [{"video": "evil\u202egnp.mp4\x1b[2J", "score": 0.5, "rating": 3.0, "outlier": False},
              {"video": "nan.mp4", "score": float("nan"), "rating": 3.0, "outlier": False},
              {"video": "json.mp4", "score": "inf", "rating": 3.0, "outlier": False}]
    markup = scatter_svg(points, "score", "rating")
    svg = ET.fromstring(markup)
    assert "\u202e" not in markup and "\x1b" not in markup and "\\u202egnp.mp4\\x1b[2J" in markup
    assert len(point_circles(svg)) == 1
    assert "2 not plotted (not a finite number)" in "".join(svg.itertext())


def test_scatter_without_points_says_so() -> None:
    svg = ET.fromstring(scatter_svg([], "score", "rating"))
    assert "no points to plot" in "".join(svg.itertext())
    assert not any(g.get("class") == "points" for g in svg.iter(f"{SVG}g"))


# --- the HTML report -------------------------------------------------------------------------------------------

def test_html_has_one_agreement_block_per_agreement_record() -> None:
    other = POINTS[:3]
    html = render_html(results_of(record("flicker_vs_quality", agreement(POINTS, models=MODELS)),
                                  record("ordinary"),
                                  record("aesthetic_vs_quality", agreement(other, verdict="fail"))))
    svgs = svgs_of(html)
    assert len(svgs) == 2 and html.count("Agreement with human ratings") == 2
    assert [len(point_circles(svg)) for svg in svgs] == [4, 3]
    assert HOSTILE not in html and "a&lt;b&gt;&amp;&quot;c.mp4" in html
    assert "spearman" in html and "0.54 [-0.1, 0.9]" in html and "0.41 [-0.2, 0.8]" in html
    assert "0.6 [0.05, 0.92]" in html and "95%" in html
    assert "spearman ≥ 0.3" in html  # the gate, only the minimums the suite set
    assert "expected &gt;= 0.3" in html  # the message, escaped by the template
    assert '<span class="verdict failed">fail</span>' in html


def test_html_model_table_rows_beside_the_plot() -> None:
    html = render_html(results_of(record("flicker_vs_quality", agreement(POINTS, models=MODELS))))
    table = re.search(r'<table class="models">.*?</table>', html, re.S)
    assert table is not None
    rows = re.findall(r"<tr>(.*?)</tr>", table.group(0), re.S)
    cells = [re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row_) for row_ in rows]
    assert cells[0][0] == "model"
    assert cells[1:] == [["cogvideox", "2", "0.96", "3.5", "1", "1"], ["opensora", "2", "0.555", "3.5", "2", "2"]]
    assert "Kendall 1, pairwise accuracy 1" in html
    assert html.index('class="scatter"') < html.index('<table class="models">')  # one flex row: plot, table


def test_html_without_models_has_no_model_table() -> None:
    html = render_html(results_of(record("flicker_vs_quality", agreement(POINTS))))
    assert len(svgs_of(html)) == 1 and '<table class="models">' not in html


@pytest.mark.parametrize("value", [None, "absent"])
def test_records_without_agreement_render_as_before(value: str | None) -> None:
    plain = record("ordinary")
    if value is None:
        plain["agreement"] = None
    html, text = render_html(results_of(plain)), markdown(results_of(plain))
    assert 'class="scatter"' not in html and "Agreement with human ratings" not in html
    assert "Agreement with human ratings" not in text
    assert html == render_html(results_of(record("ordinary")))


# --- the Markdown summary ---------------------------------------------------------------------------------------

def test_markdown_has_one_line_per_agreement_check() -> None:
    text = markdown(results_of(record("flicker_vs_quality", agreement(POINTS, models=MODELS)), record("ordinary"),
                               record("aesthetic_vs_quality", agreement(POINTS[:3], verdict="fail"))))
    section = text.split("### Agreement with human ratings\n\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert section[0] == "| Check | Ratings | Spearman | Kendall | PLCC | n | Verdict |"
    assert section[2:] == [
        "| s::flicker\\_vs\\_quality | technical\\_quality | 0.54 \\[-0.1, 0.9\\] | 0.41 | 0.6 | 4 | pass |",
        "| s::aesthetic\\_vs\\_quality | technical\\_quality | 0.54 \\[-0.1, 0.9\\] | 0.41 | 0.6 | 3 | fail |"]


def test_markdown_agreement_line_escapes_hostile_text() -> None:
    hostile = agreement(POINTS)
    hostile["ratings"] = "q|[x](https://evil.example) @octocat"
    text = markdown(results_of(record("c", hostile)))
    line = next(line for line in text.splitlines() if line.startswith("| s::c "))
    assert "https://" not in line and "@octocat" not in line and "\\|" in line and "\\[x\\]" in line


def test_undefined_coefficient_is_shown_as_a_dash() -> None:
    undefined = agreement(POINTS)
    undefined["coefficients"]["kendall"] = coefficient(None, 0.0, 0.0) | {"low": None, "high": None}
    text = markdown(results_of(record("c", undefined)))
    assert "| 0.54 \\[-0.1, 0.9\\] | — | 0.6 |" in text
