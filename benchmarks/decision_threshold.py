"""Argmax against a dev-tuned cut on the positive label, for trained two-label classifiers, in one run.

For each model directory: the test F1 of the positive label (the model's ``eval.positive_label``, or
``--positive-label``) with the model's own decision (argmax for a model trained without
``model.decision: dev_threshold``), and with the cut on that label's probability that maximises F1 on the
dev split (``ClassificationTask.tune_decision``; nothing is chosen on test). Also what no cut changes: the
ranking (ROC AUC on dev and test), and the F1 of calling every document positive, which any model reaches
with a cut below all its scores. A model whose scores shifted as a whole can have F1 0 at argmax and still
rank: DP-SGD's clipped, noised updates push a minority label's probability down everywhere.
Results go to ``benchmarks/results/decision-threshold.json`` (one entry per model, merged, atomic).

    python benchmarks/decision_threshold.py runs/dp/classification-eps8 runs/dp/classification-non-private
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

from _env import RESULTS  # noqa: E402, I001  (first: sets up paths and offline mode)

import numpy as np  # noqa: E402
import torch  # noqa: E402


def compare(model_dir: Path, positive_label: str | None, batch_size: int) -> dict[str, Any]:
    from sklearn.metrics import roc_auc_score

    from medtune.config import RunConfig
    from medtune.data import load_split
    from medtune.models.store import load_model

    config = RunConfig.from_yaml(model_dir / "medtune_config.yaml")
    model, _, task = load_model(model_dir)
    if task.name != "classification" or task.multi_label or len(task.labels) != 2:
        raise SystemExit(f"{model_dir}: not a single-label classifier of two labels")
    positive = positive_label or config.eval.positive_label
    if positive not in task.labels:
        raise SystemExit(f"{model_dir}: give --positive-label (one of {', '.join(task.labels)})")
    dev, test = load_split(config.data, "dev") or [], load_split(config.data, "test") or []
    if not dev or not test:
        raise SystemExit(f"{model_dir}: the model's data has no dev or no test split")
    device = torch.device("cpu")
    options = {"positive_label": positive, "ignore_labels": config.eval.ignore_labels}

    def f1(docs: list, cut: float | None) -> float:
        probs = task.probabilities(model, docs, batch_size=batch_size, device=device, bf16=False)
        preds = [task.decide(d, p, positive_threshold=cut) for d, p in zip(docs, probs)]
        return round(float(task.metrics(docs, preds, **options)["f1"]), 4)

    start = time.perf_counter()
    own_cut = task.positive_threshold  # None for an argmax model
    pos = task.label_to_id[positive]
    auc = {}
    for name, docs in (("dev", dev), ("test", test)):
        probs = task.probabilities(model, docs, batch_size=batch_size, device=device, bf16=False)
        auc[name] = round(float(roc_auc_score([positive in d.labels for d in docs], probs[:, pos])), 4)
    share = {name: sum(positive in d.labels for d in docs) / len(docs) for name, docs in (("dev", dev), ("test", test))}
    row: dict[str, Any] = {"model": str(model_dir), "positive_label": positive, "dev_docs": len(dev),
                           "test_docs": len(test), "roc_auc": auc,
                           # what "every document positive" scores: a cut below every score reaches it
                           "all_positive_f1": {k: round(2 * v / (1 + v), 4) for k, v in share.items()},
                           "own_decision": "dev_threshold" if own_cut is not None else "argmax",
                           "own": {"dev_f1": f1(dev, own_cut), "test_f1": f1(test, own_cut)}}
    if own_cut is None:
        task.positive_threshold = None
        row["argmax"] = row["own"]
    fitted = task.tune_decision(model, dev, positive_label=positive, batch_size=batch_size, device=device)
    cut = fitted["positive_threshold"]
    row["dev_threshold"] = {"cut": round(cut, 6), "dev_f1": f1(dev, cut), "test_f1": f1(test, cut)}
    metrics = model_dir / "metrics.json"
    privacy = json.loads(metrics.read_text(encoding="utf-8")).get("privacy") if metrics.is_file() else None
    row["epsilon_spent"] = privacy.get("epsilon_spent") if privacy else None
    row["seconds"] = round(time.perf_counter() - start, 1)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", type=Path, help="classification model directories")
    parser.add_argument("--positive-label", default=None, help="default: the model's eval.positive_label")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--output", type=Path, default=RESULTS / "decision-threshold.json")
    args = parser.parse_args()
    from medtune.fileutils import atomic_write
    from medtune.runtime import cpu_name

    results: dict[str, Any] = json.loads(args.output.read_text(encoding="utf-8")) if args.output.is_file() else {}
    results.setdefault("models", {})
    for model_dir in args.models:
        row = compare(model_dir, args.positive_label, args.batch_size)
        row.update(date=dt.date.today().isoformat(), cpu=cpu_name(), torch_threads=torch.get_num_threads())
        results["models"][str(model_dir)] = row
        print(json.dumps(row), flush=True)
        with atomic_write(args.output) as handle:
            json.dump(results, handle, indent=2)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
