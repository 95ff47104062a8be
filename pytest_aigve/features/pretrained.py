"""Backbones loaded from a Hugging Face style weights folder (`from_pretrained(folder)`, offline only).

The folder is located and verified as one unit (features.weights.WeightsFolder: every file present, per-file
hashes, one identity digest); this module only loads it. `transformers` is an optional dependency
(`pip install 'pytest-aigve[text]'`): a check that needs it without it installed is an error that says so.

Several backbones may read one folder (a CLIP model's image and text towers): `shared_model` loads it once per
process, folder, device and dtype.
"""

from __future__ import annotations

import threading
from abc import abstractmethod
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from ..errors import MetricError
from .backbones import Backbone
from .weights import WeightsError, WeightsFolder, _reason, fetch_command

TEXT_EXTRA_HINT = "pip install 'pytest-aigve[text]'"

_MODELS: dict[tuple[str, str, str, str, str], Any] = {}
_MODELS_LOCK = threading.Lock()


def require_transformers(who: str) -> Any:
    """The transformers module, or a MetricError naming who needs it and how to install it."""
    try:
        import transformers
    except ImportError:
        raise MetricError(f"{who} needs the transformers package, which is not installed; install it with: "
                          f"{TEXT_EXTRA_HINT}") from None
    return transformers


def from_pretrained(loader: Any, folder: Path, entry: WeightsFolder, **kwargs: Any) -> Any:
    """`loader.from_pretrained(folder, local_files_only=True)`; a folder that does not load is a WeightsError
    naming it, the reason and the fetch command (never a download attempt)."""
    try:
        return loader.from_pretrained(str(folder), local_files_only=True, **kwargs)
    except (OSError, ValueError, KeyError, RuntimeError, TypeError, AttributeError) as exc:
        raise WeightsError(
            f"cannot load weights folder {folder} for {entry.key} ({_reason(exc)}); is it a complete "
            f"{entry.description.split(':')[0]} folder? Fetch the published one with: {fetch_command([entry.key])}"
        ) from None


def shared_model(folder: Path, digest: str, device: torch.device, dtype: torch.dtype, kind: str,
                 build: Callable[[], nn.Module]) -> Any:
    """One model per (folder and its digest, device, dtype, kind) and process: `build()` on first use, in eval
    mode, without gradients, on `device`. The digest is in the key so that a folder replaced in place (a new fetch
    under a long-running service) is loaded again, never served from the old model under the new identity."""
    key = (str(folder.resolve()), digest, str(device), str(dtype), kind)
    with _MODELS_LOCK:
        if key not in _MODELS:
            _MODELS[key] = build().eval().requires_grad_(False).to(device=device, dtype=dtype)
        return _MODELS[key]


class PretrainedBackbone(Backbone):
    """A backbone whose weights are a WeightsFolder; `build_pretrained(folder)` returns the network."""

    weights_file: ClassVar[WeightsFolder]

    @cached_property
    def model(self) -> nn.Module:
        return shared_model(self.weights_path, self.weights_sha256, self.device, self.dtype,
                            type(self).__name__,
                            lambda: self.build_pretrained(self.weights_path))

    def build(self, state: dict[str, Any]) -> nn.Module:
        raise AssertionError(f"{self.key} loads a weights folder with build_pretrained, not a state dict")

    @abstractmethod
    def build_pretrained(self, folder: Path) -> nn.Module:
        """The network from the folder (use `from_pretrained`)."""
