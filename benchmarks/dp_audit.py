"""Membership-inference audit of a trained model: can its loss tell training documents from held-out ones?

A loss-threshold attack (Yeom et al. 2018): each document's loss under the model (the model's own loss on
that document's features: the mean over its windows' words, its chunks, its candidates) is the score, a
lower loss meaning "it was in the training set". Members are training documents of the model (its saved
``medtune_config.yaml`` names them, ``data.max_train_docs`` included), non-members the held-out split
(``--split``, default test); as many of each (``--max-docs``, drawn with a fixed seed). Reported: the
attack's AUC and advantage (max over thresholds of TPR - FPR), the TPR at 1 % FPR, and, for a model
trained with ``privacy:``, its epsilon and the advantage that (epsilon, delta)-DP allows at most,
(e^eps - 1 + 2 delta) / (e^eps + 1). The advantage should fall as epsilon falls.

An audit, not a proof: a weak attack finding nothing does not show privacy (the DP bound does, under its
assumptions), and a leak it finds is a lower bound. Results are merged into
``benchmarks/results/dp_audit.json`` (one entry per model directory, written atomically).

    python benchmarks/dp_audit.py runs/dp/ner-eps8 runs/dp/ner-non-private [--split test] [--max-docs 500]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import random
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _env import RESULTS  # noqa: E402, I001  (first: sets up paths and offline mode)

import numpy as np  # noqa: E402
import torch  # noqa: E402


def document_losses(model: torch.nn.Module, task: Any, docs: list, batch_size: int = 32) -> list[float]:
    """The model's loss on each document (its own features only), in eval mode; NaN when a document
    gives no training feature (e.g. a sentence without candidate pairs)."""
    model.eval()
    out = []
    with torch.inference_mode():
        for doc in docs:
            features = task.encode_for_training([doc])
            if not features:
                out.append(float("nan"))
                continue
            losses, weights = [], []
            for k in range(0, len(features), batch_size):
                chunk = features[k:k + batch_size]
                loss = model(**task.collate(chunk))["loss"]
                losses.append(float(loss))
                weights.append(len(chunk))
            out.append(float(np.average(losses, weights=weights)))
    return out


def attack(member_losses: list[float], other_losses: list[float]) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score, roc_curve

    scores = -np.concatenate([member_losses, other_losses])  # lower loss = more likely a member
    labels = np.concatenate([np.ones(len(member_losses)), np.zeros(len(other_losses))])
    fpr, tpr, _ = roc_curve(labels, scores)
    at_1 = float(np.max(tpr[fpr <= 0.01])) if np.any(fpr <= 0.01) else 0.0
    return {"auc": round(float(roc_auc_score(labels, scores)), 4), "advantage": round(float(np.max(tpr - fpr)), 4),
            "tpr_at_1pct_fpr": round(at_1, 4)}


def dp_advantage_bound(epsilon: float, delta: float) -> float:
    """The largest membership advantage an (epsilon, delta)-DP mechanism allows (balanced guess)."""
    e = math.exp(min(epsilon, 700.0))
    return min(1.0, (e - 1 + 2 * delta) / (e + 1))


def model_privacy(model_dir: Path) -> dict[str, Any] | None:
    """The ``privacy`` section of a model's ``metrics.json`` (epsilon spent, delta, unit, ...); None for a
    model trained without DP-SGD or without a metrics file."""
    metrics = Path(model_dir) / "metrics.json"
    return json.loads(metrics.read_text(encoding="utf-8")).get("privacy") if metrics.is_file() else None


def audit(model_dir: Path, split: str, max_docs: int, seed: int) -> dict[str, Any]:
    from medtune.config import RunConfig
    from medtune.data import load_split
    from medtune.models.store import load_model

    config = RunConfig.from_yaml(model_dir / "medtune_config.yaml")
    members = load_split(config.data, "train") or []
    others = load_split(config.data, split) or []
    if not members or not others:
        raise SystemExit(f"{model_dir}: no training or {split} documents to compare")
    rng = random.Random(seed)
    n = min(len(members), len(others), max_docs)
    members, others = rng.sample(members, n), rng.sample(others, n)
    model, _, task = load_model(model_dir)
    member_losses = [x for x in document_losses(model, task, members) if not math.isnan(x)]
    other_losses = [x for x in document_losses(model, task, others) if not math.isnan(x)]
    result = {"model": str(model_dir), "task": config.task, "split": split, "members": len(member_losses),
              "non_members": len(other_losses), "mean_loss_members": round(float(np.mean(member_losses)), 4),
              "mean_loss_non_members": round(float(np.mean(other_losses)), 4),
              **attack(member_losses, other_losses)}
    privacy = model_privacy(model_dir)
    if privacy:
        result.update({"epsilon_spent": privacy["epsilon_spent"], "delta": privacy["delta"], "unit": privacy["unit"],
                       "dp_advantage_bound": round(dp_advantage_bound(privacy["epsilon_spent"], privacy["delta"]), 4)})
    else:
        result.update({"epsilon_spent": None, "dp_advantage_bound": 1.0})
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", type=Path, help="model directories written by medtune train")
    parser.add_argument("--split", default="test", choices=["dev", "test"], help="the held-out (non-member) split")
    parser.add_argument("--max-docs", type=int, default=500, help="documents of each side (members, non-members)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=RESULTS / "dp_audit.json")
    args = parser.parse_args()
    from medtune.fileutils import atomic_write

    results: dict[str, Any] = {}
    if args.output.is_file():
        results = json.loads(args.output.read_text(encoding="utf-8"))
    results.setdefault("audits", {})
    for model_dir in args.models:
        entry = audit(model_dir, args.split, args.max_docs, args.seed)
        entry["date"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        results["audits"][str(model_dir)] = entry
        print(json.dumps(entry), flush=True)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(args.output) as handle:
            json.dump(results, handle, indent=2)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
