"""The allocator lever (``medtune.runtime.tune_allocator``): training-step time with glibc's default malloc
thresholds against the raised ones, at several sequence lengths, each setting in a fresh process.

A step is forward + backward + AdamW of the default MiniLM (sequence classification head) on a batch of
random token ids (half the rows padded to half length), bf16 autocast where the CPU has it. Printed per
length: seconds per step, user and system CPU seconds per step, peak resident memory, and the ratio.

    python benchmarks/allocator.py [--lengths 128,352] [--batch-size 16] [--steps 4]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _env import RESULTS  # noqa: E402  (sets up paths and offline mode)


def child(length: int, batch_size: int, steps: int) -> dict:
    from medtune.runtime import allocator_tuned, tune_allocator

    tune_allocator()  # a no-op when MEDTUNE_MALLOC_TUNING=0
    import torch
    from transformers import AutoModelForSequenceClassification

    from medtune.models.encoder import resolve_base_model
    from medtune.runtime import resolve_bf16

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(resolve_base_model("default"), num_labels=10)
    model.train()
    bf16 = resolve_bf16("auto", torch.device("cpu"))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    ids = torch.randint(1000, 20000, (batch_size, length))
    mask = torch.ones_like(ids)
    mask[: batch_size // 2, length // 2:] = 0

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(input_ids=ids, attention_mask=mask)
        out.logits.float().sum().backward()
        opt.step()
        opt.zero_grad()

    step()  # warm-up
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(steps):
        step()
    seconds = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    return {"length": length, "malloc_tuned": allocator_tuned(), "bf16": bf16,
            "s_per_step": round(seconds / steps, 3), "user_s_per_step": round((r1.ru_utime - r0.ru_utime) / steps, 3),
            "sys_s_per_step": round((r1.ru_stime - r0.ru_stime) / steps, 3), "peak_rss_mib": round(r1.ru_maxrss / 1024)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", default="128,352")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child, args.batch_size, args.steps)))
        return
    from medtune.runtime import cpu_name

    rows = []
    for length in [int(x) for x in args.lengths.split(",")]:
        for tuned in (False, True):
            env = dict(os.environ, MEDTUNE_MALLOC_TUNING="1" if tuned else "0")
            out = subprocess.run([sys.executable, __file__, "--child", str(length), "--batch-size",
                                  str(args.batch_size), "--steps", str(args.steps)],
                                 env=env, check=True, capture_output=True, text=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
    print(f"\nCPU: {cpu_name()}, batch {args.batch_size}, {args.steps} timed steps\n")
    print("| tokens | allocator | s/step | user s | sys s | peak RSS MiB | speed-up |\n|---|---|---|---|---|---|---|")
    for default, tuned in zip(rows[::2], rows[1::2]):
        for r in (default, tuned):
            ratio = default["s_per_step"] / r["s_per_step"]
            print(f"| {r['length']} | {'raised thresholds' if r['malloc_tuned'] else 'glibc default'} | "
                  f"{r['s_per_step']:.2f} | {r['user_s_per_step']:.2f} | {r['sys_s_per_step']:.2f} | "
                  f"{r['peak_rss_mib']} | {ratio:.2f}x |")
    RESULTS.mkdir(exist_ok=True)
    from medtune.fileutils import atomic_write

    with atomic_write(RESULTS / "allocator.json") as handle:
        json.dump({"date": time.strftime("%Y-%m-%d"), "cpu": cpu_name(), "args": vars(args), "rows": rows},
                  handle, indent=2)


if __name__ == "__main__":
    main()
