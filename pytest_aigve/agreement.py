"""Agreement of a metric's per-video scores with human ratings: Spearman ρ, Kendall τ-b and Pearson (PLCC), each
with a seeded bootstrap interval over videos, points flagged as outliers, and the model-level comparison of group
means. Pure functions over numbers (SciPy); no pytest. The item stores `agreement_record`'s dict as
`ItemRecord.agreement` and gates on its verdict."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from itertools import combinations
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import stats

from .errors import MetricError

if TYPE_CHECKING:
    from .gate import BootstrapSpec, GateResult
    from .suite import AgreementSpec
    from .videos.sources import Video

DEFAULT_RESAMPLES = 1000  # per-video scores: cheap to resample
MIN_VIDEOS = 3
OUTLIER_RANK_GAP = 0.5  # |normalised rank of the score - normalised rank of the rating| from which a point stands out
Statistic = Callable[[np.ndarray, np.ndarray], float]


class AgreementError(MetricError):
    """The agreement cannot be measured (too few videos, constant scores or ratings)."""


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    return float(stats.spearmanr(x, y).statistic)


def _kendall(x: np.ndarray, y: np.ndarray) -> float:
    return float(stats.kendalltau(x, y).statistic)  # variant 'b': corrected for ties


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    return float(stats.pearsonr(x, y).statistic)


COEFFICIENTS: dict[str, Statistic] = {"spearman": _spearman, "kendall": _kendall, "plcc": _pearson}


@dataclass(frozen=True)
class Coefficient:
    value: float
    low: float | None  # the bootstrap percentile interval; None where no resample could be measured
    high: float | None
    level: float
    resamples: int
    seed: int

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)

    def describe(self, name: str) -> str:
        interval = "" if self.low is None or self.high is None else f" [{self.low:.3g}, {self.high:.3g}]"
        return f"{name} {self.value:.3g}{interval}"


def _check_measurable(scores: np.ndarray, ratings: np.ndarray, metric: str, rating: str) -> None:
    if len(scores) < MIN_VIDEOS:
        raise AgreementError(f"{metric} vs {rating}: {len(scores)} video(s) with both a score and a rating; the "
                             f"agreement needs at least {MIN_VIDEOS}")
    for name, values in ((f"ratings of '{rating}'", ratings), (f"scores of '{metric}'", scores)):
        if np.all(values == values[0]):
            raise AgreementError(f"the {name} are all {values[0]:g}: no agreement can be measured")


def coefficients(scores: Sequence[float], ratings: Sequence[float], bootstrap: BootstrapSpec,
                 metric: str = "scores", rating: str = "ratings") -> dict[str, Coefficient]:
    """Spearman, Kendall τ-b and Pearson of scores (already oriented: higher is better) against ratings, each with
    a percentile interval from the same seeded resamples of the videos (resamples that are constant are left
    out)."""
    x, y = np.asarray(scores, dtype=np.float64), np.asarray(ratings, dtype=np.float64)
    _check_measurable(x, y, metric, rating)
    resamples = bootstrap.resamples or DEFAULT_RESAMPLES
    rng = np.random.default_rng(bootstrap.seed)
    draws: dict[str, list[float]] = {name: [] for name in COEFFICIENTS}
    with warnings.catch_warnings():  # a constant resample: NaN (left out), with SciPy's warning
        warnings.simplefilter("ignore")
        for _ in range(resamples):
            index = rng.integers(0, len(x), len(x))
            if np.all(x[index] == x[index[0]]) or np.all(y[index] == y[index[0]]):
                continue
            for name, statistic in COEFFICIENTS.items():
                draws[name].append(statistic(x[index], y[index]))
    tail = (1 - bootstrap.level) / 2 * 100
    found = {}
    for name, statistic in COEFFICIENTS.items():
        values = np.asarray(draws[name])
        values = values[np.isfinite(values)]
        low, high = (None, None) if not len(values) else (float(np.percentile(values, tail)),
                                                          float(np.percentile(values, 100 - tail)))
        found[name] = Coefficient(statistic(x, y), low, high, bootstrap.level, resamples, bootstrap.seed)
    return found


def outliers(scores: Sequence[float], ratings: Sequence[float]) -> list[bool]:
    """Points whose normalised ranks (rank / (n - 1), ties averaged) of score and of rating differ by 0.5 or more."""
    n = len(scores)
    if n < 2:
        return [False] * n
    rank_x = (stats.rankdata(scores) - 1) / (n - 1)
    rank_y = (stats.rankdata(ratings) - 1) / (n - 1)
    return [bool(gap >= OUTLIER_RANK_GAP) for gap in np.abs(rank_x - rank_y)]


def _none_if_nan(value: float) -> float | None:
    return None if not math.isfinite(value) else float(value)


def model_level(scores: Sequence[float], ratings: Sequence[float], groups: Sequence[str],
                group_by: str, sign: float = 1.0) -> dict[str, Any]:
    """Per group: mean score and mean rating and their ranks (1 = best, ties averaged); Kendall τ-b over the groups
    and the pairwise accuracy: the fraction of group pairs that scores and ratings order the same way (ties in
    both count as the same way). τ and accuracy are None with fewer than two groups. Scores come oriented (higher
    is better); `sign` (-1 for a negated metric) turns the table's mean scores back into the metric's own."""
    names = sorted(set(groups))
    members = {name: [i for i, group in enumerate(groups) if group == name] for name in names}
    mean_score = np.array([float(np.mean([scores[i] for i in members[name]])) for name in names])
    mean_rating = np.array([float(np.mean([ratings[i] for i in members[name]])) for name in names])
    rank_score, rank_rating = stats.rankdata(-mean_score), stats.rankdata(-mean_rating)
    table = [{"group": name, "n": len(members[name]), "mean_score": sign * float(mean_score[i]),
              "mean_rating": float(mean_rating[i]), "rank_score": float(rank_score[i]),
              "rank_rating": float(rank_rating[i])} for i, name in enumerate(names)]
    kendall: float | None = None
    accuracy: float | None = None
    if len(names) >= 2:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kendall = _none_if_nan(_kendall(mean_score, mean_rating))
        pairs = list(combinations(range(len(names)), 2))
        same = sum(np.sign(mean_score[i] - mean_score[j]) == np.sign(mean_rating[i] - mean_rating[j])
                   for i, j in pairs)
        accuracy = float(same) / len(pairs)
    return {"group_by": group_by, "table": table, "kendall": kendall, "pairwise_accuracy": accuracy}


def verdict(found: Mapping[str, Coefficient], minimums: Mapping[str, float], gate: str, n: int) -> list[str]:
    """The coefficients below their minimum (point: the value; interval: the interval's high end), described."""
    misses = []
    for name, minimum in minimums.items():
        coefficient = found[name]
        compared = coefficient.value if gate == "point" or coefficient.high is None else coefficient.high
        if compared < minimum:
            misses.append(f"{coefficient.describe(name)} (n {n}), expected >= {minimum:g}")
    return misses


def agreement_record(metric: str, spec: AgreementSpec, per_video: Mapping[str, float], videos: Sequence[Video],
                     higher_is_better: bool, bootstrap: BootstrapSpec) -> dict[str, Any]:
    """The JSON-safe agreement of one check (the `agreement` of its record): its per-video scores (by label) against
    the rating `spec.ratings` of the same videos; videos without a score or the rating are left out."""
    rated = {video.label: video for video in videos if spec.ratings in video.ratings}
    labels = [label for label in per_video if label in rated and math.isfinite(per_video[label])]
    sign = 1.0 if higher_is_better else -1.0
    scores = [sign * float(per_video[label]) for label in labels]
    ratings = [float(rated[label].ratings[spec.ratings]) for label in labels]
    found = coefficients(scores, ratings, bootstrap, metric, spec.ratings)
    misses = verdict(found, spec.minimums(), spec.gate, len(labels))
    described = ", ".join(c.describe(name) for name, c in found.items())
    head = f"{metric} vs {spec.ratings}: "
    message = head + ("; ".join(misses) if misses else f"{described} (n {len(labels)})")
    models = None
    if spec.group_by is not None:
        grouped = [i for i, label in enumerate(labels) if spec.group_by in rated[label].labels]
        models = model_level([scores[i] for i in grouped], [ratings[i] for i in grouped],
                             [rated[labels[i]].labels[spec.group_by] for i in grouped], spec.group_by, sign)
    flags = outliers(scores, ratings)
    return {
        "ratings": spec.ratings,
        "n": len(labels),
        "direction": "higher is better" if higher_is_better else "lower is better (negated)",
        "coefficients": {name: coefficient.to_dict() for name, coefficient in found.items()},
        "gate": {f"min_{name}": minimum for name, minimum in spec.minimums().items()},
        "verdict": "fail" if misses else "pass",
        "message": message,
        "points": [{"video": label, "score": float(per_video[label]), "rating": rating, "outlier": flag}
                   for label, rating, flag in zip(labels, ratings, flags, strict=True)],
        "models": models,
    }


def agreement_properties(agreement: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The JUnit properties of an agreement record."""
    found = agreement["coefficients"]
    return [("aigve.agreement.ratings", str(agreement["ratings"])),
            *[(f"aigve.agreement.{name}", repr(found[name]["value"])) for name in COEFFICIENTS],
            ("aigve.agreement.n", str(agreement["n"])), ("aigve.agreement.verdict", str(agreement["verdict"]))]


def apply_to_gate(gate: GateResult, agreement: Mapping[str, Any], warn_only: bool) -> None:
    """A missed agreement makes the check's verdict a failure (a warning for `warn: true`), its message added."""
    if agreement["verdict"] != "fail":
        return
    if gate.verdict != "fail":
        gate.verdict = "warn" if warn_only else "fail"
    gate.message = f"{gate.message}; {agreement['message']}" if gate.message else str(agreement["message"])
