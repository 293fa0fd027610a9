"""Does an ensemble of PHI models buy precision at the target recall? Chosen on dev only.

    python benchmarks/deid_ensemble.py models/deid models/deid-half models/deid-8ep [--target-recall 0.98]

Each candidate is the first model alone or the first model averaged with one or more of the others
(``medtune.inference.load_ensemble``: the mean of the members' word-level tag probabilities). For each,
the decoding bias ``outside_weight`` is tuned on the **dev** patients for the target binary token recall
of rules + model (what ``medtune deid-tune`` does), and the dev precision at that weight is reported.
The test split is not read: a candidate worth shipping is then measured once with ``benchmarks/deid.py``.

Writes ``benchmarks/results/deid-ensemble-dev.json`` atomically (counts and ratios only).
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _env import RESULTS  # noqa: E402  (sets up paths and offline mode)

from medtune import datasets  # noqa: E402
from medtune.deid.detect import PhiDetector  # noqa: E402
from medtune.deid.model import tune_outside_weight  # noqa: E402
from medtune.fileutils import atomic_write  # noqa: E402
from medtune.inference import load, load_ensemble  # noqa: E402
from medtune.runtime import cpu_name  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="PHI model directories; the first is in every candidate")
    parser.add_argument("--target-recall", type=float, default=0.98)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    first, others = args.models[0], args.models[1:]
    candidates = [[first]] + [[first, *extra] for k in range(1, len(others) + 1)
                              for extra in itertools.combinations(others, k)]
    dev = datasets.load("physionet-deid", "dev")
    rules = PhiDetector(rules=True).detect(dev)
    rows = []
    for paths in candidates:
        start = time.perf_counter()
        predictor = load(paths[0], batch_size=args.batch_size) if len(paths) == 1 else \
            load_ensemble(paths, batch_size=args.batch_size)
        tuned = tune_outside_weight(predictor, dev, args.target_recall, rules, batch_size=args.batch_size)
        chosen = next(r for r in tuned.table if r["weight"] == tuned.weight)
        rows.append({"models": paths, "weight": tuned.weight, "reached": tuned.reached,
                     "dev_recall": chosen["recall"], "dev_precision": chosen["precision"],
                     "seconds": round(time.perf_counter() - start, 1)})
        print(f"{' + '.join(paths)}: outside_weight {tuned.weight:.4g}, dev recall {chosen['recall']:.4f}, "
              f"precision {chosen['precision']:.4f}", flush=True)
    best = max((r for r in rows if r["reached"]), key=lambda r: r["dev_precision"], default=None)
    result = {"split": "dev", "documents": len(dev), "target_recall": args.target_recall, "rows": rows,
              "best_on_dev": best["models"] if best else None, "cpu": cpu_name(),
              "date": dt.date.today().isoformat()}
    RESULTS.mkdir(parents=True, exist_ok=True)
    with atomic_write(RESULTS / "deid-ensemble-dev.json") as handle:
        json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
