"""The leakage check (泄露检查): how finely a model's release pins each feature.

A per-subject score leaves rounded or banded; the question is what a released value
tells about one bound feature of the subject it belongs to. For each subject of a
sample of the department's rows, the check finds every value of the feature (on a grid
over the feature's declared bounds) that, together with the other features of some
real subject (a set of background rows from the same sample, and the subject's own),
the model maps to the same released value; the subject's true value always counts.
What is left is the feature's *preimage*: the values an operator who knows the model,
the release and nothing else about the subject cannot tell apart. How much it leaves
unknown is measured as the share of the department's subjects (the rows read) whose
value of the feature lies in it: a preimage of 100 yuan around a common income holds
more people than one around a rare income, and "no properties" holds half the
register. A subject is *pinned* on a feature when that share is under the policy's
``min_share``; a release form passes when at most ``max_pinned_share`` of the sampled
subjects are pinned on any feature. The share for an operator who also knows the
subject's other features (the subject's own row as the only background) is reported
too, for the reviewer: it is smaller, and not what the bound is about.

A grid value the model maps to the release only between grid points counts as not
possible: a release finer than the grid reads as pinning (the safe side).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

SUBJECTS = 1_000
"""Sampled subjects whose widths are measured (fewer for a model of many features)."""
EVALUATIONS = 12_000_000
"""The most feature rows the check runs the model on; a model of many features gets
fewer subjects, never fewer than ``FEWEST``."""
FEWEST = 100
BACKGROUNDS = 100
"""Sampled rows whose other features are combined with each grid value."""
GRID = 500
"""Grid points over each feature's range: the finest width the check can see is
1/500 of the range."""
SEED = 20261201

Scorer = Callable[[np.ndarray], np.ndarray]
"""The model's declared output column for a matrix of feature rows."""


@dataclass(frozen=True)
class Release:
    """One form a per-subject score leaves in: rounded to ``digits``, or banded."""

    digits: int | None = None
    bands: dict[str, Any] | None = None

    def codes(self, scores: np.ndarray) -> np.ndarray:
        """The released value of each score, as a float code (non-numbers share one)."""
        if self.bands is not None:
            codes = np.searchsorted(self.bands["cuts"], scores, side="right").astype(np.float64)
            codes[~np.isfinite(scores)] = -1.0
            return codes
        assert self.digits is not None
        with np.errstate(over="ignore", invalid="ignore"):
            codes = np.round(scores, self.digits)
        return np.where(np.isfinite(codes), codes, np.inf)

    def as_dict(self) -> dict[str, Any]:
        return {"score_bands": self.bands} if self.bands is not None else {
            "score_digits": self.digits}  # fmt: skip


@dataclass(frozen=True)
class Bound:
    """The policy's numbers: a subject is pinned on a feature when the values the
    release leaves possible are held by less than ``min_share`` of the department's
    subjects; at most ``max_pinned_share`` of the sampled subjects may be."""

    min_share: float = 0.04
    max_pinned_share: float = 0.0

    @classmethod
    def from_policy(cls, data: dict[str, Any]) -> Bound:
        return cls(float(data.get("min_share", 0.04)), float(data.get("max_pinned_share", 0.0)))


@dataclass(frozen=True)
class Sample:
    """Rows of the department's data (one column per bound feature) and each feature's
    range: its declared bounds, or the sample's own extent."""

    subjects: np.ndarray
    backgrounds: np.ndarray
    ranges: list[tuple[float, float]]
    shares: list[np.ndarray]
    """Per feature: the share of the rows read whose value falls in each grid cell."""
    cells: list[np.ndarray]
    """Per feature: the grid cell of each subject's own value."""

    @classmethod
    def of(cls, rows: np.ndarray, declared: list[tuple[float, float] | None]) -> Sample:
        rng = np.random.default_rng(SEED)
        order = rng.permutation(len(rows))
        per_feature = EVALUATIONS // max(rows.shape[1], 1) // GRID - BACKGROUNDS
        subjects = rows[order[: max(FEWEST, min(SUBJECTS, per_feature))]]
        backgrounds = rows[rng.permutation(len(rows))[:BACKGROUNDS]]
        ranges = []
        for j, bounds in enumerate(declared):
            if bounds is None:
                low, high = float(rows[:, j].min()), float(rows[:, j].max())
                bounds = (low, high if high > low else low + 1.0)
            ranges.append((float(bounds[0]), float(bounds[1])))
        shares = [
            np.bincount(_cells(rows[:, j], *ranges[j]), minlength=GRID) / len(rows)
            for j in range(len(ranges))
        ]
        cells = [_cells(subjects[:, j], *ranges[j]) for j in range(len(ranges))]
        return cls(subjects, backgrounds, ranges, shares, cells)


def _cells(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """The grid cell of each value over [low, high] (the end cells hold whatever lies
    beyond the bounds)."""
    return np.clip(((values - low) / (high - low) * GRID).astype(np.int64), 0, GRID - 1)


def _possible(own: np.ndarray, backgrounds: np.ndarray, mine: np.ndarray) -> np.ndarray:
    """[subjects, GRID]: whether some background row, or the subject's own row, gives
    the subject's released value (``own``) at each grid value; ``backgrounds`` is
    [rows, GRID] and ``mine`` [subjects, GRID] of released values."""
    _, ids = np.unique(np.concatenate([own, backgrounds.ravel()]), return_inverse=True)
    width = int(ids.max()) + 1
    columns = np.arange(backgrounds.shape[1])
    # one key per (grid column, released value): a membership test over every column at once
    asked = columns[None, :] * width + ids[: len(own), None]
    found = (columns[None, :] * width + ids[len(own) :].reshape(backgrounds.shape)).ravel()
    return (mine == own[:, None]) | np.isin(asked, found)


@dataclass(frozen=True)
class Probe:
    """The model's raw output over each feature's grid: computed once, judged at every
    release form tried."""

    sample: Sample
    own: np.ndarray
    grids: list[np.ndarray]
    """Per feature: [backgrounds, GRID] outputs."""
    mine: list[np.ndarray]
    """Per feature: [subjects, GRID] outputs, each subject's own other features."""

    @classmethod
    def run(cls, score: Scorer, sample: Sample) -> Probe:
        grids, mine = [], []
        for j, (low, high) in enumerate(sample.ranges):
            values = low + (np.arange(GRID) + 0.5) * (high - low) / GRID
            grids.append(_over(score, sample.backgrounds, j, values))
            mine.append(_over(score, sample.subjects, j, values))
        return cls(sample, score(sample.subjects), grids, mine)

    def judge(self, release: Release, bound: Bound, names: list[str]) -> dict[str, Any]:
        """The report of one release form: per feature, the widths; and whether it passes."""
        own = release.codes(self.own)
        features = []
        for j, name in enumerate(names):
            low, high = self.sample.ranges[j]
            span = high - low
            mine = release.codes(self.mine[j])
            possible = _possible(own, release.codes(self.grids[j]), mine)
            # the subject's own value is possible, whatever the grid's resolution
            possible[np.arange(len(own)), self.sample.cells[j]] = True
            widths = possible.mean(axis=1) * span
            held = possible @ self.sample.shares[j]
            given = (mine == own[:, None]) @ self.sample.shares[j]
            pinned = float(np.mean(held < bound.min_share - 1e-12))
            features.append(
                {
                    "feature": name,
                    "range": [low, high],
                    "median_width": _round(float(np.median(widths))),
                    "smallest_width": _round(float(widths.min())),
                    "median_share_held": round(float(np.median(held)), 4),
                    "smallest_share_held": round(float(held.min()), 4),
                    "pinned_share": round(pinned, 4),
                    "given_others_median_share_held": round(float(np.median(given)), 4),
                    "passes": pinned <= bound.max_pinned_share,
                }
            )
        return {
            "release": release.as_dict(),
            "passes": all(f["passes"] for f in features),
            "features": features,
        }


def _over(score: Scorer, rows: np.ndarray, feature: int, values: np.ndarray) -> np.ndarray:
    probe = np.repeat(rows, len(values), axis=0)
    probe[:, feature] = np.tile(values, len(rows))
    return score(probe).reshape(len(rows), len(values))


def _round(value: float) -> float:
    return float(f"{value:.6g}")


COARSEST = 10
"""At most this many digits coarser than the policy's rounding are tried."""


def coarser(policy: Release, output_span: float) -> list[Release]:
    """The release forms to try, finest first: the policy's, then rounding one digit
    coarser each time until a rounding step covers the output's whole range."""
    if policy.bands is not None:
        return [policy]
    assert policy.digits is not None
    last = policy.digits
    if math.isfinite(output_span) and output_span > 0:
        last = max(-math.floor(math.log10(output_span)), policy.digits - COARSEST)
    return [Release(digits=d) for d in range(policy.digits, min(last, policy.digits) - 1, -1)]


def assess_score(
    probe: Probe, policy: Release, bound: Bound, names: list[str], output_span: float
) -> dict[str, Any]:
    """The score form: each release tried, finest first, until one passes; the finest
    that passes is what the approval obliges (None: no resolution is safe)."""
    tried = []
    for release in coarser(policy, output_span):
        report = probe.judge(release, bound, names)
        tried.append(report)
        if report["passes"]:
            break
    passing = tried[-1]["release"] if tried[-1]["passes"] else None
    return {"policy": policy.as_dict(), "obliged": passing, "tried": tried}
