"""Domain-adaptive pretraining, measured: each task trained from the default base model and from the
adapted one (``make base-model``), same configs and seeds, one table.

    .venv/bin/python benchmarks/dapt.py [--adapted medtune-minilm-med] [--tasks ncbi-disease,...]
                                        [--seeds 1,2,3] [--quick] [--out benchmarks/results/dapt.json]

Runs ``medtune.bench.run`` twice (the default model, then ``--adapted``: a directory or a built name),
then writes one markdown table and JSON: per task the default and adapted test figure (mean over the
seeds, and each seed), the gain, the mean gain over the NER and relation-extraction tasks (issue 19's
target: >= +1.5 points), and the pretraining cost from the adapted model's ``pretraining.json``
(tokens, hours, peak memory). Models go to ``models/bench/<task>-seed<N>[-<adapted name>]``; a bench
result already there for a task and seed is reused with ``--reuse`` (e.g. the default runs of an earlier
``medtune bench``). ``--quick`` is a smoke run on small slices (``medtune bench --quick``), written to
``benchmarks/results/dapt-quick.json``: not a measurement.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from _env import RESULTS, ROOT  # noqa: E402  (sets up sys.path and the environment)

from medtune.bench import base_model_tag, run, run_name, task_by_name  # noqa: E402
from medtune.fileutils import atomic_write  # noqa: E402
from medtune.models.encoder import resolve_base_model  # noqa: E402

DEFAULT_TASKS = "ncbi-disease,bc5cdr-chem,bc5cdr-disease,bc2gm,chemprot,hoc"
GAIN_KINDS = ("NER", "relation extraction")


def _figure(row: dict[str, Any]) -> float | None:
    task = task_by_name(row["task"])
    value = row["metrics"].get(task.metrics[0])
    return None if value is None else 100 * value


def _rows(tasks: list[str], seeds: list[int], *, quick: bool, base_model: str | None, reuse: bool,
          overrides: dict[str, Any], root: Path) -> list[dict[str, Any]]:
    rows = []
    tag = base_model_tag(base_model)
    for name in tasks:
        for seed in seeds:
            cached = root / "benchmarks" / "results" / (run_name(name, quick=quick, seed=seed, tag=tag) + ".json")
            if reuse and cached.is_file():
                rows.append(json.loads(cached.read_text(encoding="utf-8")))
                continue
            got, _ = run([name], quick=quick, seeds=[seed], root=root, base_model=base_model, overrides=overrides)
            rows.extend(got)
    return rows


def compare(default: list[dict[str, Any]], adapted: list[dict[str, Any]], tasks: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"tasks": {}}
    gains: list[float] = []
    for name in tasks:
        a = [f for f in (_figure(r) for r in default if r["task"] == name) if f is not None]
        b = [f for f in (_figure(r) for r in adapted if r["task"] == name) if f is not None]
        if not a or not b:
            continue
        kind = task_by_name(name).kind
        entry = {"kind": kind, "metric": task_by_name(name).metrics[0], "default": round(statistics.mean(a), 2),
                 "adapted": round(statistics.mean(b), 2), "default_seeds": a, "adapted_seeds": b}
        entry["gain"] = round(entry["adapted"] - entry["default"], 2)
        out["tasks"][name] = entry
        if kind in GAIN_KINDS:
            gains.append(entry["gain"])
    out["mean_gain_ner_relation"] = round(statistics.mean(gains), 2) if gains else None
    return out


def pretraining_cost(adapted: str) -> dict[str, Any]:
    card_path = Path(resolve_base_model(adapted)) / "pretraining.json"
    if not card_path.is_file():
        return {"note": f"{card_path} not found"}
    card = json.loads(card_path.read_text(encoding="utf-8"))
    return {"tokens": card["corpus"].get("tokens"), "documents": card["corpus"].get("documents"),
            "excluded_test_ids": card["corpus"].get("excluded_test_ids"), "steps": card.get("steps"),
            "tokens_seen": card.get("tokens_seen"), "hours": card.get("hours"), "peak_rss_mb": card.get("peak_rss_mb"),
            "complete": card.get("complete"), "cpu": card.get("cpu"), "device": card.get("device"),
            "held_out_losses": card.get("held_out_losses")}


def markdown(result: dict[str, Any]) -> str:
    lines = []
    if result["quick"]:
        lines.append("*Quick smoke run on small slices for a few steps: these figures are not measurements.*\n")
    lines += [f"| task | type | metric | default ({result['default_base_model']}) | adapted ({result['adapted']}) "
              "| gain | seeds |", "|---|---|---|---|---|---|---|"]
    for name, e in result["comparison"]["tasks"].items():
        lines.append(f"| {name} | {e['kind']} | {e['metric']} | {e['default']:.2f} | {e['adapted']:.2f} | "
                     f"{e['gain']:+.2f} | {len(e['adapted_seeds'])} |")
    mean = result["comparison"]["mean_gain_ner_relation"]
    lines.append(f"| mean gain, NER and relation tasks | | | | | {'-' if mean is None else f'{mean:+.2f}'} | |")
    cost = result["pretraining"]
    if "tokens" in cost:
        lines.append(f"\nPretraining: {cost['tokens']} corpus tokens ({cost['documents']} documents, "
                     f"{cost['excluded_test_ids']} test ids excluded), {cost['steps']} steps, {cost['tokens_seen']} "
                     f"tokens seen, {cost['hours']} h, peak RSS {cost['peak_rss_mb']} MB on {cost['cpu']}.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--adapted", default="medtune-minilm-med", help="adapted base model (dir or built name)")
    parser.add_argument("--tasks", default=DEFAULT_TASKS)
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--quick", action="store_true", help="smoke run on small slices: not a measurement")
    parser.add_argument("--reuse", action="store_true", help="reuse bench results already written")
    parser.add_argument("--max-steps", type=int, default=None, help="override training.max_steps (smoke runs)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--root", type=Path, default=ROOT, help="folder with configs/; models go to ROOT/models/bench "
                        "and bench results to ROOT/benchmarks/results (a scratch folder keeps smoke runs apart)")
    args = parser.parse_args(argv)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    seeds = [int(s) for s in args.seeds.split(",")]
    overrides = {"training.max_steps": args.max_steps} if args.max_steps else {}
    start = time.perf_counter()
    common = {"quick": args.quick, "reuse": args.reuse, "overrides": overrides, "root": args.root}
    default = _rows(tasks, seeds, base_model=None, **common)
    adapted = _rows(tasks, seeds, base_model=args.adapted, **common)
    result = {"date": time.strftime("%Y-%m-%d"), "quick": args.quick, "seeds": seeds,
              "default_base_model": "default", "adapted": args.adapted,
              "comparison": compare(default, adapted, tasks), "pretraining": pretraining_cost(args.adapted),
              "wall_s": round(time.perf_counter() - start, 1),
              "command": " ".join(["benchmarks/dapt.py", *(argv if argv is not None else sys.argv[1:])])}
    result["markdown"] = markdown(result)
    out = args.out or RESULTS / ("dapt-quick.json" if args.quick else "dapt.json")
    with atomic_write(out) as handle:
        json.dump(result, handle, indent=2)
    with atomic_write(out.with_suffix(".md")) as handle:
        handle.write(result["markdown"] + "\n")
    print(result["markdown"])
    print(f"\nwritten to {out} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
