"""Confidence intervals by bootstrap over documents, and the paired bootstrap test of two systems.

Documents are resampled with replacement (seeded: the same seed gives the same interval), so that the
mentions of one abstract, which are not independent, move together. Headline figures are F1 (and
precision, recall) of summed per-document counts ``(tp, fp, fn)``: a resample is a sum, so 1,000
resamples of thousands of documents take milliseconds.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from medtune.errors import ConfigError

DEFAULT_RESAMPLES = 1000
CHUNK = 200


def prf(counts: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall and F1 of summed counts ``(..., 3)`` (tp, fp, fn); 0 where undefined."""
    tp, fp, fn = (np.asarray(counts, dtype=np.float64)[..., k] for k in range(3))
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        r = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
        f = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
    return {"precision": p, "recall": r, "f1": f}


def _indices(n: int, n_resamples: int, seed: int):
    rng = np.random.default_rng(seed)
    done = 0
    while done < n_resamples:
        size = min(CHUNK, n_resamples - done)
        yield rng.integers(0, n, size=(size, n))
        done += size


def _interval(values: np.ndarray, level: float) -> tuple[float, float]:
    alpha = (1.0 - level) / 2
    return float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))


def _check(n_resamples: int, level: float) -> None:
    if n_resamples < 10:
        raise ConfigError(f"--resamples must be 10 or more, not {n_resamples}", fix="use 1000 (the default)")
    if not 0 < level < 1:
        raise ConfigError(f"the confidence level must lie between 0 and 1, not {level}", fix="use 0.95")


def bootstrap_counts(counts: Any, *, n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                     level: float = 0.95) -> dict[str, dict[str, float]]:
    """Percentile intervals of precision, recall and F1 from per-document counts ``(n_docs, 3)``."""
    _check(n_resamples, level)
    counts = np.asarray(counts, dtype=np.int64).reshape(-1, 3)
    point = prf(counts.sum(axis=0))
    if not len(counts):
        return {k: {"value": float(v), "low": float(v), "high": float(v)} for k, v in point.items()}
    samples: dict[str, list[np.ndarray]] = {k: [] for k in point}
    for idx in _indices(len(counts), n_resamples, seed):
        sums = counts[idx].sum(axis=1)
        for k, v in prf(sums).items():
            samples[k].append(v)
    out = {}
    for k, v in point.items():
        low, high = _interval(np.concatenate(samples[k]), level)
        out[k] = {"value": float(v), "low": low, "high": high}
    return out


def bootstrap_statistic(n_docs: int, statistic: Callable[[np.ndarray], float], *,
                        n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0, level: float = 0.95,
                        bias_corrected: bool = False) -> dict[str, float]:
    """Percentile interval of any ``statistic(document indices)`` (e.g. ECE of their predictions).

    ``bias_corrected`` is for a statistic that resampling itself inflates or deflates. ECE is one: a
    resample repeats some documents and drops others, so its bins hold fewer distinct predictions and
    their accuracy is noisier, and noise only ever adds to ``|accuracy - confidence|``. Near a well
    calibrated model the whole percentile interval can then lie above the figure it is meant to
    bracket. The bootstrap estimate of that bias (the mean of the resampled values minus the value;
    Efron and Tibshirani 1993, ch. 10) is subtracted from both ends (the lower end is kept at 0 or
    more for a statistic that cannot be negative), and returned as ``bias``.
    """
    _check(n_resamples, level)
    value = float(statistic(np.arange(n_docs)))
    if n_docs == 0:
        return {"value": value, "low": value, "high": value, **({"bias": 0.0} if bias_corrected else {})}
    values = np.array([float(statistic(row)) for idx in _indices(n_docs, n_resamples, seed) for row in idx])
    low, high = _interval(values, level)
    if not bias_corrected:
        return {"value": value, "low": low, "high": high}
    bias = float(values.mean() - value)
    floor = 0.0 if values.min() >= 0 and value >= 0 else -np.inf
    return {"value": value, "low": float(max(low - bias, floor)), "high": high - bias, "bias": bias}


def _difference_test(deltas: list[np.ndarray], delta: float, level: float) -> tuple[float, float, float]:
    """Percentile interval of resampled differences and the two-sided p-value of the observed ``delta``:
    the share of resampled differences at least as far from it as it is from 0 (the bootstrap distribution
    shifted to the null hypothesis, Berg-Kirkpatrick et al. 2012)."""
    d = np.concatenate(deltas) if deltas else np.zeros(1)
    low, high = _interval(d, level)
    p_value = float((np.abs(d - delta) >= abs(delta) - 1e-12).mean()) if delta else 1.0
    return low, high, p_value


def paired_bootstrap(counts_a: Any, counts_b: Any, *, metric: str = "f1", n_resamples: int = DEFAULT_RESAMPLES,
                     seed: int = 0, level: float = 0.95) -> dict[str, Any]:
    """Is system A's figure different from B's on the same documents? Both are resampled with the
    same document indices; ``p_value`` is two-sided: the share of resampled differences at least as
    far from the observed one as the observed one is from 0 (the bootstrap distribution shifted to
    the null hypothesis, Berg-Kirkpatrick et al. 2012)."""
    _check(n_resamples, level)
    a = np.asarray(counts_a, dtype=np.int64).reshape(-1, 3)
    b = np.asarray(counts_b, dtype=np.int64).reshape(-1, 3)
    if a.shape != b.shape:
        raise ConfigError(f"the two evaluations have {len(a)} and {len(b)} documents",
                          fix="compare evaluations of the same documents (same --data and --split)")
    if metric not in ("f1", "precision", "recall"):
        raise ConfigError(f"unknown metric '{metric}' for the paired test", fix="use f1, precision or recall")
    value_a, value_b = float(prf(a.sum(axis=0))[metric]), float(prf(b.sum(axis=0))[metric])
    delta = value_a - value_b
    deltas = []
    for idx in _indices(len(a), n_resamples, seed) if len(a) else ():
        deltas.append(prf(a[idx].sum(axis=1))[metric] - prf(b[idx].sum(axis=1))[metric])
    low, high, p_value = _difference_test(deltas, delta, level)
    return {"metric": metric, "a": value_a, "b": value_b, "difference": delta, "low": low, "high": high,
            "level": level, "p_value": p_value, "resamples": n_resamples, "seed": seed, "documents": int(len(a))}


def paired_bootstrap_means(values_a: Any, values_b: Any, *, n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                           level: float = 0.95) -> dict[str, Any]:
    """:func:`paired_bootstrap` for a figure that is a mean of per-item values (a QA system's token F1
    per question, a retriever's recall@1 per question): A's and B's values of the same items are
    resampled together, the difference of their means gets a percentile interval and a two-sided
    ``p_value`` (the resampled differences shifted to the null hypothesis)."""
    _check(n_resamples, level)
    a = np.asarray(values_a, dtype=np.float64).reshape(-1)
    b = np.asarray(values_b, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise ConfigError(f"the two systems have {len(a)} and {len(b)} values",
                          fix="compare the two systems on the same items, in the same order")
    value_a, value_b = (float(v.mean()) if len(v) else 0.0 for v in (a, b))
    delta = value_a - value_b
    diff = a - b
    deltas = [diff[idx].mean(axis=1) for idx in _indices(len(a), n_resamples, seed)] if len(a) else []
    low, high, p_value = _difference_test(deltas, delta, level)
    return {"metric": "mean", "a": value_a, "b": value_b, "difference": delta, "low": low, "high": high,
            "level": level, "p_value": p_value, "resamples": n_resamples, "seed": seed, "items": int(len(a))}
