"""Agreement of per-video scores with human ratings: the statistics (against SciPy), ratings on videos (annotation
JSON, `ratings:` manifests), the suite's `agreement:` key, and the check's record, gate and JUnit properties."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from pytest_aigve.agreement import AgreementError, agreement_record, coefficients, model_level, outliers
from pytest_aigve.errors import SuiteError
from pytest_aigve.gate import BootstrapSpec
from pytest_aigve.metrics.registry import MetricRegistry
from pytest_aigve.suite import AgreementSpec, Suite, load_suite
from pytest_aigve.videos.sources import Video

from .helpers import make_videos

EXAMPLES = Path(__file__).resolve().parents[1] / "example_suites"
SCORES = [0.1, 0.4, 0.4, 0.2, 0.9, 0.7, 0.3]
RATINGS = [1.0, 3.0, 2.0, 2.0, 5.0, 5.0, 1.0]  # ties in both
BOOT = BootstrapSpec(resamples=200, level=0.9, seed=7)


def videos(ratings: list[float], groups: list[str] | None = None, field: str = "overall") -> list[Video]:
    return [Video(Path(f"v{i}.mp4"), f"v{i}", f"v{i}.mp4", ratings={field: r},
                  labels={} if groups is None else {"model": groups[i]}) for i, r in enumerate(ratings)]


# --- statistics -------------------------------------------------------------------------------------------------


def test_coefficients_equal_scipy_with_ties() -> None:
    found = coefficients(SCORES, RATINGS, BOOT)
    assert found["spearman"].value == pytest.approx(stats.spearmanr(SCORES, RATINGS).statistic, abs=1e-12)
    assert found["kendall"].value == pytest.approx(stats.kendalltau(SCORES, RATINGS).statistic, abs=1e-12)
    assert found["plcc"].value == pytest.approx(stats.pearsonr(SCORES, RATINGS).statistic, abs=1e-12)
    for coefficient in found.values():
        assert coefficient.low is not None and coefficient.high is not None
        assert -1 <= coefficient.low <= coefficient.high <= 1
        assert (coefficient.level, coefficient.resamples, coefficient.seed) == (0.9, 200, 7)


def test_intervals_are_seeded() -> None:
    first, again = coefficients(SCORES, RATINGS, BOOT), coefficients(SCORES, RATINGS, BOOT)
    other = coefficients(SCORES, RATINGS, BootstrapSpec(resamples=200, level=0.9, seed=8))
    assert first == again
    assert any((first[n].low, first[n].high) != (other[n].low, other[n].high) for n in first)
    assert coefficients(SCORES, RATINGS, BootstrapSpec())["spearman"].resamples == 1000  # the default


def test_monotone_ratings_with_noise_agree_nearly_perfectly() -> None:
    rng = np.random.default_rng(0)
    scores = rng.uniform(0, 1, 200)
    ratings = np.exp(3 * scores) + rng.normal(0, 0.01, 200)
    found = coefficients(list(scores), list(ratings), BOOT)
    assert found["spearman"].value > 0.99 and found["spearman"].low is not None and found["spearman"].low > 0.98
    assert found["kendall"].value > 0.9 and 0.8 < found["plcc"].value < 1


@pytest.mark.parametrize(("scores", "ratings", "expected"), [
    ([0.1, 0.2], [1.0, 2.0], "flicker vs overall: 2 video(s) with both a score and a rating; the agreement needs "
                             "at least 3"),
    ([0.1, 0.2, 0.3], [4.0, 4.0, 4.0], "the ratings of 'overall' are all 4: no agreement can be measured"),
    ([0.5, 0.5, 0.5], [1.0, 2.0, 3.0], "the scores of 'flicker' are all 0.5: no agreement can be measured"),
])
def test_too_few_or_constant_inputs_are_errors(scores: list[float], ratings: list[float], expected: str) -> None:
    with pytest.raises(AgreementError) as info:
        coefficients(scores, ratings, BOOT, "flicker", "overall")
    assert str(info.value) == expected


def test_a_lower_is_better_metric_is_negated() -> None:
    spec = AgreementSpec("overall")
    per_video = {f"v{i}.mp4": s for i, s in enumerate(SCORES)}
    higher = agreement_record("m", spec, per_video, videos(RATINGS), True, BOOT)
    lower = agreement_record("m", spec, per_video, videos(RATINGS), False, BOOT)
    assert lower["direction"] == "lower is better (negated)" and higher["direction"] == "higher is better"
    for name in ("spearman", "kendall", "plcc"):
        assert lower["coefficients"][name]["value"] == pytest.approx(-higher["coefficients"][name]["value"])
    assert [p["score"] for p in lower["points"]] == SCORES  # the metric's own scores, as reported


def test_outliers_compare_normalised_ranks() -> None:
    # ranks/(n-1): scores 0, .25, .5, .75, 1; ratings 1, .25, .5, .75, 0 -> gaps 1, 0, 0, 0, 1
    assert outliers([1, 2, 3, 4, 5], [5, 2, 3, 4, 1]) == [True, False, False, False, True]
    assert outliers([1, 2, 3, 4, 5], [2, 1, 3, 4, 5]) == [False] * 5  # gaps of 0.25


def test_model_level_ranks_kendall_and_pairwise_accuracy() -> None:
    scores = [0.9, 0.7, 0.5, 0.6, 0.1, 0.3]
    ratings = [5.0, 4.0, 2.0, 4.0, 3.0, 3.0]
    found = model_level(scores, ratings, ["a", "a", "b", "b", "c", "c"], "model")
    # means: a (0.8, 4.5), b (0.55, 3), c (0.2, 3): ratings tie b and c, scores do not
    assert [(row["group"], row["n"], row["rank_score"], row["rank_rating"]) for row in found["table"]] == [
        ("a", 2, 1.0, 1.0), ("b", 2, 2.0, 2.5), ("c", 2, 3.0, 2.5)]
    assert found["table"][0]["mean_score"] == pytest.approx(0.8)
    assert found["kendall"] == pytest.approx(stats.kendalltau([0.8, 0.55, 0.2], [4.5, 3, 3]).statistic)
    assert found["pairwise_accuracy"] == pytest.approx(2 / 3)  # (a,b) and (a,c) agree; (b,c) is tied in ratings
    single = model_level(scores, ratings, ["a"] * 6, "model")
    assert single["kendall"] is None and single["pairwise_accuracy"] is None


def test_record_schema_and_gate_message() -> None:
    spec = AgreementSpec("overall", min_spearman=0.99, group_by="model")
    per_video = {f"v{i}.mp4": s for i, s in enumerate(SCORES)}
    found = agreement_record("flicker", spec, per_video, videos(RATINGS, list("aabbccc")), True, BOOT)
    assert set(found) == {"ratings", "n", "direction", "coefficients", "gate", "verdict", "message", "points",
                          "models"}
    assert found["n"] == 7 and found["gate"] == {"min_spearman": 0.99} and found["verdict"] == "fail"
    spearman = found["coefficients"]["spearman"]
    assert found["message"] == (f"flicker vs overall: spearman {spearman['value']:.3g} [{spearman['low']:.3g}, "
                                f"{spearman['high']:.3g}] (n 7), expected >= 0.99")
    assert found["points"][0] == {"video": "v0.mp4", "score": 0.1, "rating": 1.0, "outlier": False}
    assert found["models"]["group_by"] == "model" and len(found["models"]["table"]) == 3
    json.dumps(found, allow_nan=False)
    interval = agreement_record("flicker", AgreementSpec("overall", min_spearman=spearman["high"] - 1e-9,
                                                         gate="interval"), per_video, videos(RATINGS), True, BOOT)
    assert interval["verdict"] == "pass"  # the interval's high end reaches the minimum


# --- ratings on videos and the suite's agreement key ------------------------------------------------------------


ENTRIES = [{"video_path_pd": f"clip_{i}.mp4", "prompt_gt": "p", "id": i, "technical_quality": q,
            "element_presentence": 3, "model": m} for i, (q, m) in enumerate([(4, "x"), (2, "y"), (5, "x")])]


@pytest.fixture
def bench(tmp_path: Path) -> Path:
    (tmp_path / "ann.json").write_text(json.dumps({"data_list": ENTRIES}))
    return tmp_path


def load(folder: Path, check: str, sets: str = "  bench: {annotations: ann.json}\n") -> Suite:
    path = folder / "suite.yaml"
    path.write_text(f"video_sets:\n{sets}checks:\n{check}")
    return load_suite(path, MetricRegistry())


def error_of(folder: Path, check: str, sets: str = "  bench: {annotations: ann.json}\n") -> SuiteError:
    with pytest.raises(SuiteError) as info:
        load(folder, check, sets)
    return info.value


def test_annotation_numbers_are_ratings_and_texts_labels(bench: Path) -> None:
    suite = load(bench, "  - {metric: flicker, set: bench, agreement: {ratings: technical_quality, group_by: model,"
                        " min_spearman: 0.3}}\n")
    video = suite.sets["bench"].videos[0]
    assert dict(video.ratings) == {"technical_quality": 4.0, "element_presentence": 3.0}  # not 'id'
    assert dict(video.labels) == {"model": "x"}
    assert suite.checks[0].agreement == AgreementSpec("technical_quality", 0.3, None, None, "model", "point")


@pytest.mark.parametrize(("agreement", "line", "expected"), [
    ("{ratings: element_presence}", 6, "check 'flicker': agreement: no video of set 'bench' has a rating "
                                       "'element_presence'; did you mean 'element_presentence'?"),
    ("{ratings: overall, min_spearman: 1.5}", 6, "agreement: no video of set 'bench' has a rating 'overall'; "
                                                 "its ratings: element_presentence, technical_quality"),
    ("{ratings: technical_quality, min_spearman: 1.5}", 6, "check 'flicker': agreement: 'min_spearman' must be "
                                                           "between -1 and 1 (a correlation), got 1.5"),
    ("{ratings: technical_quality, min_plcc: .nan}", 6, "'min_plcc' must be a finite number, got nan"),
    ("{ratings: technical_quality, min_spearmann: 0.3}", 6, "check 'flicker': agreement: unknown key "
                                                            "'min_spearmann'; did you mean 'min_spearman'?"),
    ("{ratings: technical_quality, gate: paired}", 6, "'gate' must be 'point' or 'interval', got 'paired'"),
    ("{ratings: technical_quality, group_by: modle}", 6, "has a label 'modle'; did you mean 'model'?"),
])
def test_agreement_errors_are_located(bench: Path, agreement: str, line: int, expected: str) -> None:
    error = error_of(bench, f"  - metric: flicker\n    set: bench\n    agreement: {agreement}\n")
    assert error.line == line and expected in str(error)


def test_a_set_level_metric_cannot_measure_agreement(bench: Path) -> None:
    error = error_of(bench, "  - metric: fid\n    reference: bench\n    candidate: bench\n"
                            "    agreement: {ratings: technical_quality}\n")
    assert error.line == 7
    assert ("check 'fid': 'agreement' compares each video's score with its rating, but metric 'fid' gives one "
            "score for the whole set; use a per-video metric") in str(error)


def test_videos_without_the_rating_error_or_are_skipped(tmp_path: Path) -> None:
    entries = [dict(ENTRIES[0]), {"video_path_pd": "clip_9.mp4", "overall": 1}, dict(ENTRIES[2])]
    (tmp_path / "ann.json").write_text(json.dumps({"data_list": entries}))
    check = "  - metric: flicker\n    set: bench\n    agreement: {ratings: technical_quality}\n"
    error = error_of(tmp_path, check)
    assert error.line == 6 and ("agreement: 1 video(s) of set 'bench' have no rating 'technical_quality': "
                                "clip_9.mp4; rate them, or set 'on_bad_video: skip' to leave them out") in str(error)
    suite = load(tmp_path, check + "    on_bad_video: skip\n")
    assert [(s.label, s.reason) for s in suite.checks[0].without_rating] == [
        ("clip_9.mp4", "no rating 'technical_quality'")]


def test_ratings_from_a_csv_manifest(tmp_path: Path) -> None:
    make_videos(tmp_path, count=3)
    (tmp_path / "ratings.csv").write_text("video,overall,model,note\nclip_0.mp4,4,x,ok\nclip_1,2.5,y,\n"
                                          "videos/gen/clip_2.mp4,1,x,3\nnope.mp4,5,z,\n")
    suite = load(tmp_path, "  - {metric: flicker, set: gen, agreement: {ratings: overall, group_by: model}}\n",
                 "  gen: {folder: videos/gen, ratings: ratings.csv}\n")
    found = {v.path.name: (dict(v.ratings), dict(v.labels)) for v in suite.sets["gen"].videos}
    assert found == {"clip_0.mp4": ({"overall": 4.0}, {"model": "x", "note": "ok"}),
                     "clip_1.mp4": ({"overall": 2.5}, {"model": "y"}),
                     "clip_2.mp4": ({"overall": 1.0}, {"model": "x", "note": "3"})}  # 'note' is not all numbers


def test_a_ratings_manifest_naming_no_video_is_an_error(tmp_path: Path) -> None:
    make_videos(tmp_path)
    (tmp_path / "ratings.jsonl").write_text('{"path": "other.mp4", "overall": 3}\n')
    error = error_of(tmp_path, "  - {metric: flicker, set: gen}\n",
                     "  gen:\n    folder: videos/gen\n    ratings: ratings.jsonl\n")
    assert error.line == 4 and "ratings file " in str(error) and "names no video of set 'gen'" in str(error)
    (tmp_path / "ratings.json").write_text("{}")
    error = error_of(tmp_path, "  - {metric: flicker, set: gen}\n",
                     "  gen: {folder: videos/gen, ratings: ratings.json}\n")
    assert "'ratings' must name a .csv or .jsonl file, got 'ratings.json'" in str(error)


# --- end to end -------------------------------------------------------------------------------------------------


def test_a_missed_agreement_fails_the_check_and_warn_warns(tmp_path: Path, pytester: pytest.Pytester) -> None:
    make_videos(pytester.path, count=4)
    (pytester.path / "ratings.csv").write_text("path,overall\n" + "".join(f"clip_{i}.mp4,{i % 3}\n"
                                                                            for i in range(4)))
    suite = """\
protocol: {frames: 8}
video_sets:
  gen: {folder: videos/gen, ratings: ratings.csv}
checks:
  - {name: strict, metric: flicker, set: gen, agreement: {ratings: overall, min_kendall: 1.0}}
  - {name: lenient, metric: flicker, set: gen, warn: true, agreement: {ratings: overall, min_kendall: 1.0}}
"""
    pytester.makefile(".yaml", aigve_agree=suite)
    result = pytester.runpytest_subprocess("--aigve-report-dir", "out")
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(["*flicker vs overall: kendall * (n 4), expected >= 1*",
                                 "*AigveGateWarning: aigve_agree.yaml::lenient: *expected >= 1*"])
    records = {r["check"]: r for r in json.loads((pytester.path / "out" / "aigve-results.json").read_text())["records"]}
    assert records["strict"]["outcome"] == "failed" and records["lenient"]["outcome"] == "warned"
    assert records["strict"]["agreement"]["verdict"] == "fail" and records["strict"]["gate"]["verdict"] == "fail"


@pytest.mark.shared_data
def test_agreement_on_the_aigve_bench_toy_set(shared_data: Path, pytester: pytest.Pytester) -> None:
    bench = shared_data / "aigve_bench_toy"
    pytester.makefile(".yaml", aigve_bench=f"""\
protocol: {{frames: 5, resize: [192, 340]}}
video_sets:
  bench: {{annotations: {bench / 'annotations' / 'train.json'}, video_dir: {bench / 'videos'}, role: generated}}
checks:
  - name: flicker-vs-technical
    metric: flicker
    set: bench
    on_bad_video: skip
    agreement: {{ratings: technical_quality, min_spearman: -1, group_by: model}}
""")
    result = pytester.runpytest_subprocess("--aigve-report-dir", "out", "--junitxml", "out/junit.xml")
    result.assert_outcomes(passed=1)
    record = json.loads((pytester.path / "out" / "aigve-results.json").read_text())["records"][0]
    agreement = record["agreement"]
    assert agreement["ratings"] == "technical_quality" and agreement["n"] == 6 and agreement["verdict"] == "pass"
    assert len(record["videos_skipped"]) == 4 and {p["video"] for p in agreement["points"]} == set(record["per_video"])
    points = agreement["points"]
    scores, ratings = [p["score"] for p in points], [p["rating"] for p in points]
    assert agreement["coefficients"]["spearman"]["value"] == pytest.approx(stats.spearmanr(scores, ratings).statistic)
    assert agreement["models"]["table"][0]["group"] == "cogvideox" and agreement["models"]["kendall"] is None
    case = next(ET.parse(pytester.path / "out" / "junit.xml").getroot().iter("testcase"))
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props["aigve.agreement.ratings"] == "technical_quality" and props["aigve.agreement.n"] == "6"
    assert float(props["aigve.agreement.spearman"]) == agreement["coefficients"]["spearman"]["value"]
    assert {"aigve.agreement.kendall", "aigve.agreement.plcc"} <= set(props)
    assert props["aigve.agreement.verdict"] == "pass"


def test_the_example_suite_loads(shared_data: Path) -> None:
    suite = load_suite(EXAMPLES / "agreement.yaml", MetricRegistry())
    assert suite.checks[0].agreement == AgreementSpec("technical_quality", group_by="model")
