"""Argmax against a dev-tuned cut on the positive label, for trained two-label classifiers, in one run.

For each model directory: the test F1 of the positive label (the model's ``eval.positive_label``, or
``--positive-label``) with the model's own decision (argmax for a model trained without
``model.decision: dev_threshold``), and with the cut on that label's probability that maximises F1 on the
dev split (``medtune.tasks.thresholds.tune_positive_threshold``, as ``ClassificationTask.tune_decision``; nothing is chosen on test). Also what no cut changes: the
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

    from dp_audit import model_privacy

    from medtune.config import RunConfig
    from medtune.data import load_split
    from medtune.models.store import load_model
    from medtune.tasks.thresholds import tune_positive_threshold

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

    own_cut = task.positive_threshold  # None for an argmax model
    pos = task.label_to_id[positive]
    start = time.perf_counter()
    # one forward pass per split; every decision below is made from these probabilities
    probs = {name: task.probabilities(model, docs, batch_size=batch_size, device=device, bf16=False)
             for name, docs in (("dev", dev), ("test", test))}
    docs_of = {"dev": dev, "test": test}
    gold = {name: np.array([positive in d.labels for d in docs]) for name, docs in docs_of.items()}

    def f1(name: str, cut: float | None) -> float:
        preds = [task.decide(d, p, positive_threshold=cut) for d, p in zip(docs_of[name], probs[name])]
        return round(float(task.metrics(docs_of[name], preds, **options)["f1"]), 4)

    row: dict[str, Any] = {
        "model": str(model_dir), "positive_label": positive, "dev_docs": len(dev), "test_docs": len(test),
        "roc_auc": {k: round(float(roc_auc_score(gold[k], probs[k][:, pos])), 4) for k in probs},
        # what "every document positive" scores: a cut below every score reaches it
        "all_positive_f1": {k: round(2 * g.mean() / (1 + g.mean()), 4) for k, g in gold.items()},
        "own_decision": "dev_threshold" if own_cut is not None else "argmax",
        "own": {"dev_f1": f1("dev", own_cut), "test_f1": f1("test", own_cut)}}
    if own_cut is None:
        row["argmax"] = row["own"]
    # the same fit as ClassificationTask.tune_decision, on the probabilities already computed
    cut, _ = tune_positive_threshold(probs["dev"][:, pos], gold["dev"])
    task.meta["positive_label"] = positive  # what decide() cuts on (an argmax model records none)
    row["dev_threshold"] = {"cut": round(cut, 6), "dev_f1": f1("dev", cut), "test_f1": f1("test", cut)}
    privacy = model_privacy(model_dir)
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
