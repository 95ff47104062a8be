"""The engine's seams: a third-party plugin adds a backbone, a text encoder and a metric through the hooks alone;
what a check cannot do is a collection error naming the line; every set-level metric goes through one contract
harness; batch size is not part of a backbone's identity."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import torch

from pytest_aigve.errors import SuiteError
from pytest_aigve.metrics.api import BackboneRequest
from pytest_aigve.metrics.distribution import FrechetMetric
from pytest_aigve.metrics.registry import MetricRegistry
from pytest_aigve.metrics.testing import MemoryInputs
from pytest_aigve.suite import load_suite

from .helpers import make_videos

CPU = torch.device("cpu")

# A plugin's whole code: a mean-colour video backbone, a character-count text encoder, and a metric that reads
# both (per video: cosine similarity of its colour features and its prompt's features), registered by hooks.
PLUGIN = '''
import hashlib
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pytest_aigve.metrics.api import (Backbone, BackboneRequest, InputsSpec, MetricResult, PerVideoMetric,
                                      WeightsFile)
from pytest_aigve.features.backbones import TextEncoder

COLOUR = WeightsFile("toy_colour", "toy_colour.pt", "http://127.0.0.1:9/toy_colour.pt", None, None, None,
                     "toy colour projection", licence="CC0-1.0")
TEXT = WeightsFile("toy_text", "toy_text.pt", "http://127.0.0.1:9/toy_text.pt", None, None, None,
                   "toy text projection", licence="CC0-1.0")
CALLS = Path("encoder_calls.txt")


class ColourBackbone(Backbone):
    key = "toy_colour"
    weights_file = COLOUR
    name = "toy-colour"
    input_description = "clip, mean RGB"
    min_frames = 3
    outputs = {"projected": 4, "mean_rgb": 3}

    def build(self, state):
        layer = nn.Linear(3, 4)
        layer.load_state_dict(state)
        return layer

    def prepare(self, clip):
        return clip.to(torch.float32).mean(dim=(0, 1, 2)) / 255.0

    def forward(self, batch):
        return torch.cat([self.model(batch), batch], dim=1)


class CharacterEncoder(TextEncoder):
    key = "toy_text"
    weights_file = TEXT
    name = "toy-text"
    outputs = {"embedding": 4}

    def build(self, state):
        layer = nn.Linear(26, 4)
        layer.load_state_dict(state)
        return layer

    def encode(self, prompts):
        with CALLS.open("a") as stream:
            stream.write(f"{len(prompts)}\\n")
        counts = torch.zeros(len(prompts), 26)
        for row, prompt in enumerate(prompts):
            for char in prompt.lower():
                if "a" <= char <= "z":
                    counts[row, ord(char) - 97] += 1
        return self.model(counts)


class Alignment(PerVideoMetric):
    name = "toy_alignment"
    description = "cosine similarity of a video's colour and its prompt"
    higher_is_better = True
    spec = InputsSpec("single", needs_prompts=True)

    def evaluate(self, inputs):
        video = inputs.features("set", BackboneRequest("toy_colour", output="projected"))
        text = inputs.text_features("set", BackboneRequest("toy_text", output="embedding"))
        prompts = {item.label: item.features for item in text.videos}
        scores = {}
        for item in video.videos:
            a, b = item.features[0], prompts[item.label]
            scores[item.label] = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
        return MetricResult(float(np.mean(list(scores.values()))), scores, {"dim": int(video.blocks[0].shape[1])},
                            backbone=video.backbone)

    @classmethod
    def backbone_requests(cls, params):
        return (BackboneRequest("toy_colour", output="projected"), BackboneRequest("toy_text", output="embedding"))

    def score_clip(self, clip):
        raise AssertionError("evaluate reads features")


def pytest_aigve_register_backbones(registry):
    registry.register("toy_colour", ColourBackbone)
    registry.register("toy_text", CharacterEncoder)


def pytest_aigve_register_metrics(registry):
    registry.register("toy_alignment", Alignment)
'''

SUITE = """
suite: plugin
video_sets:
  gen: {annotations: annotations.json, video_dir: videos/gen}
checks:
  - metric: toy_alignment
    set: gen
"""


def test_a_plugin_adds_a_backbone_a_text_encoder_and_a_metric_through_hooks(pytester: pytest.Pytester) -> None:
    make_videos(pytester.path)
    weights = pytester.path / "weights"
    weights.mkdir()
    torch.manual_seed(0)
    torch.save(torch.nn.Linear(3, 4).state_dict(), weights / "toy_colour.pt")
    torch.save(torch.nn.Linear(26, 4).state_dict(), weights / "toy_text.pt")
    prompts = {"clip_0.mp4": "a red fox", "clip_1.mp4": "zebra crossing at dusk"}
    (pytester.path / "annotations.json").write_text(json.dumps(
        {"data_list": [{"video_path_pd": name, "prompt_gt": prompt} for name, prompt in prompts.items()]}))
    pytester.makeconftest(PLUGIN)
    (pytester.path / "aigve_plugin.yaml").write_text(SUITE)
    run = ["--aigve-weights-dir", "weights", "--aigve-report-dir", "out", "--aigve-cache-dir", "cache",
           "--junitxml", "junit.xml"]
    result = pytester.runpytest_subprocess(*run)
    result.assert_outcomes(passed=1)
    record = json.loads((pytester.path / "out" / "aigve-results.json").read_text())["records"][0]
    assert set(record["per_video"]) == set(prompts) and record["details"]["dim"] == 4  # the named output's width
    assert all(-1.0 <= value <= 1.0 for value in record["per_video"].values())
    assert len(set(record["per_video"].values())) == 2  # features differ between videos and prompts
    assert record["prompts"] == prompts
    assert record["backbone"]["name"] == "toy-colour" and record["backbone"]["licence"] == "CC0-1.0"
    assert record["backbone"]["output"] == "projected" and record["backbone"]["features_computed"] == 2
    properties = {p.get("name"): p.get("value") for p in ET.parse(pytester.path / "junit.xml").iter("property")}
    assert properties["aigve.backbone"] == "toy-colour" and properties["aigve.weights_licence"] == "CC0-1.0"
    # a second run finds both kinds of features in the cache: the encoder is never called again
    calls = (pytester.path / "encoder_calls.txt").read_text().split()
    assert calls == ["2"]
    again = pytester.runpytest_subprocess(*run)
    again.assert_outcomes(passed=1)
    assert (pytester.path / "encoder_calls.txt").read_text().split() == calls
    warm = json.loads((pytester.path / "out" / "aigve-results.json").read_text())["records"][0]
    assert warm["per_video"] == record["per_video"] and warm["backbone"]["features_cached"] == 2
    # the plugin's own frame requirement is checked at collection, with the line
    (pytester.path / "aigve_plugin.yaml").write_text(SUITE + "    protocol: {frames: 2}\n")
    short = pytester.runpytest_subprocess(*run)
    assert short.ret != 0
    short.stdout.fnmatch_lines(["*aigve_plugin.yaml:8*toy-colour*needs at least 3 frames*takes 2*"])


def _suite(tmp_path: Path, check: str) -> Path:
    make_videos(tmp_path)
    path = tmp_path / "aigve_checks.yaml"
    path.write_text("suite: checks\nvideo_sets:\n  ref: {folder: videos/ref}\n  gen: {folder: videos/gen}\n"
                    f"checks:\n{check}")
    return path


@pytest.mark.parametrize(("check", "line", "message"), [
    ("  - metric: fvd\n    reference: ref\n    candidate: gen\n    protocol: {frames: 8}\n", 9,
     "fvd (i3d-400) needs at least 9 frames per clip, the protocol takes 8"),
    ("  - metric: fid\n    reference: ref\n    candidate: gen\n    params: {precision: bf16}\n", 9,
     "inception runs in fp32 only"),
    ("  - metric: fvd\n    reference: ref\n    candidate: gen\n    params:\n      precision: bf16\n", 10,
     "bf16 runs on CUDA devices only (this run uses cpu)"),
])
def test_what_a_check_cannot_do_is_an_error_at_its_line(tmp_path: Path, check: str, line: int, message: str) -> None:
    with pytest.raises(SuiteError) as info:
        load_suite(_suite(tmp_path, check), MetricRegistry(), device_type="cpu")
    assert info.value.line == line and message in str(info.value)


def test_bf16_is_accepted_at_collection_where_the_device_may_run_it(tmp_path: Path) -> None:
    path = _suite(tmp_path, "  - metric: fvd\n    reference: ref\n    candidate: gen\n    params: {precision: bf16}\n")
    for device in ("cuda", None):  # None: not known (python -m pytest_aigve validate)
        assert load_suite(path, MetricRegistry(), device_type=device).checks[0].params["precision"] == "bf16"


def test_fvd_with_too_few_frames_is_a_collection_error_in_pytest(pytester: pytest.Pytester) -> None:
    make_videos(pytester.path)
    (pytester.path / "aigve_short.yaml").write_text(
        "suite: short\nprotocol: {frames: 8}\nvideo_sets:\n  ref: {folder: videos/ref}\n  gen: {folder: videos/gen}\n"
        "checks:\n  - {metric: fvd, reference: ref, candidate: gen}\n")
    result = pytester.runpytest_subprocess("--aigve-report-dir", "out")
    assert result.ret == pytest.ExitCode.INTERRUPTED  # collection errors stop the run before anything computes
    result.stdout.fnmatch_lines(["*aigve_short.yaml:7*fvd (i3d-400) needs at least 9 frames*"])


# --- one contract harness for every set-level metric ---------------------------------------------------------------


def _set_level_metrics() -> list[str]:
    """Metrics reading backbone features of videos only (those reading prompts too are checked with their text
    encoders in their own test files)."""
    registry = MetricRegistry()
    return [name for name in registry.names() if not registry.get(name).spec.needs_prompts
            and registry.get(name).backbone_requests(registry.get(name).validate_params({}))]


def _blocks(seed: int, videos: int, dim: int, shift: float) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.gamma(2.0, 0.15, size=(videos, 1, dim))
    return [np.abs(base[v] + rng.normal(shift, 0.05, size=(3, dim))) for v in range(videos)]


@pytest.mark.parametrize("name", _set_level_metrics())
def test_set_level_metric_contract(name: str) -> None:
    """Value finite and in range, moving the right way with the candidate's shift, a resampler that reproduces
    nearby values, the backbone carried in the result (not in details), per-video samples labelled."""
    cls = MetricRegistry().get(name)
    params = cls.validate_params({"splits": 2} if "splits" in cls.params else {})
    metric = cls(params, CPU)
    dim = 1008 if name == "is" else 64
    ref = _blocks(1, 8, dim, 0.0)

    def score(shift: float) -> tuple[float, object]:
        cand = _blocks(2, 8, dim, shift)
        features = {"reference": ref, "candidate": cand, "set": cand}
        result = metric.evaluate(MemoryInputs(features=features))  # type: ignore[arg-type]
        return result.value, result

    near, result = score(0.0)
    far, _ = score(0.3)
    assert np.isfinite(near) and np.isfinite(far) and near != far
    low, high = cls.value_range
    assert (low is None or near >= low - 1e-6) and (high is None or near <= high)
    if cls.spec.kind == "sets":  # a distance: farther sets score worse
        assert (far < near) == cls.higher_is_better
    if issubclass(cls, FrechetMetric):  # paired comparisons with a baseline read per-video blocks by label
        assert result.samples is not None and sorted(result.samples.candidate) == [f"v{i}.mp4" for i in range(8)]
    assert result.backbone is not None and "backbone" not in result.details
    assert result.resample is not None
    resampled = [result.resample(np.random.default_rng(seed)) for seed in range(3)]
    assert all(np.isfinite(resampled)) and len(set(resampled)) > 1


def test_batch_size_is_not_part_of_a_backbones_identity(random_weights: Path, tmp_path: Path) -> None:
    from pytest_aigve.engine import EvalContext
    from pytest_aigve.videos.cache import ClipCache

    ctx = EvalContext(device=CPU, clips=ClipCache(10**8), registry=MetricRegistry(), weights_dir=random_weights,
                      allow_unverified_weights=True)
    first = ctx.backbone(BackboneRequest("i3d", batch_size=2), tmp_path)
    assert ctx.backbone(BackboneRequest("i3d", batch_size=32), tmp_path) is first
    assert ctx.backbone(BackboneRequest("i3d"), tmp_path) is first
    assert ctx.backbone(BackboneRequest("r3d18", batch_size=2), tmp_path) is not first


def test_a_named_output_is_located_by_the_declared_widths() -> None:
    backbones = MetricRegistry().backbones
    inception = backbones.get("inception")
    assert inception.output_columns("pool3") == slice(0, 2048)
    assert inception.output_columns("logits_unbiased") == slice(2048, 3056)
    assert inception.output_columns(None) == slice(None)
    assert backbones.get("videomae").output_columns("fc_norm") == slice(0, None)
    with pytest.raises(Exception, match="has no output 'pool5'; it has pool3, logits_unbiased"):
        inception.output_columns("pool5")



def test_a_warm_rerun_reuses_the_interval_of_unchanged_inputs(pytester: pytest.Pytester) -> None:
    """The interval is a function of the videos' bytes, protocol, parameters, value and bootstrap settings: stored
    with the features, a re-run of unchanged inputs reuses it; any change computes it again."""
    make_videos(pytester.path)
    suite = pytester.path / "aigve_demo.yaml"
    suite.write_text(SUITE_DEMO)
    run = ["--aigve-report-dir", "out", "--aigve-cache-dir", "cache"]

    def records() -> dict[str, dict]:
        results = json.loads((pytester.path / "out" / "aigve-results.json").read_text())
        return {record["check"]: record for record in results["records"]}

    pytester.runpytest_subprocess(*run).assert_outcomes(passed=2)
    cold = records()
    pytester.runpytest_subprocess(*run).assert_outcomes(passed=2)
    warm = records()
    for check, record in cold.items():
        assert "interval_reused" not in record["details"]
        assert warm[check]["details"]["interval_reused"] is True and warm[check]["interval"] == record["interval"]
    suite.write_text(SUITE_DEMO.replace("seed: 1", "seed: 2"))  # another bootstrap seed: computed again
    pytester.runpytest_subprocess(*run).assert_outcomes(passed=2)
    assert all("interval_reused" not in record["details"] for record in records().values())
    (pytester.path / "videos" / "gen" / "clip_0.mp4").write_bytes(
        (pytester.path / "videos" / "ref" / "clip_0.mp4").read_bytes())  # another video's bytes: computed again
    pytester.runpytest_subprocess(*run).assert_outcomes(passed=2)
    assert all("interval_reused" not in record["details"] for record in records().values())


SUITE_DEMO = """\
suite: demo
protocol: {frames: 8, fps: 6}
defaults:
  bootstrap: {resamples: 50, seed: 1}
video_sets:
  ref: {folder: videos/ref}
  gen: {folder: videos/gen}
checks:
  - {metric: flicker, set: gen}
  - {metric: psnr, reference: ref, candidate: gen}
"""
