"""Our decoded RGB frames equal decord's (what VBench and DOVER read with), bit for bit, on the shared real clips:
a metric that agrees with its reference on identical frames then agrees on identical files too.
benchmarks/decoder_agreement.py measures every shared clip; this checks one clip of each kind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pytest_aigve.protocol import ClipProtocol
from pytest_aigve.videos.decode import decode_clip

decord = pytest.importorskip("decord")


@pytest.mark.shared_data
@pytest.mark.parametrize("folder", ["aigve_bench_toy/videos_3frame", "aigve_toy_lavie/evaluate"])
def test_pyav_frames_equal_decord_frames(shared_data: Path, folder: str) -> None:
    path = sorted((shared_data / folder).glob("*.mp4"))[0]
    ours = decode_clip(path, ClipProtocol(frames=None)).frames
    reader = decord.VideoReader(str(path), ctx=decord.cpu(0))
    theirs = reader.get_batch(list(range(len(reader)))).asnumpy()
    assert ours.shape == theirs.shape
    assert ours.std() > 1  # real content, not a blank frame that would agree trivially
    np.testing.assert_array_equal(ours, theirs)
