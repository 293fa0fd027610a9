"""Does memory accumulate while documents stream through one process?

    python benchmarks/stream_memory.py --model models/ncbi-disease [--documents 60000] [--every 10000]

Streams one-sentence documents (the NCBI-disease test sentences, repeated) through
``medtune.load(MODEL).pipe`` and, every ``--every`` documents, runs ``gc.collect()`` and prints the
resident memory and the number of live Python objects. Live objects that stay level while RSS levels off
mean no accumulation (RSS then only holds heap high-water marks of the largest batches).
"""

from __future__ import annotations

import argparse
import gc
import re
import time
from pathlib import Path

from _env import ROOT  # noqa: F401  (sets up sys.path and the environment)

import psutil  # noqa: E402

import medtune  # noqa: E402
from medtune.data import load_named  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "ncbi-disease")
    parser.add_argument("--documents", type=int, default=60_000)
    parser.add_argument("--every", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    sentences = [s for d in load_named("ncbi-disease", "test") for s in re.split(r"(?<=\.)\s+", d.text) if s.strip()]
    nlp = medtune.load(args.model)
    proc = psutil.Process()

    def stream():
        for i in range(args.documents):
            yield medtune.Document(id=f"d{i}", text=sentences[i % len(sentences)])

    start = time.perf_counter()
    print("| documents | RSS MB | live Python objects | seconds |\n|---:|---:|---:|---:|")
    for k, _ in enumerate(nlp.pipe(stream(), batch_size=args.batch_size), start=1):
        if k % args.every == 0:
            gc.collect()
            print(f"| {k} | {proc.memory_info().rss / 2**20:.1f} | {len(gc.get_objects())} | "
                  f"{time.perf_counter() - start:.0f} |", flush=True)


if __name__ == "__main__":
    main()
