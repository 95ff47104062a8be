"""CLIP text-video metrics (clip_sim, clip_temp, pickscore) on tiny random CLIP folders written in the official
Hugging Face format: parity with torchmetrics' CLIPScore, the AIGVE toolkit's inputs, the PickScore README's
formula and a direct computation; a plugin run with prompts and a warm re-run; missing folders."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from pytest_aigve.features.backbones import Backbone, TextEncoder
from pytest_aigve.features.clip_hf import weights_root
from pytest_aigve.features.registry import BackboneRegistry
from pytest_aigve.features.weights import (
    FOLDER_REGISTRY,
    RANDOM_STATUS,
    WeightsError,
    locate,
    verify,
)
from pytest_aigve.metrics.base import Metric
from pytest_aigve.metrics.clip_sim import CLIPSim
from pytest_aigve.metrics.clip_temp import CLIPTemp
from pytest_aigve.metrics.contract import BackboneRequest, FeatureSet, MetricResult, Role, VideoFeatures
from pytest_aigve.metrics.pickscore import PickScore
from pytest_aigve.metrics.testing import MemoryInputs

transformers = pytest.importorskip("transformers")

PROMPTS = ["a red fox running in the snow", "two zebras crossing a road at dusk"]
FOLDERS = ("clip_vit_b32", "pickscore_v1", "pickscore_processor")
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def clip_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The random CLIP and PickScore folders, written by the writers `weights random` runs."""
    from pytest_aigve.random_weights import WRITERS

    root = tmp_path_factory.mktemp("clip-weights")
    for key in FOLDERS:
        WRITERS[key](root, 0)
    return root


def frames_of(seed: int, count: int = 3, size: tuple[int, int] = (40, 56)) -> np.ndarray:
    """Smooth random uint8 frames (T, H, W, 3), not square (the resize modes differ on them)."""
    generator = np.random.default_rng(seed)
    coarse = generator.uniform(0, 255, (count, 3, 5, 7)).astype(np.float32)
    frames = torch.nn.functional.interpolate(torch.from_numpy(coarse), size=size, mode="bilinear")
    return frames.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


CLIPS = [frames_of(1), frames_of(2)]
AIGVE_B32 = BackboneRequest("clip_vit_b32", options=(("resize", "aigve"),))  # frames stretched to 224x224 first


class BackboneInputs(MemoryInputs):
    """Clips and prompts in memory, features from the registered backbones over the folders in `weights_dir`
    (located and verified as a run does)."""

    def __init__(self, clips: Sequence[np.ndarray], prompts: Sequence[str | None], weights_dir: Path) -> None:
        super().__init__({"set": list(clips)}, prompts={"set": list(prompts)})
        self.weights_dir = weights_dir
        self.backbones: dict[tuple[str, str, tuple[tuple[str, Any], ...]], Backbone] = {}

    def backbone(self, request: BackboneRequest) -> Backbone:
        """One backbone per (key, precision, options), as the engine makes them."""
        key = (request.key, request.precision, request.options)
        if key not in self.backbones:
            cls = BackboneRegistry().get(request.key)
            path = locate(cls.weights_file, None, self.weights_dir)
            check = verify(cls.weights_file, path, allow_unverified=True)
            self.backbones[key] = cls(path, check.sha256, CPU, request.precision, weights_status=check.status,
                                      options=dict(request.options))
        return self.backbones[key]

    def features(self, role: Role, request: BackboneRequest) -> FeatureSet:
        backbone = self.backbone(request)
        blocks = backbone.extract([torch.from_numpy(clip) for clip in self._clips[role]], request.batch_size)
        return FeatureSet(tuple(VideoFeatures(self.video(role, index), block) for index, block in enumerate(blocks)),
                          backbone.info())

    def text_features(self, role: Role, request: BackboneRequest) -> FeatureSet:
        encoder = self.backbone(request)
        assert isinstance(encoder, TextEncoder)
        prompts = self._prompts[role]
        rows = encoder.extract_text([prompt or "" for prompt in prompts])
        return FeatureSet(tuple(VideoFeatures(self.video(role, index), row) for index, row in enumerate(rows)),
                          encoder.info())


def run(metric: type[Metric], weights_dir: Path, clips: Sequence[np.ndarray] = CLIPS,
        prompts: Sequence[str | None] = PROMPTS, **params: Any) -> MetricResult:
    instance = metric(metric.validate_params(params), CPU)
    return instance.evaluate(BackboneInputs(clips, prompts, weights_dir))


def folder(weights_dir: Path, key: str) -> str:
    return str(weights_dir / FOLDER_REGISTRY[key].folder)


def unit(rows: torch.Tensor) -> torch.Tensor:
    rows = rows.to(torch.float64)
    return rows / rows.norm(dim=-1, keepdim=True)


# --- the random folders --------------------------------------------------------------------------------------


def test_random_folders_are_official_format_marked_random_and_tell_inputs_apart(clip_weights: Path) -> None:
    for key in FOLDERS:
        entry = FOLDER_REGISTRY[key]
        path = locate(entry, None, clip_weights)
        assert path == clip_weights / entry.folder and weights_root(path, entry) == clip_weights
        assert verify(entry, path, allow_unverified=True).status.startswith(RANDOM_STATUS)
    # CLIP's real tokenizer: token ids as OpenAI's vocabulary has them ("a" is 320)
    tokenizer = transformers.CLIPTokenizerFast.from_pretrained(folder(clip_weights, "clip_vit_b32"))
    assert tokenizer("a fox")["input_ids"][:2] == [49406, 320] and len(tokenizer) == 49408
    inputs = BackboneInputs(CLIPS, PROMPTS, clip_weights)
    for request in (BackboneRequest("clip_vit_b32"), AIGVE_B32, BackboneRequest("pickscore")):
        rows = np.concatenate(inputs.features("set", request).blocks)
        assert rows.shape == (6, 16) and rows.dtype == np.float64
        distances = np.linalg.norm(rows[:, None] - rows[None], axis=-1)[np.triu_indices(6, 1)]
        assert distances.min() > 1e-3 * np.linalg.norm(rows, axis=1).mean(), request  # every frame its own features
    texts = np.stack([item.features for item in inputs.text_features("set", BackboneRequest("clip_vit_b32_text"))
                      .videos])
    assert texts.shape == (2, 17) and not np.allclose(texts[0, 1:], texts[1, 1:])
    assert texts[0, 0] == pytest.approx(np.exp(2.6592), rel=1e-6)  # CLIPConfig's logit_scale_init_value
    # the input mode (the `resize` option) is part of the cache identity, the default spelled out or not; the two
    # CLIP folders are different random models
    for key in ("clip_vit_b32", "pickscore"):
        modes = [BackboneRequest(key), BackboneRequest(key, options=(("resize", "processor"),)),
                 BackboneRequest(key, options=(("resize", "aigve"),))]
        default, processor, aigve = (inputs.backbone(request) for request in modes)
        assert default.identity == processor.identity != aigve.identity, key
        assert default.input_description.startswith("frames, ") and not default.stretch
        assert aigve.input_description.startswith("frames stretched to 224x224") and aigve.stretch
        assert aigve.info().input == aigve.input_description != default.info().input
    assert not np.allclose(np.concatenate(inputs.features("set", BackboneRequest("clip_vit_b32")).blocks),
                           np.concatenate(inputs.features("set", AIGVE_B32).blocks))
    assert not np.allclose(np.concatenate(inputs.features("set", BackboneRequest("clip_vit_b32")).blocks),
                           np.concatenate(inputs.features("set", BackboneRequest("pickscore")).blocks))


# --- parity --------------------------------------------------------------------------------------------------


def test_clip_sim_equals_torchmetrics_clipscore_per_video(clip_weights: Path) -> None:
    from torchmetrics.multimodal.clip_score import CLIPScore

    path = folder(clip_weights, "clip_vit_b32")
    model = transformers.CLIPModel.from_pretrained(path).eval()
    processor = transformers.CLIPProcessor.from_pretrained(path)
    clipscore = run(CLIPSim, clip_weights, scale="clipscore")
    cosine = run(CLIPSim, clip_weights, scale="cosine")
    assert cosine.backbone is not None and cosine.backbone.name == "clip-vit-b32"
    assert cosine.backbone.weights_check.startswith(RANDOM_STATUS) and cosine.backbone.licence.startswith("MIT")
    for index, (clip, prompt) in enumerate(zip(CLIPS, PROMPTS, strict=True)):
        reference = CLIPScore(model_name_or_path=lambda: (model, processor))
        reference.update(list(torch.from_numpy(clip).permute(0, 3, 1, 2)), [prompt] * len(clip))
        raw = float(reference.score / reference.n_samples)  # 100 x mean cosine over the video's frames
        assert 100 * cosine.per_video[f"v{index}.mp4"] == pytest.approx(raw, rel=1e-4, abs=1e-4)
        assert clipscore.per_video[f"v{index}.mp4"] == pytest.approx(float(reference.compute()), rel=1e-4, abs=1e-4)
    assert cosine.value == pytest.approx(np.mean(list(cosine.per_video.values())))
    assert cosine.resample is not None  # the bootstrap interval over videos


def stretch_like_cv2(frame: np.ndarray, size: int = 224) -> np.ndarray:
    """cv2.resize(frame, (size, size)) with INTER_LINEAR, transcribed: half-pixel centres, edge clamped, no
    antialiasing, rounded."""

    def axis(length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        source = np.clip((np.arange(size) + 0.5) * length / size - 0.5, 0, length - 1)
        low = np.floor(source).astype(int)
        return low, np.minimum(low + 1, length - 1), source - low

    top, bottom, dy = axis(frame.shape[0])
    left, right, dx = axis(frame.shape[1])
    image = frame.astype(np.float64)
    rows = image[top] * (1 - dy)[:, None, None] + image[bottom] * dy[:, None, None]
    out = rows[:, left] * (1 - dx)[None, :, None] + rows[:, right] * dx[None, :, None]
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def test_clip_sim_aigve_mode_follows_the_toolkit(clip_weights: Path) -> None:
    path = folder(clip_weights, "clip_vit_b32")
    model = transformers.CLIPModel.from_pretrained(path).eval()
    processor = transformers.AutoProcessor.from_pretrained(path)  # what the toolkit loads
    ours = run(CLIPSim, clip_weights, resize="aigve", scale="logit")
    processor_mode = run(CLIPSim, clip_weights, scale="logit")
    with torch.no_grad():
        for index, (clip, prompt) in enumerate(zip(CLIPS, PROMPTS, strict=True)):
            pixels = processor(images=[stretch_like_cv2(frame) for frame in clip], return_tensors="pt")
            tokens = processor(text=[prompt], padding=True, truncation=True, max_length=77, return_tensors="pt")
            frames = unit(model.get_image_features(pixels["pixel_values"]))
            text = unit(model.get_text_features(tokens["input_ids"]))
            expected = float(model.logit_scale.exp()) * float((frames @ text.T).mean())
            label = f"v{index}.mp4"
            assert ours.per_video[label] == pytest.approx(expected, rel=1e-4, abs=1e-5)
            assert abs(processor_mode.per_video[label] - expected) > 1e-3  # a different input: a different score
    assert ours.details["scale"] == "logit" and ours.backbone is not None
    assert ours.backbone.name == "clip-vit-b32" and ours.backbone.input.startswith("frames stretched to 224x224")


def test_pickscore_equals_the_readme_formula(clip_weights: Path) -> None:
    model = transformers.AutoModel.from_pretrained(folder(clip_weights, "pickscore_v1")).eval()
    processor = transformers.AutoProcessor.from_pretrained(folder(clip_weights, "pickscore_processor"))
    ours = run(PickScore, clip_weights)
    with torch.no_grad():
        for index, (clip, prompt) in enumerate(zip(CLIPS, PROMPTS, strict=True)):
            image_inputs = processor(images=list(clip), padding=True, truncation=True, max_length=77,
                                     return_tensors="pt")
            text_inputs = processor(text=prompt, padding=True, truncation=True, max_length=77, return_tensors="pt")
            image_embs = model.get_image_features(**image_inputs)
            image_embs = image_embs / torch.norm(image_embs, dim=-1, keepdim=True)
            text_embs = model.get_text_features(**text_inputs)
            text_embs = text_embs / torch.norm(text_embs, dim=-1, keepdim=True)
            scores = model.logit_scale.exp() * (text_embs @ image_embs.T)[0]
            assert ours.per_video[f"v{index}.mp4"] == pytest.approx(float(scores.mean()), rel=1e-4, abs=1e-4)
    assert ours.backbone is not None and ours.backbone.name == "pickscore-v1"
    assert ours.backbone.licence.startswith("see the model card")


def test_clip_temp_equals_a_direct_computation(clip_weights: Path) -> None:
    path = folder(clip_weights, "clip_vit_b32")
    model = transformers.CLIPModel.from_pretrained(path).eval()
    processor = transformers.CLIPProcessor.from_pretrained(path)
    ours = run(CLIPTemp, clip_weights, prompts=[None, None])
    with torch.no_grad():
        for index, clip in enumerate(CLIPS):
            frames = unit(model.get_image_features(processor(images=list(clip), return_tensors="pt")["pixel_values"]))
            expected = float((frames[:-1] * frames[1:]).sum(dim=-1).mean())
            assert ours.per_video[f"v{index}.mp4"] == pytest.approx(expected, rel=1e-6, abs=1e-7)
    assert CLIPTemp.spec.min_frames == 2 and not CLIPTemp.spec.needs_prompts


def test_parameters_are_checked() -> None:
    from pytest_aigve.errors import MetricError, ParamError

    with pytest.raises(ParamError, match="scale"):
        CLIPSim.validate_params({"scale": "probability"})
    with pytest.raises(ParamError, match="model"):
        CLIPSim.validate_params({"model": "openai/clip-vit-huge"})
    params = CLIPSim.validate_params({"model": "openai/clip-vit-large-patch14", "resize": "aigve"})
    image, text = CLIPSim.backbone_requests(params)
    assert (image.key, image.options, text.key, text.options) == ("clip_vit_l14", (("resize", "aigve"),),
                                                                  "clip_vit_l14_text", ())
    (temp,) = CLIPTemp.backbone_requests(params)
    assert temp == image  # clip_sim and clip_temp with one resize share one backbone and its cached features
    assert PickScore.backbone_requests(PickScore.validate_params({}))[0].options == (("resize", "processor"),)
    registry = BackboneRegistry()
    assert not {"clip_vit_b32_aigve", "clip_vit_l14_aigve", "pickscore_aigve"} & set(registry.names())
    # the backbone checks the option's value itself (a plugin's request, not only these metrics')
    for key in ("clip_vit_b32", "clip_vit_l14", "pickscore"):
        problem = registry.get(key).options_problem({"resize": "stretch"})
        assert problem is not None and "resize='stretch'" in problem and "processor, aigve" in problem
        assert registry.get(key).options_problem({"resize": "aigve"}) is None
    with pytest.raises(MetricError, match=r"resize='stretch'.*processor, aigve"):
        registry.get("clip_vit_b32")(Path("nowhere"), "0" * 64, CPU, options={"resize": "stretch"})
    assert "no option resize" in (registry.get("clip_vit_b32_text").options_problem({"resize": "aigve"}) or "")
    assert "weights" not in CLIPSim.score_params(params) and "batch_size" not in CLIPSim.score_params(params)
    assert CLIPSim.spec.needs_prompts and PickScore.spec.needs_prompts


# --- as users run it -----------------------------------------------------------------------------------------

SUITE = """\
protocol: {frames: 3}
video_sets:
  gen: {folder: gen, prompts: prompts.json}
checks:
  - {metric: clip_sim, set: gen}
  - {metric: clip_temp, set: gen}
"""

# counts every image and text forward pass of the CLIP backbones in the pytest process under test
COUNTING_CONFTEST = """
from pathlib import Path
from pytest_aigve.features import clip_hf

LOG = Path(__file__).parent / "forward-passes.log"


def counted(name, original):
    def wrapper(self, batch):
        with LOG.open("a") as log:
            log.write(f"{name} {len(batch)}\\n")
        return original(self, batch)
    return wrapper


clip_hf.CLIPImageBackbone.forward = counted("image", clip_hf.CLIPImageBackbone.forward)
clip_hf.CLIPTextBackbone.encode = counted("text", clip_hf.CLIPTextBackbone.encode)
"""


def records(path: Path) -> dict[str, dict[str, Any]]:
    return {record["check"]: record for record in json.loads(path.read_text())["records"]}


def test_plugin_run_records_per_video_scores_and_a_warm_run_embeds_nothing(
        pytester: pytest.Pytester, clip_weights: Path, make_video: Any) -> None:
    names = ["fox.mp4", "zebras.mp4", "city.mp4"]
    for seed, name in enumerate(names):
        make_video(f"gen/{name}", seed=seed, frames=6, size=(48, 64), root=pytester.path)
    prompts = dict(zip(names, [*PROMPTS, "a city street at night"], strict=True))
    (pytester.path / "prompts.json").write_text(json.dumps(prompts))
    pytester.makefile(".yaml", aigve_clip=SUITE)
    pytester.makeconftest(COUNTING_CONFTEST)
    log = pytester.path / "forward-passes.log"
    args = ["--aigve-weights-dir", str(clip_weights), "--aigve-allow-unverified-weights",
            "--aigve-cache-dir", "cache", "-p", "no:cacheprovider"]
    cold = pytester.runpytest_subprocess(*args, "--aigve-report-dir", "cold")
    first = records(pytester.path / "cold" / "aigve-results.json")
    assert set(first) == {"clip_sim[gen]", "clip_temp[gen]"}, cold.stdout.str()
    for name, record in first.items():
        assert record["outcome"] == "passed", f"{name}: {record.get('message')}"
        assert sorted(record["per_video"]) == sorted(names)
        assert all(-1 <= value <= 1 for value in record["per_video"].values())
        assert record["value"] == pytest.approx(np.mean(list(record["per_video"].values())))
        assert record["backbone"]["name"] == "clip-vit-b32" and len(record["backbone"]["weights_sha256"]) == 64
        assert record["backbone"]["weights_check"].startswith("UNVERIFIED: RANDOM TEST WEIGHTS")
        assert record["backbone"]["licence"] == "MIT (OpenAI CLIP)"
    # clip_temp reads the frame embeddings clip_sim computed: one image pass over the set, one text pass
    assert first["clip_sim[gen]"]["backbone"]["features_computed"] == 3
    assert first["clip_temp[gen]"]["backbone"]["features_computed"] == 0
    assert first["clip_temp[gen]"]["details"]["videos_decoded"] == 0
    passes = log.read_text().split("\n")
    assert sum(int(line.split()[1]) for line in passes if line.startswith("image")) == 9  # 3 videos x 3 frames
    assert sum(int(line.split()[1]) for line in passes if line.startswith("text")) == 3
    log.unlink()

    pytester.runpytest_subprocess(*args, "--aigve-report-dir", "warm")
    second = records(pytester.path / "warm" / "aigve-results.json")
    assert not log.exists()  # no image or text embedding was computed: everything came from the feature cache
    for name, record in second.items():
        assert record["value"] == first[name]["value"] and record["per_video"] == first[name]["per_video"]
        assert record["backbone"]["features_computed"] == 0 and record["details"]["videos_decoded"] == 0
        assert record["backbone"]["features_cached"] == 3


def test_a_missing_weights_folder_names_the_fetch_command(tmp_path: Path, clip_weights: Path) -> None:
    with pytest.raises(WeightsError, match=r"python -m pytest_aigve weights fetch clip_vit_b32"):
        run(CLIPSim, tmp_path)
    # PickScore's processor folder is looked for beside the model folder
    (tmp_path / "yuvalkirstain").mkdir()
    (tmp_path / "yuvalkirstain" / "PickScore_v1").symlink_to(clip_weights / "yuvalkirstain" / "PickScore_v1")
    with pytest.raises(WeightsError, match=r"processor of laion/.*weights fetch pickscore_processor"):
        run(PickScore, tmp_path)


def test_weights_random_writes_the_folders_but_never_over_a_real_one(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from pytest_aigve.features.clip_hf import write_random_folder
    from pytest_aigve.random_weights import WRITERS, cli_random

    assert {"clip_vit_b32", "clip_vit_l14", "pickscore_v1", "pickscore_processor"} <= set(WRITERS)
    real = tmp_path / "openai" / "clip-vit-base-patch32"
    real.mkdir(parents=True)
    (real / "config.json").write_text("{}")
    assert cli_random(tmp_path) == 1  # checked before anything is written
    assert f"{real} exists and is not random test weights" in capsys.readouterr().err
    assert [path.name for path in tmp_path.rglob("*") if path.is_file()] == ["config.json"]
    with pytest.raises(WeightsError, match="left alone"):
        write_random_folder("clip_vit_b32", tmp_path)
