"""Decode groups: checks over the same clips run on one xdist worker, so `-n 2` decodes each video once."""

from __future__ import annotations

import re
from argparse import Namespace
from pathlib import Path

import pytest

from pytest_aigve.metrics.registry import MetricRegistry
from pytest_aigve.scheduling import CheckReads, decode_groups, groups_by_nodeid, implies_load
from pytest_aigve.suite import Suite, load_suite

from .helpers import SUITE, make_videos, read_json

KEY = (16, None, 0.0, 1, "error")  # a ClipProtocol().decode_key()
OTHER_KEY = (8, None, 0.0, 1, "error")


def reads(check: str, *videos: str, first_set: str = "ref", key: tuple[object, ...] = KEY) -> CheckReads:
    return CheckReads(check=check, first_set=first_set, videos=tuple(videos), decode_key=key)


def test_checks_sharing_a_clip_directly_or_through_others_form_one_group() -> None:
    checks = [reads("a", "/v/1", "/v/2"), reads("b", "/v/3"), reads("c", "/v/2", "/v/4"), reads("d", "/v/4", "/v/3"),
              reads("e", "/v/9")]
    groups = decode_groups(checks)
    assert groups[0] == groups[1] == groups[2] == groups[3]  # b joins a through c and d
    assert groups[4] != groups[0]
    assert decode_groups([]) == []


def test_the_same_videos_under_another_decode_protocol_are_another_group() -> None:
    groups = decode_groups([reads("a", "/v/1"), reads("b", "/v/1", key=OTHER_KEY), reads("c", "/v/1")])
    assert groups[0] == groups[2] != groups[1]


def test_names_are_readable_and_stable() -> None:
    checks = [reads("psnr", "/v/1", "/v/2", first_set="ref"), reads("flicker", "/v/2", first_set="gen"),
              reads("other", "/v/7", first_set="gen")]
    groups = decode_groups(checks)
    assert re.fullmatch(r"aigve:ref:[0-9a-f]{8}", groups[0]) and groups[1] == groups[0]
    assert re.fullmatch(r"aigve:gen:[0-9a-f]{8}", groups[2])
    assert decode_groups(checks) == groups  # every worker computes the same names
    # a group's name depends on its own clips only: an unrelated check elsewhere in the run changes nothing
    assert decode_groups([reads("new", "/v/8", first_set="x"), *checks])[1:] == groups


def test_names_are_safe_in_an_xdist_node_id_suffix() -> None:
    """xdist takes the group after the last '@' of a node id, and only when no ']' follows it."""
    name = decode_groups([reads("a", "/v/1", first_set="gen[v2]@x")])[0]
    assert "@" not in name and "]" not in name and name.startswith("aigve:gen_v2__x:")


def test_a_check_that_reads_no_video_is_a_group_of_its_own() -> None:
    groups = decode_groups([reads("a"), reads("b"), reads("c", "/v/1")])
    assert len(set(groups)) == 3


@pytest.mark.parametrize(("option", "implied"), [
    (Namespace(dist="no", numprocesses=2, distload=False), True),
    (Namespace(dist="no", numprocesses="auto", distload=False), True),
    (Namespace(dist="load", numprocesses=2, distload=False), False),  # an explicit --dist is kept
    (Namespace(dist="no", numprocesses=2, distload=True), False),  # -d is --dist=load
    (Namespace(dist="no", numprocesses=0, distload=False), False),
    (Namespace(dist="no", numprocesses=None, distload=False), False),
    (Namespace(), False),  # -p no:xdist: no such options
])
def test_only_an_implied_load_becomes_loadgroup(option: Namespace, implied: bool) -> None:
    assert implies_load(option) is implied


# the demo suite (one protocol over ref and gen) and a check reading ref under another protocol: two groups
TWO_PROTOCOLS = SUITE + """\
  - name: ref-flicker-short
    metric: flicker
    set: ref
    protocol: {frames: 4}
    min: 0.5
"""


def test_the_controller_groups_collected_node_ids_from_the_suite_files(tmp_path: Path) -> None:
    for folder in ("ref", "gen"):
        (tmp_path / "videos" / folder).mkdir(parents=True)
        for index in range(2):
            (tmp_path / "videos" / folder / f"clip_{index}.mp4").write_bytes(b"")  # listed, never decoded here
    (tmp_path / "demo.yaml").write_text(TWO_PROTOCOLS)
    (tmp_path / "broken.yaml").write_text("checks: [")

    def load(path: Path) -> Suite | None:
        return None if path.name == "test_x.py" else load_suite(path, MetricRegistry())

    ids = ["demo.yaml::flicker[gen]", "demo.yaml::ssim[ref-vs-gen]", "demo.yaml::ref-flicker-short",
           "broken.yaml::psnr", "test_x.py::test_one", "demo.yaml::gone"]
    groups = groups_by_nodeid(ids, tmp_path, load)
    assert set(groups) == {"demo.yaml::flicker[gen]", "demo.yaml::ssim[ref-vs-gen]", "demo.yaml::ref-flicker-short"}
    assert groups["demo.yaml::flicker[gen]"] == groups["demo.yaml::ssim[ref-vs-gen]"]
    assert groups["demo.yaml::ref-flicker-short"] != groups["demo.yaml::flicker[gen]"]


def test_two_workers_decode_each_video_once_and_run_unrelated_groups_in_parallel(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    make_videos(pytester.path, count=3)
    (pytester.path / "demo.yaml").write_text(TWO_PROTOCOLS)
    result = pytester.runpytest_subprocess("-p", "xdist", "-n", "2", "--aigve-suite", "demo.yaml", "--aigve-no-cache",
                                           "--aigve-json", "results.json", "-v")
    result.assert_outcomes(passed=4)
    records = read_json(pytester.path / "results.json")["records"]
    distinct_clips = 3 * 2 + 3  # ref and gen at 8 frames; ref again at 4 frames
    assert sum(record["details"]["videos_decoded"] for record in records) == distinct_clips
    workers = {check: worker for worker, check in re.findall(r"\[(gw\d)\] \[ *\d+%\] PASSED demo\.yaml::(\S+)",
                                                               result.stdout.str())}
    assert workers["flicker[gen]"] == workers["psnr[ref-vs-gen]"] == workers["ssim[ref-vs-gen]"]
    assert workers["ref-flicker-short"] != workers["flicker[gen]"]
