"""Statistics over seeds, shaped like rliable: pure aggregates, interval machinery, comparisons.

Scores are ``array[num_seeds, num_tasks]`` (a 1-D array is one task). Every bootstrap resamples
seeds within each task (a stratified bootstrap: seeds are the unit, never the steps of one run) and
takes the numpy ``Generator`` explicitly, so a report built twice gives the same intervals.
(Agarwal et al., "Deep RL at the Edge of the Statistical Precipice", NeurIPS 2021.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

REPS = 2000
LEVEL = 0.95


def as_scores(scores: np.ndarray | list[float], name: str = "scores") -> np.ndarray:
    """Validate and return ``array[num_seeds, num_tasks]`` of finite floats."""
    array = np.asarray(scores, dtype=np.float64)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name}: expected array[num_seeds, num_tasks] with at least one seed, "
                         f"got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name}: scores must be finite (a failed run has no score: leave it out)")
    return array


class _Resamples(np.ndarray):
    """``[reps, num_seeds, num_tasks]`` built by :func:`bootstrap_ci` from validated scores."""


def _batch(scores: np.ndarray) -> np.ndarray:
    """Scores as given to an aggregate: validated ``[num_seeds, num_tasks]``, or a batch of resamples."""
    return np.asarray(scores) if isinstance(scores, _Resamples) else as_scores(scores)


def _value(result: np.ndarray) -> float | np.ndarray:
    return float(result) if np.ndim(result) == 0 else result


def mean(scores: np.ndarray) -> float | np.ndarray:
    return _value(np.mean(_batch(scores), axis=(-2, -1)))


def iqm(scores: np.ndarray) -> float | np.ndarray:
    """Interquartile mean over all runs and tasks: the mean of the middle 50 % (rliable's headline
    aggregate), cut as scipy.stats.trim_mean(·, 0.25) cuts."""
    scores = _batch(scores)
    flat = np.sort(scores.reshape(*scores.shape[:-2], -1), axis=-1)
    cut = int(0.25 * flat.shape[-1])
    return _value(flat[..., cut:flat.shape[-1] - cut].mean(axis=-1))


def _resample(scores: np.ndarray, rng: np.random.Generator, reps: int) -> np.ndarray:
    """``[reps, num_seeds, num_tasks]``: seeds drawn with replacement, independently within each task (the strata)."""
    picks = rng.integers(0, scores.shape[0], size=(reps, *scores.shape))
    return np.take_along_axis(scores[None], picks, axis=1).view(_Resamples)


def bootstrap_ci(statistic: Callable[..., float | np.ndarray], samples: tuple[np.ndarray, ...],
                 rng: np.random.Generator, reps: int = REPS, level: float = LEVEL) -> tuple[float, float]:
    """Percentile interval of ``statistic(*samples)``, every sample's seeds resampled independently.

    ``statistic`` is called once on the whole batch of resamples (arrays ``[reps, num_seeds, num_tasks]``)
    and returns one value per resample, as every aggregate here does.
    """
    if not 0 < level < 1:
        raise ValueError(f"level: expected a probability in (0, 1), got {level}")
    arrays = tuple(as_scores(s, f"sample {i}") for i, s in enumerate(samples))
    values = np.asarray(statistic(*(_resample(a, rng, reps) for a in arrays)))
    if values.shape != (reps,):
        raise ValueError(f"statistic: expected one value per resample, shape ({reps},), got {values.shape}")
    tail = (1 - level) / 2
    low, high = np.quantile(values, [tail, 1 - tail])
    return float(low), float(high)


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float
    seeds: int


def interval_estimates(score_dict: dict[str, np.ndarray], aggregate: Callable[[np.ndarray], float],
                       rng: np.random.Generator, reps: int = REPS, level: float = LEVEL) -> dict[str, Estimate]:
    """rliable's ``get_interval_estimates``: the aggregate and its stratified bootstrap interval, per name.

    Names are visited in sorted order so the generator's stream does not depend on dict order.
    """
    out = {}
    for name in sorted(score_dict):
        scores = as_scores(score_dict[name], name)
        low, high = bootstrap_ci(aggregate, (scores,), rng, reps, level)
        out[name] = Estimate(aggregate(scores), low, high, scores.shape[0])
    return out


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float | np.ndarray:
    """P(X > Y) + ½ P(X = Y) over all seed pairs, averaged over tasks (the Mann–Whitney statistic)."""
    x, y = _batch(x), _batch(y)
    if x.shape[-1] != y.shape[-1]:
        raise ValueError(f"x and y must cover the same tasks, got {x.shape[-1]} and {y.shape[-1]}")
    pairs_x, pairs_y = x[..., :, None, :], y[..., None, :, :]
    greater = (pairs_x > pairs_y).mean(axis=(-3, -2))
    ties = (pairs_x == pairs_y).mean(axis=(-3, -2))
    return _value(np.mean(greater + 0.5 * ties, axis=-1))


def mean_difference(x: np.ndarray, y: np.ndarray) -> float | np.ndarray:
    return mean(x) - mean(y)


@dataclass(frozen=True)
class Welch:
    t: float
    p: float


def welch_test(x: np.ndarray, y: np.ndarray) -> Welch | None:
    """Welch's unequal-variance t-test on the per-seed means; None where it does not apply
    (fewer than two seeds on a side, or no variance on either side)."""
    x, y = as_scores(x, "x").mean(axis=1), as_scores(y, "y").mean(axis=1)
    if len(x) < 2 or len(y) < 2 or (np.ptp(x) == 0 and np.ptp(y) == 0):
        return None
    result = scipy_stats.ttest_ind(x, y, equal_var=False)
    return Welch(float(result.statistic), float(result.pvalue))


@dataclass(frozen=True)
class EntropyFit:
    """R = −a·exp(H) + b (Cui et al., "The Entropy Mechanism of RL for Reasoning LMs", arXiv 2505.22617)."""

    a: float
    b: float
    r2: float
    points: int

    @property
    def ceiling(self) -> float:
        """Predicted performance when entropy is used up (H = 0): −a + b."""
        return self.b - self.a

    def predict(self, entropy: np.ndarray) -> np.ndarray:
        return -self.a * np.exp(entropy) + self.b


def entropy_fit(entropy: np.ndarray, performance: np.ndarray) -> EntropyFit | None:
    """Least squares fit (linear in a and b); None with fewer than 3 points or no spread in H."""
    h = np.asarray(entropy, dtype=np.float64).ravel()
    r = np.asarray(performance, dtype=np.float64).ravel()
    if h.shape != r.shape:
        raise ValueError(f"entropy and performance must pair up, got {h.shape} and {r.shape}")
    keep = np.isfinite(h) & np.isfinite(r)
    h, r = h[keep], r[keep]
    if h.size < 3 or np.ptp(h) == 0:
        return None
    design = np.column_stack([-np.exp(h), np.ones_like(h)])
    (a, b), *_ = np.linalg.lstsq(design, r, rcond=None)
    residual = r - design @ np.array([a, b])
    total = np.sum((r - r.mean()) ** 2)
    r2 = 1 - np.sum(residual**2) / total if total > 0 else 1.0
    return EntropyFit(float(a), float(b), float(r2), int(h.size))


def bootstrap_band(curves: np.ndarray, rng: np.random.Generator, reps: int = REPS,
                   level: float = LEVEL) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean curve and its pointwise interval from ``array[num_seeds, num_steps]``: whole seeds are
    resampled (a seed's curve stays together), never single steps."""
    curves = as_scores(curves, "curves")
    means = curves[rng.integers(0, len(curves), size=(reps, len(curves)))].mean(axis=1)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail], axis=0)
    return curves.mean(axis=0), low, high
