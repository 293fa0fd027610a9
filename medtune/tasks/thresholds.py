"""Decision thresholds fitted on the dev split: one label's probability against a cut.

``tune_positive_threshold`` is the single-label, two-label case (``model.decision: dev_threshold``):
predict the positive label when its probability reaches the cut that maximises that label's F1 on dev.
It serves an imbalanced label (ADE is a fifth of the sentences), and a model whose probabilities have
shifted as a whole but still rank the documents, as DP-SGD's clipped, noised updates do (docs/privacy.md).
The candidates are every distinct dev score, not a fixed grid: such a model's positive scores may all lie
under 0.05. The cut is the midpoint between the lowest score predicted positive and the next lower
distinct score, so that a test document scored between the two goes the way of its nearer dev neighbour.
"""

from __future__ import annotations

import numpy as np


def tune_positive_threshold(scores: np.ndarray, gold: np.ndarray) -> tuple[float, float]:
    """The cut on ``scores`` (probability of the positive label, one per document) that maximises F1
    of ``gold`` (bool, same length), and that F1. Ties: the cut nearest 0.5. With no positive in
    ``gold`` the F1 is 0 at every cut and 0.5 is returned."""
    scores = np.asarray(scores, dtype=np.float64)
    gold = np.asarray(gold, dtype=bool)
    if scores.shape != gold.shape or scores.ndim != 1:
        raise ValueError(f"scores {scores.shape} and gold {gold.shape} must be two vectors of one length")
    if not gold.any() or not len(scores):
        return 0.5, 0.0
    order = np.argsort(-scores, kind="stable")
    s, g = scores[order], gold[order]
    tp = np.cumsum(g)
    k = np.arange(1, len(s) + 1)  # predicted positive: the top k
    last = np.r_[s[1:] != s[:-1], True]  # a cut can only fall between distinct scores
    f1 = np.where(last, 2 * tp / (k + g.sum()), -1.0)
    cuts = (s + np.r_[s[1:], s[-1]]) / 2  # the last cut (everything positive) is the lowest score itself
    best = f1.max()
    candidates = np.flatnonzero(f1 >= best - 1e-12)
    pick = candidates[np.argmin(np.abs(cuts[candidates] - 0.5))]
    return float(cuts[pick]), float(best)
