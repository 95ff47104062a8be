"""Weights: lookup order, clear errors for missing / corrupt / truncated / wrong files, and fetching
from a local HTTP server on 127.0.0.1."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from pytest_aigve.__main__ import main
from pytest_aigve.errors import MetricError
from pytest_aigve.features.backbones import BACKBONES
from pytest_aigve.features.weights import (
    REGISTRY,
    WeightsError,
    WeightsFile,
    fetch,
    file_sha256,
    load_state_dict,
    locate,
    verify,
)
from pytest_aigve.paths import WEIGHTS_ENV
from pytest_aigve.random_weights import DISTRIBUTION_KEYS, write_i3d

I3D = REGISTRY["i3d"]
INCEPTION = REGISTRY["inception"]


@pytest.fixture
def isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No weights anywhere: an empty torch hub and no AIGVE_WEIGHTS_DIR."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    return tmp_path


def test_missing_weights_name_the_file_every_place_and_the_fetch_command(isolated_dirs: Path) -> None:
    with pytest.raises(WeightsError) as info:
        locate(I3D, None, isolated_dirs / "mine")
    message = str(info.value)
    assert message.startswith("missing weights i3d_pretrained_400.pt")
    assert f"{isolated_dirs / 'mine'} (--aigve-weights-dir)" in message
    assert f"{isolated_dirs / 'torch-home' / 'hub' / 'checkpoints'} (torch hub cache)" in message
    assert "cdfvd/third_party/i3d (cd-fvd folder)" in message
    assert "fetch with: python -m pytest_aigve weights fetch i3d" in message


def test_lookup_order(isolated_dirs: Path) -> None:
    hub = isolated_dirs / "torch-home" / "hub" / "checkpoints"
    option_dir = isolated_dirs / "option"
    for folder in (hub, option_dir):
        folder.mkdir(parents=True)
        (folder / I3D.filename).write_bytes(folder.name.encode())
    assert locate(I3D, None, None) == hub / I3D.filename
    assert locate(I3D, None, option_dir) == option_dir / I3D.filename
    explicit = isolated_dirs / "given.pt"
    explicit.write_bytes(b"x")
    assert locate(I3D, explicit, option_dir) == explicit
    # torch-fidelity's name for the same Inception file is found too
    (hub / "weights-inception-2015-12-05-6726825d.pth").write_bytes(b"x")
    assert locate(INCEPTION, None, None) == hub / "weights-inception-2015-12-05-6726825d.pth"


def test_the_weights_folder_comes_from_the_option_else_the_environment(
        isolated_dirs: Path, monkeypatch: pytest.MonkeyPatch, pytester: pytest.Pytester) -> None:
    """The plugin reads AIGVE_WEIGHTS_DIR once, into its options; a missing file names where the folder came from."""
    from pytest_aigve.options import options_from_config

    env_dir, option_dir = isolated_dirs / "env", isolated_dirs / "option"
    monkeypatch.setenv(WEIGHTS_ENV, str(env_dir))
    from_env = options_from_config(pytester.parseconfig())
    assert (from_env.weights_dir, from_env.weights_dir_source) == (env_dir, WEIGHTS_ENV)
    from_option = options_from_config(pytester.parseconfig("--aigve-weights-dir", str(option_dir)))
    assert (from_option.weights_dir, from_option.weights_dir_source) == (option_dir, "--aigve-weights-dir")
    with pytest.raises(WeightsError) as info:
        locate(I3D, None, from_env.weights_dir, from_env.weights_dir_source)
    assert f"looked in: {env_dir} ({WEIGHTS_ENV}); " in str(info.value)


def test_weights_cli_reads_the_weights_folder_from_the_environment(
        isolated_dirs: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    env_dir, other = isolated_dirs / "env", isolated_dirs / "other"
    for folder in (env_dir, other):
        folder.mkdir()
        (folder / I3D.filename).write_bytes(b"x")
    monkeypatch.setenv(WEIGHTS_ENV, str(env_dir))
    assert main(["weights", "list"]) == 0
    assert str(env_dir / I3D.filename) in capsys.readouterr().out
    assert main(["weights", "list", "--dir", str(other)]) == 0  # --dir wins
    listed = capsys.readouterr().out
    assert str(other / I3D.filename) in listed and str(env_dir) not in listed


def test_bad_hash_is_an_error_unless_allowed_and_then_recorded(tmp_path: Path) -> None:
    path = tmp_path / INCEPTION.filename
    path.write_bytes(b"not the published inception weights")
    with pytest.raises(WeightsError) as info:
        verify(INCEPTION, path)
    assert "corrupt weights" in str(info.value) and "expected sha256 prefix 6726825d" in str(info.value)
    assert "python -m pytest_aigve weights fetch inception" in str(info.value)
    check = verify(INCEPTION, path, allow_unverified=True)
    assert check.status.startswith("UNVERIFIED: sha256") and check.sha256 == file_sha256(path)
    assert verify(I3D, path).status == "no published hash"


def test_truncated_weights_file(random_weights: Path, tmp_path: Path) -> None:
    path = tmp_path / I3D.filename
    path.write_bytes((random_weights / I3D.filename).read_bytes()[:100_000])
    backbone = BACKBONES["i3d"](path, file_sha256(path), torch.device("cpu"))
    with pytest.raises(WeightsError) as info:
        backbone.model  # noqa: B018 - built on first use
    assert f"cannot load weights {path} for i3d" in str(info.value) and "truncated" in str(info.value)


def test_weights_of_the_wrong_architecture(random_weights: Path, tmp_path: Path) -> None:
    wrong = tmp_path / INCEPTION.filename
    shutil.copy(random_weights / I3D.filename, wrong)  # I3D weights under Inception's name
    backbone = BACKBONES["inception"](wrong, file_sha256(wrong), torch.device("cpu"))
    with pytest.raises(WeightsError) as info:
        backbone.model  # noqa: B018
    assert "are not a TF-FID InceptionV3 (2015-12-05), converted by pytorch-fid checkpoint" in str(info.value)
    assert "missing keys" in str(info.value) and "right file for inception" in str(info.value)
    other = tmp_path / "videomae.pth"
    torch.save({"model": {"foo": torch.zeros(1)}}, other)
    with pytest.raises(WeightsError, match="not a VideoMAE-v2 ViT checkpoint"):
        BACKBONES["videomae"](other, "x", torch.device("cpu")).model  # noqa: B018


def test_pickled_objects_are_refused(tmp_path: Path) -> None:
    path = tmp_path / I3D.filename
    torch.save({"state": {}, "args": MetricError("a pickled object")}, path)
    with pytest.raises(WeightsError, match="cannot load weights"):
        BACKBONES["i3d"](path, "x", torch.device("cpu")).model  # noqa: B018


def assert_holds_the_file(model: torch.nn.Module, path: Path, entry: WeightsFile) -> None:
    """Every tensor of the built network is the file's, under the same name (a backbone may drop a head)."""
    state = load_state_dict(path, entry, nested_keys=("model", "module", "state_dict"))
    loaded = model.state_dict()
    assert loaded and set(loaded) <= set(state), sorted(set(loaded) - set(state))[:5]
    assert [name for name, tensor in loaded.items() if not torch.equal(tensor.cpu(), state[name])] == []


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", root
    finally:
        server.shutdown()
        server.server_close()


def test_fetch_downloads_atomically_with_progress(http_server: tuple[str, Path], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    url, served = http_server
    write_i3d(served)
    target = tmp_path / "weights"
    assert main(["weights", "fetch", "fvd", "--dir", str(target), "--mirror", url]) == 0
    assert file_sha256(target / I3D.filename) == file_sha256(served / I3D.filename)
    assert sorted(p.name for p in target.iterdir()) == [I3D.filename]  # no partial files left
    err = capsys.readouterr().err
    assert "[##############################]" in err and f"ok: {target / I3D.filename}" in err
    # the fetched file is what a run then loads
    backbone = BACKBONES["i3d"](target / I3D.filename, file_sha256(target / I3D.filename), torch.device("cpu"))
    assert_holds_the_file(backbone.model, served / I3D.filename, I3D)


def test_fetch_refuses_a_file_with_the_wrong_hash(http_server: tuple[str, Path], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    url, served = http_server
    (served / INCEPTION.filename).write_bytes(b"tampered" * 1000)
    target = tmp_path / "weights"
    assert main(["weights", "fetch", "inception", "--dir", str(target), "--mirror", url]) == 1
    assert "expected sha256 prefix 6726825d" in capsys.readouterr().err
    assert not list(target.iterdir())


def test_fetch_reports_a_missing_file(http_server: tuple[str, Path], tmp_path: Path) -> None:
    url, _ = http_server
    with pytest.raises(WeightsError, match=r"cannot download .*r3d_18-b3b3357e\.pth.*404"):
        fetch(REGISTRY["r3d18"], tmp_path, mirror=url)
    assert not list(tmp_path.glob("*.part"))


def test_fetch_names_unknown_weights(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["weights", "fetch", "fdi"]) == 1
    err = capsys.readouterr().err
    assert "unknown weights or metric 'fdi'; known weights: inception, i3d, videomae, r3d18, " in err
    assert "; known metrics: fid, kid, is, fvd" in err


# --- messages: hostile pickles and files that are not checkpoints ---------------------------------------------

TORCH_SUGGESTIONS = ("weights_only=False", "`weights_only` set to `False`", "will likely succeed", "add_safe_globals",
                     "safe_globals(")


@pytest.mark.parametrize("kind", ["namespace", "os.system"])
def test_hostile_pickle_is_refused_for_safety(tmp_path: Path, kind: str) -> None:
    import argparse
    import os
    import pickle

    path = tmp_path / I3D.filename
    if kind == "namespace":  # a trusted-looking training checkpoint that nests its arguments
        torch.save({"model": {"w": torch.zeros(1)}, "args": argparse.Namespace(lr=0.1)}, path)
        name = "argparse.Namespace"
    else:  # a pickle that would run a command when loaded without weights_only
        path.write_bytes(pickle.dumps({"w": os.system}, protocol=2))
        name = "system"
    with pytest.raises(WeightsError) as info:
        BACKBONES["i3d"](path, "x", torch.device("cpu")).model  # noqa: B018
    message = str(info.value)
    assert str(path) in message and name in message
    assert "Python objects beyond tensors" in message and "refused" in message
    assert "official file" in message and "python -m pytest_aigve weights fetch i3d" in message
    assert "re-save its state dict with tensors only" in message
    for suggestion in TORCH_SUGGESTIONS:
        assert suggestion not in message
    assert "truncated" not in message


def test_a_file_that_is_not_a_checkpoint_is_never_to_be_deleted(tmp_path: Path) -> None:
    """`weights: /etc/passwd`: not ours, not a checkpoint; the message says so and never says to delete it."""
    passwd = tmp_path / "passwd"
    passwd.write_text("root:x:0:0:root:/root:/bin/bash\n")
    with pytest.raises(WeightsError) as info:
        BACKBONES["i3d"](passwd, file_sha256(passwd), torch.device("cpu")).model  # noqa: B018
    message = str(info.value)
    assert f"{passwd} is not a PyTorch checkpoint" in message and "`weights:` path" in message
    assert "delete" not in message
    # the hash check (Inception's published prefix) says the same, not "corrupt: delete it"
    with pytest.raises(WeightsError) as info:
        verify(INCEPTION, passwd)
    message = str(info.value)
    assert f"{passwd} is not a PyTorch checkpoint" in message and "delete" not in message
    # a checkpoint the user named explicitly that fails the hash check: no "delete" either
    mine = tmp_path / "my-inception.pth"
    torch.save({"w": torch.zeros(1)}, mine)
    with pytest.raises(WeightsError) as info:
        verify(INCEPTION, mine)
    assert "delete" not in str(info.value) and "expected sha256 prefix 6726825d" in str(info.value)
    # a damaged file under the registry's name (our fetch and cache locations) keeps "delete it and fetch again"
    ours = tmp_path / INCEPTION.filename
    ours.write_bytes(b"not the published inception weights")
    with pytest.raises(WeightsError, match="delete it and run: python -m pytest_aigve weights fetch inception"):
        verify(INCEPTION, ours)


# --- random test weights are marked, and every score made with them says so --------------------------------

RANDOM_MARK = "UNVERIFIED: RANDOM TEST WEIGHTS"


def test_weights_random_cli_writes_marked_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "random"
    # by weights key and by metric name (fid: inception); the video-quality and text models have their own tests
    assert main(["weights", "random", "--dir", str(folder), "fid", "i3d", "videomae", "r3d18"]) == 0
    out = capsys.readouterr()
    assert sorted(p.name for p in folder.iterdir()) == sorted(REGISTRY[key].filename for key in DISTRIBUTION_KEYS)
    assert "scores made with them are meaningless" in out.out + out.err
    assert main(["weights", "random", "--dir", str(folder), "nope"]) == 1
    assert "unknown weights or metric 'nope'" in capsys.readouterr().err
    for key in DISTRIBUTION_KEYS:
        entry = REGISTRY[key]
        path = folder / entry.filename
        if entry.sha256_prefix:  # a published hash: refused unless unverified weights are allowed ...
            with pytest.raises(WeightsError, match="random test weights"):
                verify(entry, path)
        # ... and with no published hash (i3d, videomae) the marker is the only guard: never a plain "no published
        # hash" status
        check = verify(entry, path, allow_unverified=True)
        assert check.status.startswith(RANDOM_MARK), key
        if not entry.sha256_prefix:
            assert verify(entry, path).status.startswith(RANDOM_MARK), key
        # the marker is invisible to the loading code's key check: the model builds, from the file's tensors
        backbone = BACKBONES[key](path, check.sha256, torch.device("cpu"), weights_status=check.status)
        assert_holds_the_file(backbone.model, path, entry)
        assert backbone.describe()["weights_check"].startswith(RANDOM_MARK)


def test_scores_made_with_random_weights_say_so(random_weights: Path, tmp_path: Path,
                                                make_video: Callable[..., Path]) -> None:
    from pytest_aigve.engine import EvalContext, evaluate_check
    from pytest_aigve.metrics.registry import MetricRegistry
    from pytest_aigve.suite import load_suite
    from pytest_aigve.videos.cache import ClipCache

    ref = [make_video(f"ref/r{i}.mp4", seed=i, frames=10) for i in range(3)]
    gen = [make_video(f"gen/g{i}.mp4", seed=i, frames=10, degraded=True) for i in range(3)]
    suite_path = tmp_path / "suite.yaml"
    suite_path.write_text(f"""\
protocol: {{frames: 10}}
video_sets:
  ref: {{files: {[str(p) for p in ref]}}}
  gen: {{files: {[str(p) for p in gen]}}}
checks:
  - {{metric: fid, reference: ref, candidate: gen, protocol: {{frames: 2}}}}
  - {{metric: fvd, reference: ref, candidate: gen}}
""")
    registry = MetricRegistry()
    suite = load_suite(suite_path, registry)
    for allow, checks in ((True, suite.checks), (False, suite.checks[1:])):  # fvd's i3d has no published hash
        ctx = EvalContext(device=torch.device("cpu"), clips=ClipCache(10**9), registry=registry,
                          weights_dir=random_weights, allow_unverified_weights=allow)
        for check in checks:
            result = evaluate_check(suite, check, ctx).result
            assert result.backbone is not None and result.backbone.weights_check.startswith(RANDOM_MARK), check.id
            assert any("RANDOM TEST WEIGHTS" in warning for warning in result.warnings), check.id


def test_weights_random_reports_a_writer_that_cannot_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """A writer needing an optional package (transformers for the CLIP folders) is a one-line error, not a
    traceback."""
    from pytest_aigve import random_weights

    def needs_transformers(folder: Path, seed: int = 0) -> Path:
        raise MetricError("random CLIP test weights needs the transformers package, which is not installed; "
                          "install it with: pip install 'pytest-aigve[text]'")

    monkeypatch.setitem(random_weights.WRITERS, "clip_vit_b32", needs_transformers)
    assert main(["weights", "random", "--dir", str(tmp_path), "clip_sim"]) == 1
    assert "error: clip_vit_b32: random CLIP test weights needs the transformers package" in capsys.readouterr().err
