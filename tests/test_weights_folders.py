"""Weights folders (Hugging Face style, loaded with `from_pretrained(folder)`): lookup of the folder as one unit,
per-file checks, the folder's identity digest, the random-test marker, and resumable fetching from a local HTTP
server on 127.0.0.1."""

from __future__ import annotations

import functools
import hashlib
import http.server
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_aigve.__main__ import main
from pytest_aigve.features import weights
from pytest_aigve.features.weights import (
    RANDOM_FOLDER_MARKER,
    RANDOM_STATUS,
    FolderFile,
    WeightsError,
    WeightsFolder,
    fetch,
    folder_sha256,
    locate,
    verify,
)
from pytest_aigve.paths import WEIGHTS_ENV

CONTENTS = {
    "config.json": b'{"model_type": "toy"}',
    "model.safetensors": b"\x00\x01toy-tensors" * 100,
    "tokenizer/vocab.json": b'{"a": 0, "b": 1}',
}


def make_entry(contents: dict[str, bytes] = CONTENTS, base_url: str = "http://127.0.0.1:9/toy",
               unpublished: str = "tokenizer/vocab.json") -> WeightsFolder:
    """A folder entry publishing every file's hash and size except `unpublished`'s."""
    files = tuple(FolderFile(name, None if name == unpublished else hashlib.sha256(data).hexdigest(),
                             None if name == unpublished else len(data))
                  for name, data in contents.items())
    return WeightsFolder("toyclip", "toy-clip", base_url, files, "toy CLIP folder: text and video towers",
                         aliases=("toy-clip-old",), licence="MIT (test)")


TOY = make_entry()


def write_folder(folder: Path, contents: dict[str, bytes] = CONTENTS) -> Path:
    for name, data in contents.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


@pytest.fixture
def isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    return tmp_path


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[tuple[str, Path, list[str]]]:
    """Serves tmp_path/served; the third item lists every requested path."""
    root = tmp_path / "served"
    root.mkdir()
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            super().do_GET()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", root, requests
    finally:
        server.shutdown()
        server.server_close()


# --- lookup ---------------------------------------------------------------------------------------------------

def test_a_folder_is_found_in_lookup_order_when_every_file_is_there(isolated_dirs: Path) -> None:
    hub = isolated_dirs / "torch-home" / "hub" / "checkpoints"
    mine = isolated_dirs / "mine"
    write_folder(hub / "toy-clip")
    assert locate(TOY, None, mine) == hub / "toy-clip"
    write_folder(mine / "toy-clip-old")  # an alias, in the weights folder: before the hub cache
    assert locate(TOY, None, mine) == mine / "toy-clip-old"
    explicit = write_folder(isolated_dirs / "given")
    assert locate(TOY, explicit, mine) == explicit


def test_a_missing_folder_names_every_place_and_the_fetch_command(isolated_dirs: Path) -> None:
    with pytest.raises(WeightsError) as info:
        locate(TOY, None, isolated_dirs / "mine")
    message = str(info.value)
    assert message.startswith("missing weights folder toy-clip (toy CLIP folder: text and video towers); looked in: ")
    assert f"{isolated_dirs / 'mine'} (--aigve-weights-dir); " in message
    assert f"{isolated_dirs / 'torch-home' / 'hub' / 'checkpoints'} (torch hub cache)" in message
    assert "fetch with: python -m pytest_aigve weights fetch toyclip" in message


def test_a_partial_folder_names_the_missing_files_and_the_fetch_command(isolated_dirs: Path) -> None:
    mine = isolated_dirs / "mine"
    folder = write_folder(mine / "toy-clip")
    (folder / "model.safetensors").unlink()
    with pytest.raises(WeightsError) as info:
        locate(TOY, None, mine)
    assert str(info.value) == (
        f"incomplete weights folder {folder} (toyclip: toy CLIP folder: text and video towers): missing "
        f"model.safetensors (1 of 3 files); fetch the rest with: python -m pytest_aigve weights fetch toyclip "
        f"--dir {mine}")
    with pytest.raises(WeightsError, match=r"missing model\.safetensors \(1 of 3 files\); copy them into it"):
        locate(TOY, folder, None)


# --- checks and identity -------------------------------------------------------------------------------------

def test_verify_checks_every_published_hash_and_size(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "toy-clip")
    check = verify(TOY, folder)
    assert check.status == "sha256 match (2 of 3 files; the others have no published hash)"
    assert check.sha256 == folder_sha256(TOY, folder)
    (folder / "config.json").write_bytes(b'{"model_type": "toz"}')  # same size, other bytes
    with pytest.raises(WeightsError) as info:
        verify(TOY, folder)
    message = str(info.value)
    found = hashlib.sha256(b'{"model_type": "toz"}').hexdigest()
    assert message.startswith(f"corrupt weights folder {folder}: config.json has sha256 {found}, expected "
                              f"{hashlib.sha256(CONTENTS['config.json']).hexdigest()}; ")
    assert "python -m pytest_aigve weights fetch toyclip" in message
    (folder / "config.json").write_bytes(b"{}")
    with pytest.raises(WeightsError, match=r"config\.json has 2 bytes, expected 21 \(truncated download\?\)"):
        verify(TOY, folder)
    check = verify(TOY, folder, allow_unverified=True)
    assert check.status == "UNVERIFIED: config.json has 2 bytes, expected 21 (truncated download?)"


def test_the_identity_digest_covers_every_file(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "toy-clip")
    lines = sorted(f"{name}\t{hashlib.sha256(data).hexdigest()}\n" for name, data in CONTENTS.items())
    first = folder_sha256(TOY, folder)
    assert first == hashlib.sha256("".join(lines).encode()).hexdigest()
    digests = {first}
    for name in CONTENTS:  # an unpublished file (tokenizer/vocab.json) changes the identity too
        (folder / name).write_bytes(CONTENTS[name] + b" ")
        digests.add(verify(TOY, folder, allow_unverified=True).sha256)
        (folder / name).write_bytes(CONTENTS[name])
    assert len(digests) == 1 + len(CONTENTS)
    assert folder_sha256(TOY, folder) == first
    (folder / "notes.txt").write_text("not listed")  # files outside the list do not count
    assert folder_sha256(TOY, folder) == first


def test_the_random_test_marker_is_reported(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "toy-clip")
    (folder / RANDOM_FOLDER_MARKER).write_text("")
    assert verify(TOY, folder).status == RANDOM_STATUS
    (folder / "model.safetensors").write_bytes(b"random tensors")
    with pytest.raises(WeightsError, match="holds random test weights") as info:
        verify(TOY, folder)
    assert "fetch toyclip --force" in str(info.value)
    assert verify(TOY, folder, allow_unverified=True).status.startswith(f"{RANDOM_STATUS}; model.safetensors has")


def test_folder_entries_reject_unsafe_file_names() -> None:
    for name in ("../escape.json", "/abs.json", "a//b", RANDOM_FOLDER_MARKER):
        with pytest.raises(ValueError, match="weights folder bad"):
            WeightsFolder("bad", "bad", "http://x/", (FolderFile(name),), "bad")


# --- fetching ------------------------------------------------------------------------------------------------

def test_fetch_writes_every_file_verifies_and_resumes(http_server: tuple[str, Path, list[str]],
                                                      tmp_path: Path) -> None:
    url, served, requests = http_server
    write_folder(served / "toy" / "toy-clip")
    entry = make_entry(base_url=url + "toy/toy-clip/")
    target = tmp_path / "weights"
    folder = fetch(entry, target)
    assert folder == target / "toy-clip"
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) == sorted(CONTENTS)
    assert verify(entry, folder).sha256 == folder_sha256(entry, served / "toy" / "toy-clip")
    assert len(requests) == 3
    assert fetch(entry, target) == folder  # nothing to download the second time
    assert len(requests) == 3
    (folder / "config.json").unlink()  # an interrupted fetch: only what is missing is downloaded
    fetch(entry, target)
    assert requests[3:] == ["/toy/toy-clip/config.json"]
    fetch(entry, target, force=True)
    assert len(requests) == 7


def test_fetch_from_a_mirror_holding_the_folder_by_name(http_server: tuple[str, Path, list[str]],
                                                        tmp_path: Path) -> None:
    url, served, requests = http_server
    write_folder(served / "toy-clip")
    fetch(TOY, tmp_path / "weights", mirror=url.rstrip("/"))  # the base URL (port 9) is never asked
    assert sorted(requests) == ["/toy-clip/config.json", "/toy-clip/model.safetensors",
                                "/toy-clip/tokenizer/vocab.json"]


def test_a_corrupt_file_on_the_server_is_named_and_not_kept(http_server: tuple[str, Path, list[str]],
                                                            tmp_path: Path) -> None:
    url, served, _ = http_server
    write_folder(served / "toy-clip")
    (served / "toy-clip" / "model.safetensors").write_bytes(b"tampered" * 10)
    target = tmp_path / "weights"
    with pytest.raises(WeightsError) as info:
        fetch(TOY, target, mirror=url)
    assert f"download of {url}toy-clip/model.safetensors has sha256 " in str(info.value)
    assert "the file was not kept" in str(info.value)
    folder = target / "toy-clip"
    assert not (folder / "model.safetensors").exists()
    assert not [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


def test_fetch_refuses_a_bad_local_file_and_a_random_folder_without_force(
        http_server: tuple[str, Path, list[str]], tmp_path: Path) -> None:
    url, served, requests = http_server
    write_folder(served / "toy-clip")
    folder = write_folder(tmp_path / "weights" / "toy-clip")
    (folder / "config.json").write_bytes(b"{}")
    with pytest.raises(WeightsError, match=r"config\.json has 2 bytes, expected 21 .*--force"):
        fetch(TOY, tmp_path / "weights", mirror=url)
    (folder / RANDOM_FOLDER_MARKER).write_text("")
    with pytest.raises(WeightsError, match=r"random test weights.*--force"):
        fetch(TOY, tmp_path / "weights", mirror=url)
    assert requests == []
    fetch(TOY, tmp_path / "weights", mirror=url, force=True)
    assert not (folder / RANDOM_FOLDER_MARKER).exists() and verify(TOY, folder).status.startswith("sha256 match")


# --- command line --------------------------------------------------------------------------------------------

def test_weights_cli_fetches_and_lists_a_folder_entry(
        http_server: tuple[str, Path, list[str]], isolated_dirs: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    url, served, requests = http_server
    write_folder(served / "toy-clip")
    monkeypatch.setitem(weights.FOLDER_REGISTRY, TOY.key, TOY)
    target = isolated_dirs / "weights"
    assert main(["weights", "list", "--dir", str(target)]) == 0
    listed = capsys.readouterr().out
    assert re.search(r"^toyclip +toy-clip/ \(3 files\)", listed, re.MULTILINE) and "sha256 of 2 of 3 files" in listed
    assert listed.rstrip().splitlines()[-3].endswith("missing")
    assert listed.rstrip().splitlines()[-1].strip() == "licence: MIT (test)"  # what a company checks
    assert main(["weights", "fetch", "toyclip", "--dir", str(target), "--mirror", url]) == 0
    err = capsys.readouterr().err
    folder = target / "toy-clip"
    assert f"toy-clip/ (3 files) -> {target}" in err
    assert f"ok: {folder} (folder sha256 {folder_sha256(TOY, folder)}; sha256 match (2 of 3" in err
    assert main(["weights", "fetch", "toyclip", "--dir", str(target), "--mirror", url]) == 0
    assert "config.json: already there" in capsys.readouterr().err and len(requests) == 3
    assert main(["weights", "list", "--dir", str(target)]) == 0
    assert capsys.readouterr().out.rstrip().splitlines()[-3].endswith(str(folder))
    (folder / "config.json").unlink()
    assert main(["weights", "list", "--dir", str(target)]) == 0
    assert capsys.readouterr().out.rstrip().splitlines()[-3].endswith("incomplete")
    assert main(["weights", "fetch", "toyclip", "nope"]) == 1
    err = capsys.readouterr().err
    assert "unknown weights or metric 'nope'; known weights: inception, i3d, videomae, r3d18, " in err
    assert ", toyclip; known metrics: fid, " in err


def test_a_folder_model_is_loaded_once_per_digest(tmp_path: Path) -> None:
    """Backbones reading one folder share its model; a folder replaced in place (another digest) loads again."""
    import torch

    from pytest_aigve.features.pretrained import shared_model

    builds: list[int] = []

    def build() -> torch.nn.Module:
        builds.append(1)
        return torch.nn.Linear(2, 2)

    cpu = torch.device("cpu")
    first = shared_model(tmp_path, "a" * 64, cpu, torch.float32, "toy", build)
    assert shared_model(tmp_path, "a" * 64, cpu, torch.float32, "toy", build) is first and len(builds) == 1
    assert shared_model(tmp_path, "b" * 64, cpu, torch.float32, "toy", build) is not first and len(builds) == 2
    assert not first.training and not any(p.requires_grad for p in first.parameters())
