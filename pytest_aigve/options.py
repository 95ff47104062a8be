"""Command-line options, parsed and checked once at configure time (bad values are usage errors)."""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .baseline import DEFAULT_BASELINE_DIR, resolve_baseline_path
from .paths import WEIGHTS_ENV, from_environment

DEFAULT_SUITE_PATTERNS = ["aigve_*.yaml", "aigve_*.yml", "*.aigve.yaml", "*.aigve.yml"]
DEFAULT_REPORT_DIR = "reports"
JSON_NAME = "aigve-results.json"
HTML_NAME = "aigve-report.html"
MD_NAME = "aigve-summary.md"
_DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("aigve", "AI-generated video evaluation (pytest-aigve)")
    group.addoption("--aigve-suite", action="append", default=[], metavar="PATH",
                    help="run this suite file (repeatable); without test paths, only the suites run")
    group.addoption("--aigve-report-dir", default=None, metavar="DIR",
                    help=f"folder for the JSON and HTML reports (default: {DEFAULT_REPORT_DIR}/ under rootdir)")
    group.addoption("--aigve-json", default=None, metavar="PATH",
                    help=f"JSON results file (default: <report dir>/{JSON_NAME}); 'none' disables it")
    group.addoption("--aigve-html", default=None, metavar="PATH",
                    help=f"HTML report file (default: <report dir>/{HTML_NAME}); 'none' disables it")
    group.addoption("--aigve-device", default="auto", metavar="DEVICE",
                    help="compute device: auto (CUDA when available), cpu, cuda or cuda:N")
    group.addoption("--aigve-clip-cache-mb", type=int, default=2048, metavar="MB",
                    help="memory for decoded clips shared between checks, per process (default 2048)")
    group.addoption("--aigve-weights-dir", default=None, metavar="DIR",
                    help="folder with model weights, looked in first (default: $AIGVE_WEIGHTS_DIR)")
    group.addoption("--aigve-allow-unverified-weights", action="store_true", default=False,
                    help="accept weights whose hash differs from the published one (your own conversion); "
                         "recorded with every score (also: AIGVE_ALLOW_UNVERIFIED_WEIGHTS=1)")
    group.addoption("--aigve-cache-dir", default=None, metavar="DIR",
                    help="feature cache folder (default: $AIGVE_CACHE_DIR, else ~/.cache/pytest-aigve/features)")
    group.addoption("--aigve-no-cache", action="store_true", default=False,
                    help="neither read nor write the on-disk feature cache")
    group.addoption("--aigve-baseline", default=None, metavar="NAME|PATH",
                    help="compare scores with this baseline (a name in the baseline folder, or a JSON file)")
    group.addoption("--aigve-save-baseline", default=None, metavar="NAME",
                    help="save this run's scores as baseline NAME (scores of checks not run are kept; the file "
                         "it replaces goes to the history folder, see README)")
    group.addoption("--aigve-update-baseline", action="store_true", default=False,
                    help="accept this run: rewrite the --aigve-baseline file from its scores (regressions and "
                         "protocol changes are reported, not failed)")
    group.addoption("--aigve-baseline-dir", default=None, metavar="DIR",
                    help=f"baseline folder (default: {DEFAULT_BASELINE_DIR}/ under rootdir)")
    group.addoption("--aigve-allow-protocol-mismatch", action="store_true", default=False,
                    help="compare with the baseline even where the protocol fingerprint differs (marked in reports)")
    group.addoption("--aigve-markdown", default=None, metavar="PATH",
                    help=f"Markdown summary for CI job summaries and PR comments (default: <report dir>/{MD_NAME}); "
                         "'none' disables it")
    group.addoption("--aigve-report-url", default=None, metavar="URL",
                    help="where reviewers find the HTML report (e.g. the CI run's artifact page); linked from the "
                         "Markdown summary")
    group.addoption("--aigve-decode-workers", default=None, metavar="N",
                    help="videos decoded at once per process (default: the cores this process may use, divided "
                         "among xdist workers)")
    group.addoption("--aigve-remote", default=None, metavar="URL",
                    help="compute each check on the evaluation service at URL (`python -m pytest_aigve serve`); "
                         "the token is read from $AIGVE_REMOTE_TOKEN. Collection, gates, baselines and reports "
                         "stay local")
    parser.addini("aigve_suite_patterns", type="args", default=DEFAULT_SUITE_PATTERNS,
                  help="file name patterns collected as suites in normal collection")


@dataclass(frozen=True)
class AigveOptions:
    suites: tuple[Path, ...]
    patterns: tuple[str, ...]
    json_path: Path | None
    html_path: Path | None
    markdown_path: Path | None
    baseline_path: Path | None  # compare with this file
    save_baseline_path: Path | None  # write this run's scores here at the end
    update_baseline: bool
    allow_protocol_mismatch: bool
    device: str
    clip_cache_bytes: int
    weights_dir: Path | None  # --aigve-weights-dir, else $AIGVE_WEIGHTS_DIR
    weights_dir_source: str  # which of the two named weights_dir (weights.locate says so when a file is missing)
    allow_unverified_weights: bool  # --aigve-allow-unverified-weights or $AIGVE_ALLOW_UNVERIFIED_WEIGHTS
    rehash_weights: bool  # $AIGVE_REHASH_WEIGHTS: hash weights files again, ignoring the remembered digests
    weights_memo_dir: Path  # where weights digests are remembered across runs: $AIGVE_CACHE_DIR, else ~/.cache/...
    feature_cache_dir: Path | None  # None: no on-disk feature cache
    decode_workers: int | None  # --aigve-decode-workers; None: the cores this process may use / xdist workers
    report_url: str | None = None
    remote_url: str | None = None  # --aigve-remote: the evaluation service computing the checks
    remote_token: str | None = field(default=None, repr=False)  # $AIGVE_REMOTE_TOKEN

    def is_suite(self, path: Path) -> bool:
        return path.resolve() in self.suites or any(fnmatch.fnmatch(path.name, p) for p in self.patterns)


def _report_path(value: str | None, report_dir: Path, default_name: str, invocation_dir: Path) -> Path | None:
    if value is not None and value.lower() == "none":
        return None
    return invocation_dir / value if value else report_dir / default_name


def options_from_config(config: pytest.Config) -> AigveOptions:
    invocation_dir = config.invocation_params.dir
    suites = []
    for raw in config.getoption("aigve_suite"):
        path = (invocation_dir / raw).resolve()
        if not path.is_file():
            raise pytest.UsageError(f"--aigve-suite {raw}: file not found ({path})")
        suites.append(path)
    device = config.getoption("aigve_device")
    if not _DEVICE_RE.match(device):
        raise pytest.UsageError(f"--aigve-device {device!r}: expected auto, cpu, cuda or cuda:N")
    cache_mb = config.getoption("aigve_clip_cache_mb")
    if cache_mb < 0:
        raise pytest.UsageError(f"--aigve-clip-cache-mb {cache_mb}: must be >= 0")
    baseline_dir_opt = config.getoption("aigve_baseline_dir")
    baseline_dir = invocation_dir / baseline_dir_opt if baseline_dir_opt else config.rootpath / DEFAULT_BASELINE_DIR
    baseline_opt, save_opt = config.getoption("aigve_baseline"), config.getoption("aigve_save_baseline")
    update = config.getoption("aigve_update_baseline")
    if update and not baseline_opt:
        raise pytest.UsageError("--aigve-update-baseline rewrites the baseline named by --aigve-baseline; give both")
    if save_opt is not None and (not save_opt or "/" in save_opt or save_opt.endswith(".json")):
        raise pytest.UsageError(f"--aigve-save-baseline {save_opt!r}: give a name (letters, digits, - _ .), "
                                f"saved as {baseline_dir}/NAME.json")
    baseline_path = resolve_baseline_path(baseline_opt, baseline_dir, invocation_dir) if baseline_opt else None
    save_path = baseline_dir / f"{save_opt}.json" if save_opt else (baseline_path if update else None)
    report_dir_opt = config.getoption("aigve_report_dir")
    report_dir = invocation_dir / report_dir_opt if report_dir_opt else config.rootpath / DEFAULT_REPORT_DIR
    environment = from_environment(os.environ)  # the only place the plugin reads AIGVE_* variables
    weights_dir = _optional_dir(config.getoption("aigve_weights_dir"), invocation_dir)
    return AigveOptions(
        suites=tuple(dict.fromkeys(suites)),
        patterns=tuple(config.getini("aigve_suite_patterns")),
        json_path=_report_path(config.getoption("aigve_json"), report_dir, JSON_NAME, invocation_dir),
        html_path=_report_path(config.getoption("aigve_html"), report_dir, HTML_NAME, invocation_dir),
        markdown_path=_report_path(config.getoption("aigve_markdown"), report_dir, MD_NAME, invocation_dir),
        baseline_path=baseline_path,
        save_baseline_path=save_path,
        update_baseline=update,
        allow_protocol_mismatch=config.getoption("aigve_allow_protocol_mismatch"),
        device=device,
        clip_cache_bytes=cache_mb * 1024 * 1024,
        weights_dir=weights_dir or environment.weights_dir,
        weights_dir_source="--aigve-weights-dir" if weights_dir else WEIGHTS_ENV,
        allow_unverified_weights=config.getoption("aigve_allow_unverified_weights")
        or environment.allow_unverified_weights,
        rehash_weights=environment.rehash_weights,
        weights_memo_dir=environment.cache_dir,
        feature_cache_dir=None if config.getoption("aigve_no_cache") else (
            _optional_dir(config.getoption("aigve_cache_dir"), invocation_dir) or environment.cache_dir),
        decode_workers=_decode_workers(config.getoption("aigve_decode_workers")),
        report_url=_report_url(config.getoption("aigve_report_url")),
        remote_url=_remote_url(config.getoption("aigve_remote")),
        remote_token=os.environ.get("AIGVE_REMOTE_TOKEN") or None,
    )


def _remote_url(value: str | None) -> str | None:
    if not value:
        return None
    if not re.match(r"^https?://[^\s/?#]+(/[^\s?#]*)?$", value):
        raise pytest.UsageError(f"--aigve-remote {value!r}: give the service's http(s) URL, e.g. "
                                "https://gpu-box:8750")
    return value.rstrip("/")


def _report_url(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if not re.match(r"^https?://[^\s()<>]+$", value):
        raise pytest.UsageError(f"--aigve-report-url {value!r}: give an http(s) URL without spaces or parentheses")
    return value


def _decode_workers(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        workers = int(value)
    except ValueError:
        workers = 0
    if workers < 1:
        raise pytest.UsageError(f"--aigve-decode-workers {value!r}: expected a whole number >= 1 (or leave it out: "
                                "the cores this process may use, divided among xdist workers)")
    return workers


def _optional_dir(value: str | None, invocation_dir: Path) -> Path | None:
    return None if value is None else (invocation_dir / value).resolve()
