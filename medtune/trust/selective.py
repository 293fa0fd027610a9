"""Selective prediction: keep the most confident predictions, send the rest to a human.

``risk_coverage`` gives the precision (and, for span and relation tasks, recall and F1 against every
gold item) of the predictions kept at each coverage; ``threshold_for_precision`` the lowest score
threshold whose kept predictions reach a target precision; ``abstention`` what a given
``abstain_below`` threshold keeps.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from medtune.trust.items import ScoredItems

COVERAGES = (1.0, 0.95, 0.9, 0.8)


def _kept_row(correct_kept: np.ndarray, total: int, gold_total: int | None, threshold: float | None) -> dict[str, Any]:
    kept = int(len(correct_kept))
    tp = int(correct_kept.sum())
    row: dict[str, Any] = {"coverage": kept / total if total else 0.0, "kept": kept,
                           "threshold": None if threshold is None else round(float(threshold), 6),
                           "precision": tp / kept if kept else 0.0}
    if gold_total is not None:
        recall = tp / gold_total if gold_total else 0.0
        p = row["precision"]
        row["recall"] = recall
        row["f1"] = 2 * p * recall / (p + recall) if p + recall else 0.0
    return row


def risk_coverage(items: ScoredItems, coverages: tuple[float, ...] = COVERAGES) -> list[dict[str, Any]]:
    """One row per coverage: the share of predictions kept (the most confident first), the score of
    the last one kept (the threshold), and the precision (accuracy) of those kept."""
    conf, right = items.decisions()
    order = np.argsort(-conf, kind="stable")
    n = len(conf)
    rows = []
    for c in coverages:
        k = min(n, max(0, math.ceil(c * n - 1e-9)))
        rows.append({"target_coverage": c, **_kept_row(right[order[:k]], n, items.gold_total,
                                                        conf[order[k - 1]] if k else None)})
    return rows


def threshold_for_precision(items: ScoredItems, target: float) -> dict[str, Any] | None:
    """The lowest threshold ``t`` such that the predictions scoring ``>= t`` have precision >= ``target``
    (the most predictions kept); None when no threshold reaches it."""
    conf, right = items.decisions()
    if not len(conf):
        return None
    order = np.argsort(-conf, kind="stable")
    sorted_conf, sorted_right = conf[order], right[order]
    hits = np.cumsum(sorted_right)
    kept = np.arange(1, len(conf) + 1)
    precision = hits / kept
    # a threshold keeps every prediction with the same score: only the last of a run of ties counts
    boundary = np.append(sorted_conf[1:] < sorted_conf[:-1], True)
    ok = np.nonzero(boundary & (precision >= target - 1e-12))[0]
    if not len(ok):
        return None
    k = int(ok[-1]) + 1
    return {"target_precision": target, **_kept_row(sorted_right[:k], len(conf), items.gold_total, sorted_conf[k - 1])}


def abstention(items: ScoredItems, threshold: float) -> dict[str, Any]:
    """What ``abstain_below: threshold`` does: predictions under it are abstained (marked, kept in the
    output); the figures of the others."""
    conf, right = items.decisions()
    keep = conf >= threshold
    row = _kept_row(right[keep], len(conf), items.gold_total, threshold)
    row["abstained"] = int((~keep).sum())
    row["abstained_right"] = int(right[~keep].sum())
    return row
