"""The HTML report in a real browser (headless Chromium). Not in the default run: `pytest -m browser`."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "example_suites"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars"]

pytestmark = pytest.mark.browser


def screenshot(html: Path, png: Path, profile: Path) -> np.ndarray:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--window-size=1280,2000",
                    f"--screenshot={png}", html.as_uri()], check=True, timeout=120, capture_output=True)
    with av.open(str(png)) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


def test_report_renders_in_chromium(pytester: pytest.Pytester, tmp_path: Path) -> None:
    result = pytester.runpytest("--aigve-suite", str(EXAMPLES / "quickstart.yaml"), "--aigve-report-dir", "out")
    result.assert_outcomes(passed=5)
    image = screenshot(pytester.path / "out" / "aigve-report.html", tmp_path / "report.png", tmp_path / "profile")
    assert image.shape[:2] == (2000, 1280)
    # a rendered page, not a blank or error page: dark text on white, plus the colourful thumbnails
    assert (image.reshape(-1, 3) == 255).all(axis=1).mean() > 0.4
    assert (image.reshape(-1, 3) < 80).all(axis=1).mean() > 0.005
    colourful = (image.max(axis=2).astype(int) - image.min(axis=2)) > 60
    assert colourful.mean() > 0.002


def colour_runs(row: np.ndarray, minimum: int) -> list[tuple[int, int]]:
    """Horizontal runs of colourful pixels (an image strip, not text) at least `minimum` wide."""
    colourful = (row.max(axis=1).astype(int) - row.min(axis=1)) > 40
    runs, start = [], None
    for x, on in enumerate([*colourful, False]):
        if on and start is None:
            start = x
        elif not on and start is not None:
            if x - start >= minimum:
                runs.append((start, x))
            start = None
    return runs


def test_failed_item_shows_its_worst_pair_side_by_side(pytester: pytest.Pytester, tmp_path: Path) -> None:
    """Issue 8 acceptance: the worst reference | candidate pair at the top of a failed item, in a browser."""
    from pytest_aigve.examples import degrade, moving_scene, write_video

    for index in range(4):
        clip = moving_scene(index, frames=8, size=(128, 128))
        write_video(pytester.path / "ref" / f"clip_{index}.mp4", clip)
        write_video(pytester.path / "gen" / f"clip_{index}.mp4", degrade(clip, seed=index, noise=70 if index == 2
                                                                          else 3))
    pytester.makefile(".yaml", aigve_pair="protocol: {frames: 8}\n"
                                          "video_sets:\n  ref: {folder: ref}\n  gen: {folder: gen}\nchecks:\n"
                                          "  - {metric: ssim, reference: ref, candidate: gen, per_video: {min: 0.5}}\n")
    pytester.runpytest("--aigve-report-dir", "out", "-p", "no:cacheprovider").assert_outcomes(failed=1)
    html = (pytester.path / "out" / "aigve-report.html").read_text()
    assert html.index('class="pairs worst"') < html.index('class="per-video"')  # the pair comes first
    image = screenshot(pytester.path / "out" / "aigve-report.html", tmp_path / "pair.png", tmp_path / "profile")
    # rows crossing both strips: two colourful runs (reference, then candidate), each a strip of 3 frames
    paired_rows = [y for y in range(image.shape[0]) if len(colour_runs(image[y], 300)) >= 2]
    assert len(paired_rows) >= 100, "no reference | candidate strips side by side in the screenshot"
    first = colour_runs(image[paired_rows[0]], 300)
    assert first[0][1] < first[1][0]  # left and right, not overlapping


def test_agreement_scatter_plot_renders_in_chromium(pytester: pytest.Pytester, tmp_path: Path,
                                                    shared_data: Path) -> None:
    """Issue 11 acceptance: the example agreement suite writes its scatter plot into the HTML report, and a
    browser draws it: blue points and red outlier rings inside the opened details block."""
    suite = (EXAMPLES / "agreement.yaml").read_text().replace("../../shared/data", str(shared_data))
    (pytester.path / "aigve_agreement.yaml").write_text(suite)
    pytester.runpytest("--aigve-report-dir", "out", "-p", "no:cacheprovider").assert_outcomes(passed=1)
    report = pytester.path / "out" / "aigve-report.html"
    html = report.read_text()
    assert html.count("<svg") >= 1 and 'class="outlier"' in html and "technical_quality" in html
    opened = html.replace("<details", "<details open")

    def drawn(page: str, name: str) -> tuple[int, int]:
        """(red outlier-ring pixels, blue point pixels) in a screenshot of `page`."""
        path = tmp_path / f"{name}.html"
        path.write_text(page)
        image = screenshot(path, tmp_path / f"{name}.png", tmp_path / "profile").astype(int)
        red, green, blue = image[..., 0], image[..., 1], image[..., 2]
        rings = (red > 180) & (green < 80) & (blue < 90)  # #cf222e
        points = (blue > 180) & (red < 150) & (green > 80) & (green < 200)  # #0969da at 0.7 opacity on white
        return int(rings.sum()), int(points.sum())

    with_plot = drawn(opened, "with")
    without_plot = drawn(re.sub(r"<svg.*?</svg>", "", opened, flags=re.S), "without")  # the same page, no plot
    assert with_plot[0] - without_plot[0] > 20 and with_plot[1] - without_plot[1] > 20, \
        f"the scatter plot's outlier rings and points are not drawn: {with_plot} vs {without_plot} without it"
