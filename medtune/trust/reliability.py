"""How well scores match accuracy: expected calibration error over equal-mass bins, maximum
calibration error, Brier score, and the reliability diagram (PNG; needs ``medtune[plots]``).

Equal-mass bins hold the same number of predictions each (sorted by score), so that a model whose
scores crowd near 1.0 is not judged on a few almost empty bins (Nixon et al. 2019).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from medtune.errors import MissingExtraError
from medtune.fileutils import atomic_write

DEFAULT_BINS = 15


def equal_mass_bins(scores: np.ndarray, correct: np.ndarray, bins: int = DEFAULT_BINS) -> list[dict[str, float]]:
    """Bins of (about) equal size over the sorted scores: mean score, accuracy and count of each."""
    scores = np.asarray(scores, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    if not len(scores):
        return []
    order = np.argsort(scores, kind="stable")
    ranked = scores[order]
    # bin by rank; equal scores share the bin of the first of them (a tie is never split)
    which = np.searchsorted(ranked, ranked, side="left") * min(bins, len(scores)) // len(scores)
    out = []
    for k in np.unique(which):
        part = order[which == k]
        out.append({"confidence": float(scores[part].mean()), "accuracy": float(correct[part].mean()),
                    "count": int(len(part)), "low": float(scores[part].min()), "high": float(scores[part].max())})
    return out


def calibration_errors(scores: Any, correct: Any, bins: int = DEFAULT_BINS) -> dict[str, Any]:
    """``ece`` (weighted mean |accuracy - confidence| over equal-mass bins), ``mce`` (its largest bin),
    ``brier`` (mean squared error of the scores), ``n`` and the bins themselves."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    correct = np.asarray(correct, dtype=np.float64).reshape(-1)
    table = equal_mass_bins(scores, correct, bins)
    n = len(scores)
    if not n:
        return {"ece": None, "mce": None, "brier": None, "n": 0, "bins": []}
    gaps = [abs(b["accuracy"] - b["confidence"]) for b in table]
    return {
        "ece": float(sum(g * b["count"] for g, b in zip(gaps, table)) / n),
        "mce": float(max(gaps)),
        "brier": float(np.mean((scores - correct) ** 2)),
        "mean_score": float(scores.mean()),
        "accuracy": float(correct.mean()),
        "n": n,
        "bins": table,
    }


def ece(scores: Any, correct: Any, bins: int = DEFAULT_BINS) -> float:
    return calibration_errors(scores, correct, bins)["ece"] or 0.0


def reliability_diagram(curves: dict[str, dict[str, Any]], path: str | Path, *, title: str = "") -> Path:
    """Write a reliability diagram (accuracy against mean score per bin, one curve per entry of
    ``curves``: name -> ``calibration_errors`` result) as a PNG. Only figures, never text of a note."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        from matplotlib import pyplot as plt
    except ImportError:
        raise MissingExtraError("reliability diagrams (--plots)", "plots") from None
    path = Path(path)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(5.2, 6.4), height_ratios=(3, 1), sharex=True)
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfect calibration")
    for name, result in curves.items():
        table = result.get("bins") or []
        if not table:
            continue
        xs = [b["confidence"] for b in table]
        ys = [b["accuracy"] for b in table]
        top.plot(xs, ys, marker="o", linewidth=1.5, label=f"{name} (ECE {result['ece']:.3f})")
        bottom.hist([b["confidence"] for b in table], bins=20, range=(0, 1),
                    weights=[b["count"] for b in table], alpha=0.5, label=name)
    top.set_ylabel("accuracy of the predictions in the bin")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.legend(loc="upper left", fontsize=8)
    top.set_title(title or "reliability (equal-mass bins)", fontsize=10)
    bottom.set_xlabel("mean score in the bin")
    bottom.set_ylabel("predictions")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, mode="wb") as handle:
        fig.savefig(handle, format="png", dpi=110)
    plt.close(fig)
    return path
