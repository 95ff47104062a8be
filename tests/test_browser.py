"""The HTML report in a real browser (headless Chromium). Not in the default run: `pytest -m browser`."""

from __future__ import annotations

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
