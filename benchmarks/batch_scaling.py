"""Documents per second of ``medtune batch``: the local engine, Ray on this machine, and Ray on a simulated
multi-node cluster (``ray.cluster_utils.Cluster``: 1 node of 1 CPU against 2 nodes of 1 CPU).

    .venv/bin/python benchmarks/batch_scaling.py --model /tmp/batch-model            # ~5 min on 2 cores
    .venv/bin/python benchmarks/batch_scaling.py --model /tmp/batch-model --quick    # smoke run

The model is any NER model directory, e.g. one trained cheaply:
``MEDTUNE_DATA_DIR=../shared/data .venv/bin/medtune train configs/ncbi-disease.yaml --output /tmp/batch-model
--overwrite --training.max_steps 100 --training.progress_bar false``. The notes are NCBI-disease training
abstracts (spans removed) in one JSONL file, cut into shards of ``--shard-size``.

Every run goes through ``run_batch`` from the start (plan, manifest, worker start-up and model loading,
writing every shard) into a fresh output folder: ``docs/s`` is documents over that wall time, and ``first
result`` the seconds to the first progress update (start-up: imports, actors, model loading). On each
simulated cluster a second run over twice the documents gives the ``marginal docs/s`` (the extra
documents over the extra time), which leaves the start-up out. The efficiency of adding a node is
``docs/s(2 nodes) / (2 x docs/s(1 node))``, end to end and marginal; 1.0 is perfect scaling. Each Ray actor gets 1 CPU
and 1 torch thread; the local engine runs with 1 thread and with every core. Other jobs on the machine
change the figures: the table records the load average before and after.

Results: ``benchmarks/results/batch_scaling.json`` and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from _env import RESULTS, ROOT  # noqa: F401  (sets up sys.path and the environment)

import medtune.batch.runner as runner  # noqa: E402
from medtune import datasets  # noqa: E402
from medtune.fileutils import atomic_write  # noqa: E402
from medtune.io.jsonl import write_jsonl  # noqa: E402
from medtune.runtime import cpu_name  # noqa: E402


class TimingBar:
    """Stands in for the progress bar: the time of every update, to tell start-up from steady running."""

    def __init__(self) -> None:
        self.updates: list[tuple[float, int]] = []

    def update(self, n: int = 1) -> None:
        self.updates.append((time.perf_counter(), n))

    def __enter__(self) -> "TimingBar":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None


def measure(label: str, nodes: str, workers: int, notes: Path, work: Path, **options: Any) -> dict[str, Any]:
    bar = TimingBar()
    runner.progress_bar = lambda total, done, enabled: bar  # type: ignore[assignment]
    out = work / label.replace(" ", "-")
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    result = runner.run_batch(options.pop("model"), notes, out, progress=False, **options)
    seconds = time.perf_counter() - start
    row = {"run": label, "nodes": nodes, "workers": workers, "documents": result.documents_written,
           "seconds": round(seconds, 2), "docs_per_s": round(result.documents_written / seconds, 2),
           "first_result_s": round(bar.updates[0][0] - start, 2)}
    print(json.dumps(row), flush=True)
    return row


def ray_local(notes: Path, work: Path, model: str, shard_size: int, batch_size: int) -> dict[str, Any]:
    import ray

    cpus = len(os.sched_getaffinity(0))
    ray.init(num_cpus=cpus, include_dashboard=False, logging_level="error")
    try:
        return measure(f"ray local {cpus} CPUs", "1 (this machine)", cpus, notes, work, model=model, engine="ray",
                       shard_size=shard_size, batch_size=batch_size)
    finally:
        ray.shutdown()


def ray_cluster(nodes: int, notes: Path, more: Path, work: Path, model: str, shard_size: int,
                batch_size: int) -> dict[str, Any]:
    """A run over ``notes`` and one over ``more`` (twice as many) on the same simulated cluster; the
    difference of their times is the marginal rate, without the start-up both runs pay."""
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        for _ in range(nodes - 1):
            cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, logging_level="error")
        try:
            label = f"ray cluster {nodes} node{'s' if nodes > 1 else ''}"
            options = dict(model=model, engine="ray", shard_size=shard_size, batch_size=batch_size)
            row = measure(label, f"{nodes} x 1 CPU", nodes, notes, work, **options)
            big = measure(label + " (2x docs)", f"{nodes} x 1 CPU", nodes, more, work, **options)
        finally:
            ray.shutdown()
    finally:
        cluster.shutdown()
    extra = big["documents"] - row["documents"]
    row["marginal_docs_per_s"] = round(extra / (big["seconds"] - row["seconds"]), 2) \
        if big["seconds"] > row["seconds"] else None  # start-up noise larger than the extra work
    row["seconds_2x_docs"] = big["seconds"]
    return row


def markdown(rows: list[dict[str, Any]], efficiency: float, marginal: float | None) -> str:
    lines = ["| run | nodes | workers | documents | seconds | docs/s | first result (s) | marginal docs/s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['run']} | {r['nodes']} | {r['workers']} | {r['documents']} | {r['seconds']} | "
                     f"{r['docs_per_s']} | {r['first_result_s']} | {r.get('marginal_docs_per_s') or ''} |")
    lines.append("")
    shown = "n/a" if marginal is None else f"{marginal:.2f}"
    lines.append(f"Efficiency of adding a node (2 nodes vs 1): {efficiency:.2f} end to end, {shown} marginal "
                 "(start-up left out)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True, help="NER model directory (or pipeline YAML)")
    parser.add_argument("--docs", type=int, default=240, help="NCBI-disease training abstracts")
    parser.add_argument("--shard-size", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--quick", action="store_true", help="40 abstracts: a smoke run, not a measurement")
    args = parser.parse_args()
    n = 40 if args.quick else args.docs
    shard_size = 10 if args.quick else args.shard_size
    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="medtune-batch-bench-"))
    try:
        docs = [d.copy(annotations=False) for d in datasets.load("ncbi-disease", split="train")[: 2 * n]]
        if len(docs) < 2 * n:
            raise SystemExit(f"--docs {n}: NCBI-disease has {len(docs)} training abstracts, at most {len(docs) // 2}")
        notes, more = work / "notes.jsonl", work / "more.jsonl"
        write_jsonl(docs[:n], notes)
        write_jsonl(docs, more)
        common = dict(model=args.model, shard_size=shard_size, batch_size=args.batch_size)
        cores = len(os.sched_getaffinity(0))
        rows = [measure("local 1 thread", "1 (this machine)", 1, notes, work, num_threads=1, **common),
                measure(f"local {cores} threads", "1 (this machine)", 1, notes, work, num_threads=cores, **common),
                ray_local(notes, work, args.model, shard_size, args.batch_size),
                ray_cluster(1, notes, more, work, args.model, shard_size, args.batch_size),
                ray_cluster(2, notes, more, work, args.model, shard_size, args.batch_size)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    one, two = rows[-2], rows[-1]
    efficiency = two["docs_per_s"] / (2 * one["docs_per_s"]) if one["docs_per_s"] else float("nan")
    marginal = two["marginal_docs_per_s"] / (2 * one["marginal_docs_per_s"]) \
        if one["marginal_docs_per_s"] and two["marginal_docs_per_s"] else None
    summary = {"date": dt.datetime.now().isoformat(timespec="seconds"), "cpu": cpu_name(), "cores": cores,
               "model": args.model, "documents": n, "shard_size": shard_size, "batch_size": args.batch_size,
               "load_average_before": [round(x, 2) for x in load_before],
               "load_average_after": [round(x, 2) for x in os.getloadavg()], "rows": rows,
               "efficiency_adding_a_node": round(efficiency, 3),
               "marginal_efficiency_adding_a_node": None if marginal is None else round(marginal, 3),
               "quick": args.quick}
    RESULTS.mkdir(parents=True, exist_ok=True)
    with atomic_write(RESULTS / "batch_scaling.json") as handle:
        json.dump(summary, handle, indent=2)
    print(markdown(rows, efficiency, marginal))
    print(f"\n{summary['date']}, {summary['cpu']}, {cores} cores, load average before {summary['load_average_before']}"
          f", after {summary['load_average_after']}")


if __name__ == "__main__":
    main()
