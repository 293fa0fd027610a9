"""Strict span F1 of trained NER models as the decoding bias towards entities grows, on dev and test.

``outside_weight`` (``medtune/tasks/ner.py``, what ``medtune deid-tune`` tunes for recall) adds
``log(weight)`` to every word's ``O`` score before Viterbi: below 1, a word becomes an entity as soon as
``weight * P(O)`` falls under its best entity tag's probability. For a model whose scores shifted towards
``O`` as a whole (the NER analogue of a classifier whose minority-label probabilities sank under DP-SGD,
``benchmarks/decision_threshold.py``), a smaller weight recovers what the ranking holds; for a model that
never learned the entities it cannot. Each model runs once per split; every weight only decodes again.
The weight best on dev is the one to read on test. Results go to
``benchmarks/results/ner-decoding-bias.json`` (one entry per model, merged, atomic).

    python benchmarks/ner_decoding_bias.py runs/dp/ner-eps8 runs/dp-ner-head/ner-eps8-head
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

from _env import RESULTS  # noqa: E402, I001  (first: sets up paths and offline mode)

import torch  # noqa: E402

WEIGHTS = (1.0, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 1e-3, 1e-4)


def sweep(model_dir: Path, weights: tuple[float, ...], batch_size: int) -> dict[str, Any]:
    from dp_audit import model_privacy

    from medtune.config import RunConfig
    from medtune.data import load_split
    from medtune.evaluation.metrics import span_metrics
    from medtune.models.store import load_model

    config = RunConfig.from_yaml(model_dir / "medtune_config.yaml")
    model, _, task = load_model(model_dir)
    if task.name != "ner":
        raise SystemExit(f"{model_dir}: not an NER model")
    model.eval()
    crf = task.crf_params(model)
    start = time.perf_counter()
    row: dict[str, Any] = {"model": str(model_dir), "own_outside_weight": task.outside_weight}
    for split in ("dev", "test"):
        docs = load_split(config.data, split) or []
        if not docs:
            raise SystemExit(f"{model_dir}: the model's data has no {split} split")
        with torch.no_grad():
            scored = task.word_scores(model, docs, batch_size=batch_size, device=torch.device("cpu"), bf16=False)
        rows = []
        for weight in weights:
            preds = [task.decode(doc, wt, sc, crf, weight) for doc, (wt, sc) in zip(docs, scored)]
            m = span_metrics(docs, preds)
            rows.append({"weight": weight, **{k: round(float(m[k]), 4) for k in ("precision", "recall", "f1")}})
        row[split] = rows
    best = max(row["dev"], key=lambda r: (r["f1"], r["weight"]))  # ties: the milder bias
    row["best_on_dev"] = {"weight": best["weight"], "dev_f1": best["f1"],
                          "test_f1": next(r["f1"] for r in row["test"] if r["weight"] == best["weight"])}
    privacy = model_privacy(model_dir)
    row["epsilon_spent"] = privacy.get("epsilon_spent") if privacy else None
    row["seconds"] = round(time.perf_counter() - start, 1)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", type=Path, help="NER model directories")
    parser.add_argument("--weights", default=",".join(f"{w:g}" for w in WEIGHTS),
                        help="outside weights to decode with, in (0, 1]")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--output", type=Path, default=RESULTS / "ner-decoding-bias.json")
    args = parser.parse_args()
    from medtune.fileutils import atomic_write
    from medtune.runtime import cpu_name
    from medtune.tasks.ner import check_outside_weight

    weights = tuple(sorted({check_outside_weight(w, "--weights") for w in args.weights.split(",")}, reverse=True))
    results: dict[str, Any] = json.loads(args.output.read_text(encoding="utf-8")) if args.output.is_file() else {}
    results.setdefault("models", {})
    for model_dir in args.models:
        row = sweep(model_dir, weights, args.batch_size)
        row.update(date=dt.date.today().isoformat(), cpu=cpu_name(), torch_threads=torch.get_num_threads())
        results["models"][str(model_dir)] = row
        print(json.dumps({k: row[k] for k in ("model", "best_on_dev", "epsilon_spent")}), flush=True)
        with atomic_write(args.output) as handle:
            json.dump(results, handle, indent=2)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
