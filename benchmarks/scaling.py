"""How inference scales: time against document length, memory against the number of documents.

    .venv/bin/python benchmarks/scaling.py --model models/ncbi-disease            # full
    .venv/bin/python benchmarks/scaling.py --model models/ncbi-disease --quick    # smoke run

(a) Document length: one document of 1k, 3k, 10k, 30k and 100k characters, built by concatenating
    NCBI-disease test abstracts (cut at a whitespace), tagged with ``nlp(text)``. Reports seconds and
    seconds per 1k characters: overlapping windows make the cost linear in the length, so seconds per
    1k characters should stay about flat.
(b) Number of documents: 1k, 10k and 100k one-sentence documents (sentences of the test abstracts) in
    a JSONL file, streamed through ``medtune predict MODEL docs.jsonl --output out.jsonl`` in a
    subprocess. A fresh intermediate Python process starts each run and reads the peak RSS of its only
    child (``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss``), so every size is measured alone. Peak RSS
    should stay flat while the number of documents grows 100x. A 1-document run measures start-up
    (imports, model load); throughput is given both raw and net of that start-up.

Results: ``benchmarks/results/scaling.json`` (written atomically) and markdown tables.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _env import ROOT  # noqa: E402  (sets up sys.path and the environment)

FULL_LENGTHS = [1_000, 3_000, 10_000, 30_000, 100_000]
QUICK_LENGTHS = [1_000, 3_000, 10_000]
FULL_COUNTS = [1_000, 10_000, 100_000]
QUICK_COUNTS = [200, 1_000]

# Runs the command given in argv in a child and reports that child's peak RSS (and nothing else's:
# this process has no other children).
RSS_RUNNER = r"""
import json, resource, subprocess, sys, time
start = time.perf_counter()
rc = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL)
seconds = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": rc, "seconds": seconds, "maxrss_kb": usage.ru_maxrss}))
"""


def long_text(abstracts: list[str], n_chars: int) -> str:
    """Abstracts joined by blank lines until ``n_chars``, cut back to the last whitespace."""
    parts, size, i = [], 0, 0
    while size < n_chars:
        parts.append(abstracts[i % len(abstracts)])
        size += len(parts[-1]) + 2
        i += 1
    text = "\n\n".join(parts)[:n_chars]
    cut = text.rfind(" ")
    return text[:cut] if cut > n_chars * 0.9 else text


def sentences(abstracts: list[str]) -> list[str]:
    out = []
    for text in abstracts:
        out.extend(s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if len(s.strip()) > 20)
    return out


def medtune_command() -> list[str]:
    exe = Path(sys.executable).with_name("medtune")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "medtune.cli"]


def length_scaling(model: Path, lengths: list[int], abstracts: list[str], mode: str, batch_size: int,
                   repeats: int) -> list[dict]:
    import medtune

    nlp = medtune.load(model, mode=mode, batch_size=batch_size)
    nlp(abstracts[0])  # warm-up
    rows = []
    for n in lengths:
        text = long_text(abstracts, n)
        n_tokens = len(nlp.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])
        best, n_spans = float("inf"), 0
        for _ in range(repeats):
            t = time.perf_counter()
            doc = nlp(text)
            best = min(best, time.perf_counter() - t)
            n_spans = len(doc.spans)
        row = {"chars": len(text), "tokens": n_tokens, "spans": n_spans, "seconds": round(best, 4),
               "seconds_per_1k_chars": round(best / len(text) * 1000, 5)}
        rows.append(row)
        print(f"  {row['chars']:7d} chars {n_tokens:6d} tokens: {best:8.3f} s  "
              f"{row['seconds_per_1k_chars']:.4f} s/1k chars", flush=True)
    return rows


def count_scaling(model: Path, counts: list[int], sents: list[str], mode: str, batch_size: int,
                  workdir: Path) -> list[dict]:
    from medtune.document import Document
    from medtune.io.jsonl import write_jsonl

    rows = []
    for n in [1] + counts:
        docs_file = workdir / f"docs-{n}.jsonl"
        out_file = workdir / f"out-{n}.jsonl"
        write_jsonl((Document(id=f"s{i}", text=sents[i % len(sents)]) for i in range(n)), docs_file)
        cmd = medtune_command() + ["predict", str(model), str(docs_file), "--output", str(out_file),
                                   "--mode", mode, "--batch-size", str(batch_size)]
        proc = subprocess.run([sys.executable, "-c", RSS_RUNNER] + cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not proc.stdout.strip():
            raise SystemExit(f"the measuring process failed (exit {proc.returncode})")
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        if res["rc"] != 0:
            raise SystemExit(f"medtune predict failed on {n} documents (exit {res['rc']}): run it by hand: "
                             + " ".join(cmd))
        with open(out_file, "rb") as handle:
            written = sum(1 for _ in handle)
        if written != n:
            raise SystemExit(f"medtune predict wrote {written} documents for {n}")
        row = {"documents": n, "seconds": round(res["seconds"], 3),
               "peak_rss_mb": round(res["maxrss_kb"] / 1024, 1),
               "docs_per_s": round(n / res["seconds"], 2)}
        rows.append(row)
        docs_file.unlink()
        out_file.unlink()
        print(f"  {n:7d} documents: {row['seconds']:8.2f} s  peak RSS {row['peak_rss_mb']:7.1f} MB", flush=True)
    startup = rows[0]["seconds"]
    for row in rows[1:]:
        net = row["seconds"] - startup
        row["docs_per_s_net_of_startup"] = round(row["documents"] / net, 2) if net > 0 else None
    rows[0]["note"] = "start-up: imports and model load, 1 document"
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "ncbi-disease")
    parser.add_argument("--mode", default="auto", help="inference mode for both parts (default: auto)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2, help="timed passes per length; the fastest counts")
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke run: lengths {QUICK_LENGTHS}, counts {QUICK_COUNTS}")
    parser.add_argument("--lengths", default="", help="comma-separated character counts (overrides)")
    parser.add_argument("--counts", default="", help="comma-separated document counts (overrides)")
    parser.add_argument("--skip-lengths", action="store_true")
    parser.add_argument("--skip-counts", action="store_true")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "scaling.json")
    args = parser.parse_args(argv)

    import torch

    import medtune
    from medtune import datasets
    from medtune.fileutils import atomic_write
    from medtune.runtime import cpu_name

    if not (args.model / "config.json").exists():
        raise SystemExit(f"{args.model} is not a model directory: train it first")
    lengths = [int(x) for x in args.lengths.split(",") if x] or (QUICK_LENGTHS if args.quick else FULL_LENGTHS)
    counts = [int(x) for x in args.counts.split(",") if x] or (QUICK_COUNTS if args.quick else FULL_COUNTS)
    abstracts = [d.text for d in datasets.load("ncbi-disease", split="test")]
    load_before = os.getloadavg()[0]
    if load_before > 0.5:
        print(f"warning: load average {load_before:.1f} before the run: another job is using the CPU", flush=True)

    result: dict = {
        "benchmark": "scaling",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "model": str(args.model), "mode": args.mode, "batch_size": args.batch_size, "quick": args.quick,
        "machine": {"cpu": cpu_name(), "threads": torch.get_num_threads(),
                    "load_average_before": round(load_before, 2), "torch": torch.__version__,
                    "medtune": medtune.__version__},
    }
    if not args.skip_lengths:
        print(f"(a) document length, mode {args.mode}", flush=True)
        rows = length_scaling(args.model, lengths, abstracts, args.mode, args.batch_size, args.repeats)
        per_k = [r["seconds_per_1k_chars"] for r in rows]
        result["length"] = {"rows": rows,
                            "max_over_min_seconds_per_1k_chars": round(max(per_k) / min(per_k), 3)}
    if not args.skip_counts:
        print(f"(b) number of documents through `medtune predict`, mode {args.mode}", flush=True)
        workdir = Path(tempfile.mkdtemp(prefix="medtune-scaling-"))
        try:
            rows = count_scaling(args.model, counts, sentences(abstracts), args.mode, args.batch_size, workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        rss = [r["peak_rss_mb"] for r in rows[1:]]
        result["documents"] = {"rows": rows, "peak_rss_growth_mb": round(max(rss) - min(rss), 1),
                               "peak_rss_max_over_min": round(max(rss) / min(rss), 3)}

    with atomic_write(args.output) as handle:
        json.dump(result, handle, indent=2)
        handle.write("\n")
    print()
    print(markdown(result))
    print(f"\nresults written to {args.output}")
    return result


def markdown(result: dict) -> str:
    lines = []
    if "length" in result:
        lines += ["| characters | tokens | spans | seconds | s / 1k chars |", "|---:|---:|---:|---:|---:|"]
        for r in result["length"]["rows"]:
            lines.append(f"| {r['chars']} | {r['tokens']} | {r['spans']} | {r['seconds']:.3f} "
                         f"| {r['seconds_per_1k_chars']:.4f} |")
        lines.append(f"\nseconds per 1k characters, max / min: "
                     f"{result['length']['max_over_min_seconds_per_1k_chars']:.2f} (1.0 = perfectly linear)\n")
    if "documents" in result:
        lines += ["| documents | seconds | docs/s | docs/s net of start-up | peak RSS MB |",
                  "|---:|---:|---:|---:|---:|"]
        for r in result["documents"]["rows"]:
            net = r.get("docs_per_s_net_of_startup")
            lines.append(f"| {r['documents']} | {r['seconds']:.2f} | {r['docs_per_s']:.1f} "
                         f"| {'' if net is None else f'{net:.1f}'} | {r['peak_rss_mb']:.1f} |")
        lines.append(f"\npeak RSS growth across sizes: {result['documents']['peak_rss_growth_mb']:.1f} MB "
                     f"(max / min {result['documents']['peak_rss_max_over_min']:.3f})")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
