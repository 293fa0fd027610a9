"""Documents per second of ``medtune.load(model).pipe`` in fp32 and bf16 over NCBI-disease test abstracts.

    .venv/bin/python benchmarks/predict_speed.py --model models/ncbi-disease [--repeat 3]

Prints one JSON line per mode: documents per second of wall time and per second of this process's CPU
time (best of ``--repeat`` passes; on one thread the CPU-time rate is the steadier figure when other
jobs share the machine), and a hash of the predicted spans. Used to check that a change of code does not slow prediction: run it from two checkouts
(e.g. ``git worktree add /tmp/old REV``) on the same model, alternately, and compare the rates and
hashes in the same session (see BENCHMARKS.md, "Reshaping: prediction speed").
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time

from _env import ROOT  # noqa: F401  (sets up sys.path and the environment)

import torch  # noqa: E402

import medtune  # noqa: E402
from medtune import datasets  # noqa: E402

try:  # the helpers moved in the reshaping; the script also runs from older checkouts
    from medtune.runtime import cpu_name  # noqa: E402
except ImportError:  # pragma: no cover
    from medtune.tasks.base import cpu_name  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--docs", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    docs = [d.copy(annotations=False) for d in datasets.load("ncbi-disease", split="test")[: args.docs]]
    for mode in ("fp32", "bf16"):
        nlp = medtune.load(args.model, mode=mode, batch_size=32)
        list(nlp.pipe(docs[:8]))  # warm-up
        best, best_cpu, spans = 0.0, 0.0, None
        for _ in range(args.repeat):
            start, cpu = time.perf_counter(), time.process_time()
            preds = list(nlp.pipe(docs))
            best = max(best, len(docs) / (time.perf_counter() - start))
            best_cpu = max(best_cpu, len(docs) / (time.process_time() - cpu))
            spans = [[(s.start, s.end, s.label) for s in p.spans] for p in preds]
        digest = hashlib.sha256(json.dumps(spans).encode()).hexdigest()[:12]
        print(json.dumps({"mode": mode, "docs_per_s": round(best, 2), "docs_per_cpu_s": round(best_cpu, 2), "spans_sha": digest,
                          "threads": args.threads, "cpu": cpu_name(), "medtune": str(ROOT)}))


if __name__ == "__main__":
    main()
