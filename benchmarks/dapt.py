"""Domain-adaptive pretraining, measured: each task trained from the default base model and from the
adapted one (``make base-model``), same configs and seeds, one table.

    .venv/bin/python benchmarks/dapt.py [--adapted medtune-minilm-med] [--tasks ncbi-disease,...]
                                        [--seeds 1,2,3] [--quick] [--out benchmarks/results/dapt.json]

Runs ``medtune.bench.run`` twice (the default model, then ``--adapted``: a directory or a built name),
then writes one markdown table and JSON: per task the default and adapted test figure (mean over the
seeds, and each seed), the gain, the mean gain over the NER and relation-extraction tasks (issue 19's
target: >= +1.5 points), and the pretraining cost from the adapted model's ``pretraining.json``
(tokens, hours, peak memory) and its state (steps of max_steps, complete, date) from the adapted model's
``pretraining.json``. Models go to ``models/bench/<task>-seed<N>[-<adapted name>]``; a bench result
already there for a task and seed is reused with ``--reuse`` (e.g. the default runs of an earlier
``medtune bench``) only when it is like for like: the same base model (and, for the adapted side, the
same pretraining steps and date), config path and overrides; a row of an earlier medtune that records
no config is reused when its base model matches (a row that records neither, the earliest kind, only for the
default side), and is marked ``reused_unverified``; the CPUs each side ran on are listed. Tasks without a
figure on one side are listed as ``missing``, not dropped silently; tasks outside the BLURB macro
average (``in_macro=False``) are left out of the mean gain. ``--quick`` is a smoke run on small slices
(``medtune bench --quick``), written to ``benchmarks/results/dapt-quick.json``: not a measurement.
``--max-steps`` (a smoke run too) needs ``--root SCRATCH``, so that its models and rows never take the
ordinary ``<task>-seed<N>`` names in this checkout.
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

from medtune.bench import base_model_pretraining, base_model_tag, run, run_name, task_by_name  # noqa: E402
from medtune.config import RunConfig  # noqa: E402
from medtune.fileutils import atomic_write  # noqa: E402
from medtune.models.encoder import resolve_base_model  # noqa: E402

DEFAULT_TASKS = "ncbi-disease,bc5cdr-chem,bc5cdr-disease,bc2gm,chemprot,hoc"
GAIN_KINDS = ("NER", "relation extraction")


def _figure(row: dict[str, Any]) -> float | None:
    task = task_by_name(row["task"])
    value = row["metrics"].get(task.metrics[0])
    return None if value is None else 100 * value


def reusable(row: dict[str, Any], *, name: str, seed: int, quick: bool, base_model: str | None,
             overrides: dict[str, Any], root: Path) -> tuple[bool, str]:
    """Whether a cached bench row is like for like with the run that would be made, and why not."""
    config = root / "configs" / f"{name}.yaml"
    task = task_by_name(name)
    if task.starts_from:  # its base model is the first stage's model of the same seed
        expected = str(root / "models" / "bench" / run_name(task.starts_from, quick=quick, seed=seed,
                                                               tag=base_model_tag(base_model)))
    else:
        expected = base_model if base_model is not None else RunConfig.from_yaml(config).base_model
    if row.get("task") != name or row.get("seed") != seed or bool(row.get("quick")) != quick:
        return False, "another task, seed or --quick"
    if "base_model" not in row and "config" not in row:  # the earliest rows: only the config's own base model
        if base_model is not None or task.starts_from:
            return False, "no base model recorded"
        return (not overrides, "no base model or config recorded" if not overrides else "no overrides recorded")
    if row.get("base_model") != expected:
        return False, f"base model {row.get('base_model')}, not {expected}"
    if "config" not in row:  # a row of an earlier medtune: neither config nor overrides recorded
        return (not overrides, "no config recorded" if not overrides else "no overrides recorded")
    if Path(row["config"]).resolve() != config.resolve():
        return False, f"config {row['config']}, not {config}"
    if (row.get("overrides") or {}) != overrides:
        return False, f"overrides {row.get('overrides')}, not {overrides}"
    if base_model is not None and row.get("base_model_pretraining") != base_model_pretraining(base_model):
        return False, "trained from another state of the adapted model (steps or date)"
    return True, ""


def _rows(tasks: list[str], seeds: list[int], *, quick: bool, base_model: str | None, reuse: bool,
          overrides: dict[str, Any], root: Path) -> list[dict[str, Any]]:
    rows = []
    tag = base_model_tag(base_model)
    for name in tasks:
        for seed in seeds:
            cached = root / "benchmarks" / "results" / (run_name(name, quick=quick, seed=seed, tag=tag) + ".json")
            if reuse and cached.is_file():
                row = json.loads(cached.read_text(encoding="utf-8"))
                ok, why = reusable(row, name=name, seed=seed, quick=quick, base_model=base_model,
                                   overrides=overrides, root=root)
                if ok:
                    rows.append({**row, "reused": True, "reused_unverified": "config" not in row})
                    continue
                print(f"not reusing {cached}: {why}", file=sys.stderr)
            got, _ = run([name], quick=quick, seeds=[seed], root=root, base_model=base_model, overrides=overrides)
            rows.extend(got)
    return rows


def compare(default: list[dict[str, Any]], adapted: list[dict[str, Any]], tasks: list[str]) -> dict[str, Any]:
    """Per task the two sides' means and the gain; ``missing`` names the tasks without a figure on a side
    (``default``, ``adapted`` or ``both``); the mean gain is over the NER and relation tasks in the macro
    average, and only over tasks with both sides."""
    out: dict[str, Any] = {"tasks": {}, "missing": {}}
    gains: list[float] = []
    for name in tasks:
        a = [f for f in (_figure(r) for r in default if r["task"] == name) if f is not None]
        b = [f for f in (_figure(r) for r in adapted if r["task"] == name) if f is not None]
        if not a or not b:
            out["missing"][name] = "both" if not a and not b else ("default" if not a else "adapted")
            continue
        task = task_by_name(name)
        states = [r.get("base_model_pretraining") for r in adapted if r["task"] == name]
        entry = {"kind": task.kind, "metric": task.metrics[0], "default": round(statistics.mean(a), 2),
                 "adapted": round(statistics.mean(b), 2), "default_seeds": a, "adapted_seeds": b,
                 "in_mean_gain": task.kind in GAIN_KINDS and task.in_macro,
                 "adapted_states": [s for i, s in enumerate(states) if s not in states[:i]]}
        entry["gain"] = round(entry["adapted"] - entry["default"], 2)
        out["tasks"][name] = entry
        if entry["in_mean_gain"]:
            gains.append(entry["gain"])
    out["mean_gain_ner_relation"] = round(statistics.mean(gains), 2) if gains else None
    return out


def _state(state: dict[str, Any] | None) -> str:
    if not state:
        return "-"
    done = "complete" if state.get("complete") else "UNFINISHED"
    return f"{state.get('steps')}/{state.get('max_steps')} steps, {done}, {state.get('date')}"


def pretraining_cost(adapted: str) -> dict[str, Any]:
    card_path = Path(resolve_base_model(adapted)) / "pretraining.json"
    if not card_path.is_file():
        return {"note": f"{card_path} not found"}
    card = json.loads(card_path.read_text(encoding="utf-8"))
    return {"tokens": card["corpus"].get("tokens"), "documents": card["corpus"].get("documents"),
            "excluded_test_ids": card["corpus"].get("excluded_test_ids"), "steps": card.get("steps"),
            "tokens_seen": card.get("tokens_seen"), "hours": card.get("hours"), "peak_rss_mb": card.get("peak_rss_mb"),
            "max_steps": card.get("max_steps"), "complete": card.get("complete"), "date": card.get("date"),
            "cpu": card.get("cpu"), "device": card.get("device"), "held_out_losses": card.get("held_out_losses"),
            "clinical_notes": card.get("clinical_notes")}


def markdown(result: dict[str, Any]) -> str:
    lines = []
    if result["quick"]:
        lines.append("*Quick smoke run on small slices for a few steps: these figures are not measurements.*\n")
    lines += [f"| task | type | metric | default ({result['default_base_model']}) | adapted ({result['adapted']}) "
              "| gain | seeds | adapted model (steps, date) |", "|---|---|---|---|---|---|---|---|"]
    for name, e in result["comparison"]["tasks"].items():
        mark = "" if e["in_mean_gain"] else " (not in the mean)"
        lines.append(f"| {name}{mark} | {e['kind']} | {e['metric']} | {e['default']:.2f} | {e['adapted']:.2f} | "
                     f"{e['gain']:+.2f} | {len(e['adapted_seeds'])} | "
                     f"{'; '.join(_state(s) for s in e['adapted_states']) or '-'} |")
    mean = result["comparison"]["mean_gain_ner_relation"]
    lines.append(f"| mean gain, NER and relation tasks | | | | | {'-' if mean is None else f'{mean:+.2f}'} | | |")
    for name, side in result["comparison"]["missing"].items():
        lines.append(f"\n**{name}: no figure on the {side} side{'s' if side == 'both' else ''}** (not compared).")
    if result.get("reused_unverified"):
        lines.append(f"\nReused rows of an earlier medtune (config not recorded): {', '.join(result['reused_unverified'])}.")
    if result.get("cpus"):
        lines.append(f"\nTrained on: default side {', '.join(result['cpus']['default'])}; adapted side "
                     f"{', '.join(result['cpus']['adapted'])}.")
    cost = result["pretraining"]
    if "tokens" in cost:
        lines.append(f"\nPretraining: {cost['tokens']} corpus tokens ({cost['documents']} documents, "
                     f"{cost['excluded_test_ids']} test ids excluded), {cost['steps']} steps, {cost['tokens_seen']} "
                     f"tokens seen, {cost['hours']} h, peak RSS {cost['peak_rss_mb']} MB on {cost['cpu']}.")
        lines.append(f"Adapted model: {_state(cost)}.")
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
    if args.max_steps and args.root.resolve() == ROOT.resolve():
        parser.error("--max-steps is a smoke run: give --root SCRATCH (a scratch folder with configs/), so that "
                     "its models and results do not take the ordinary <task>-seed<N> names here")
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    seeds = [int(s) for s in args.seeds.split(",")]
    overrides = {"training.max_steps": args.max_steps} if args.max_steps else {}
    start = time.perf_counter()
    common = {"quick": args.quick, "reuse": args.reuse, "overrides": overrides, "root": args.root}
    default = _rows(tasks, seeds, base_model=None, **common)
    adapted = _rows(tasks, seeds, base_model=args.adapted, **common)
    defaults = sorted({str(r.get("base_model") or "the config's") for r in default})
    result = {"date": time.strftime("%Y-%m-%d"), "quick": args.quick, "seeds": seeds,
              "default_base_model": ", ".join(defaults) or "default", "adapted": args.adapted,
              "overrides": overrides,
              "reused_unverified": sorted({f"{r['task']}-seed{r['seed']}" for r in default + adapted
                                           if r.get("reused_unverified")}),
              "cpus": {"default": sorted({str(r.get("cpu")) for r in default}),
                       "adapted": sorted({str(r.get("cpu")) for r in adapted})},
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
