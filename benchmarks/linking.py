"""Concept linking benchmark: NCBI-disease, BC5CDR disease and BC5CDR chemical, MeSH ids, accuracy@1.

    .venv/bin/python benchmarks/linking.py [--corpora ncbi-disease,bc5cdr-disease,bc5cdr-chem] [--no-tune]

For each corpus a :class:`medtune.linking.Linker` is built over the MeSH vocabulary of its entity type
(``mesh_vocabulary("disease")`` or ``("chemical")``, from the shared data), fitted on the official train
split (NCBI-disease train; BC5CDR train), and scored on the *gold* mentions of the test split with
:func:`medtune.linking.linking_report` (accuracy@1; composite mentions need every concept; see
``medtune/linking/evaluate.py``).

* Tuning uses the dev split only: a small grid over ``abbreviation_first``, ``dense_sparse_weight`` and
  ``dense_context_bonus`` (the other defaults were set on the same dev splits during development); the
  setting with the best dev accuracy is used on test.
* Ablation on test, cumulative: exact (case-insensitive name match), +normalised, +train dictionary,
  +abbreviation (Schwartz-Hearst), +composite (coordination split), +dense (the full linker).
  Each step is compared with the one before it by a paired bootstrap over test documents (accuracy
  difference, 95 % interval, p-value; 1,000 resamples, seed 0; ``vs_previous`` in the JSON).
* Costs: wall time per corpus (vocabulary, fit, embedding the index, tuning, evaluation), the time to
  link the test split with the full linker, the saved linker's size on disk and its load time, and the
  peak resident memory of the process so far (``ru_maxrss``). The saved linker is loaded back and must
  give the same test predictions.

Runs on one torch thread by default (``--threads``). Results: ``benchmarks/results/linking.json``
(written atomically) and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

from _env import ROOT  # noqa: E402  (sets up sys.path and the environment)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from medtune import datasets  # noqa: E402
from medtune.config import DEFAULT_BASE_MODEL  # noqa: E402
from medtune.fileutils import atomic_write  # noqa: E402
from medtune.linking import COMPONENTS, Linker, linking_report, mesh_vocabulary  # noqa: E402
from medtune.runtime import cpu_name  # noqa: E402
from medtune.trust.bootstrap import paired_bootstrap  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
CORPORA = {  # name: (vocabulary kind, span label, target accuracy@1 on test)
    "ncbi-disease": ("disease", "Disease", 0.80),
    "bc5cdr-disease": ("disease", "Disease", 0.88),
    "bc5cdr-chem": ("chemical", "Chemical", 0.80),
}
GRID = {"abbreviation_first": [True, False], "dense_sparse_weight": [0.0, 0.15],
        "dense_context_bonus": [0.0, 0.05]}
ABLATION = [("exact", 1), ("+normalised", 2), ("+train dictionary", 3), ("+abbreviation", 4),
            ("+composite", 5), ("+dense (full)", 6)]


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def predictions(linker: Linker, docs: list) -> list[tuple]:
    copies = [doc.copy() for doc in docs]
    for doc in copies:
        for span in doc.spans:
            span.ids = []
    linker.link_documents(copies)
    return [(tuple(s.ids), s.attributes.get("link_source")) for d in copies for s in d.spans]


def summary(report: dict) -> dict:
    keys = ("n", "excluded_no_id", "accuracy", "accuracy_lenient", "ceiling", "ceiling_with_train",
            "by_source", "composite")
    return {k: report[k] for k in keys}


def run_corpus(name: str, tune: bool, log) -> dict:
    kind, label, target = CORPORA[name]
    start = time.perf_counter()
    train, dev, test = (datasets.load(name, split=s) for s in ("train", "dev", "test"))
    vocab = mesh_vocabulary(kind)
    linker = Linker(vocab, labels=[label]).fit(train)
    t = time.perf_counter()
    linker.build_index()
    index_s = time.perf_counter() - t
    log(f"{name}: {len(vocab)} concepts, {vocab.n_names} names, {linker.train_stats['pairs']} training "
        f"pairs, {len(linker.dense)} dense rows embedded in {index_s:.0f}s")

    tuning = []
    best = {k: getattr(linker, k) for k in GRID}
    if tune:
        best_acc = -1.0
        for values in itertools.product(*GRID.values()):
            setting = dict(zip(GRID, values))
            acc = linking_report(linker.configure(**setting), dev)["accuracy"]
            tuning.append({**setting, "dev_accuracy": acc})
            log(f"  dev {setting}: {acc:.4f}")
            if acc > best_acc:
                best, best_acc = setting, acc
    linker.configure(**best)
    dev_report = linking_report(linker, dev)

    ablation = []
    per_doc = []
    for step, n_components in ABLATION:
        linker.set_components(COMPONENTS[:n_components])
        report = linking_report(linker, test, per_document=True)
        ablation.append({"step": step, "components": list(linker.components), "accuracy": report["accuracy"]})
        per_doc.append(np.array([[c, 0, m - c] for c, m in report["per_document"]]).reshape(-1, 3))
        log(f"  test {step}: {report['accuracy']:.4f}")
    # each step against the one before it, paired over test documents: accuracy = correct / scored is the
    # "recall" of counts (correct, 0, wrong) (medtune.trust.bootstrap.paired_bootstrap)
    for k in range(1, len(ablation)):
        pair = paired_bootstrap(per_doc[k], per_doc[k - 1], metric="recall", seed=0)
        ablation[k]["vs_previous"] = {key: pair[key] for key in ("difference", "low", "high", "p_value", "documents")}
        log(f"  {ablation[k]['step']} - {ablation[k - 1]['step']}: {pair['difference']:+.4f} "
            f"[{pair['low']:+.4f}, {pair['high']:+.4f}] p = {pair['p_value']:.4f}")
    t = time.perf_counter()
    test_report = linking_report(linker, test)
    link_s = time.perf_counter() - t

    with tempfile.TemporaryDirectory() as tmp:
        out = linker.save(Path(tmp) / name)
        size = dir_size(out)
        t = time.perf_counter()
        loaded = Linker.load(out)
        load_s = time.perf_counter() - t
        same = predictions(loaded, test) == predictions(linker, test)
    wall = time.perf_counter() - start
    return {
        "vocabulary": {"source": vocab.source, "concepts": len(vocab), "names": vocab.n_names},
        "train": dict(linker.train_stats),
        "settings": {k: getattr(linker, k) for k in ("prefer", "abbreviation_first", "composite_min_score",
                                                      "dense_train_bonus", "dense_scr_penalty",
                                                      "dense_sparse_weight", "dense_context_bonus")},
        "dev_tuning": tuning,
        "dev": summary(dev_report),
        "test": summary(test_report),
        "ablation_test": ablation,
        "target_accuracy": target,
        "meets_target": test_report["accuracy"] >= target,
        "dense_rows": len(linker.dense),
        "index_embedding_s": round(index_s, 1),
        "link_test_s": round(link_s, 1),
        "test_mentions_per_s": round(test_report["n"] / link_s, 1) if link_s else None,
        "saved_linker_mib": round(size / 2**20, 1),
        "load_s": round(load_s, 2),
        "reload_identical_predictions": same,
        "wall_s": round(wall, 1),
        "peak_rss_mib_so_far": round(peak_rss_mib()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpora", default=",".join(CORPORA),
                        help="comma-separated, from " + ", ".join(CORPORA))
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--no-tune", action="store_true", help="skip the dev grid; use the defaults")
    parser.add_argument("--output", type=Path, default=RESULTS / "linking.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = [n.strip() for n in args.corpora.split(",") if n.strip()]
    unknown = [n for n in names if n not in CORPORA]
    if unknown:
        parser.error(f"unknown corpora {unknown}")

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    start = time.perf_counter()
    results = {name: run_corpus(name, not args.no_tune, log) for name in names}
    total = time.perf_counter() - start

    print("\n| corpus | test acc@1 | target | lenient | ceiling (vocab / +train) | dev acc@1 | "
          + " | ".join(step for step, _ in ABLATION) + " | wall s | linker MiB |")
    print("|---" * (8 + len(ABLATION)) + "|")
    for name, r in results.items():
        t = r["test"]
        print(f"| {name} | {t['accuracy']:.3f} | {r['target_accuracy']:.2f} | {t['accuracy_lenient']:.3f} | "
              f"{t['ceiling']:.3f} / {t['ceiling_with_train']:.3f} | {r['dev']['accuracy']:.3f} | "
              + " | ".join(f"{a['accuracy']:.3f}" for a in r["ablation_test"])
              + f" | {r['wall_s']:.0f} | {r['saved_linker_mib']} |")
    print(f"\ntotal wall time {total:.0f}s, peak RSS {peak_rss_mib():.0f} MiB, "
          f"{args.threads} torch thread(s)")

    args.output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(args.output) as handle:
        json.dump({"date": time.strftime("%Y-%m-%d"), "cpu": cpu_name(), "threads": args.threads,
                   "encoder": DEFAULT_BASE_MODEL, "tuned_on": "dev" if not args.no_tune else None,
                   "scoring": "accuracy@1 on gold mentions; composite mentions need every concept, "
                              "alternative ids need one (medtune/linking/evaluate.py)",
                   "corpora": results, "total_wall_s": round(total, 1),
                   "peak_rss_mib": round(peak_rss_mib())}, handle, indent=2)
        handle.write("\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
