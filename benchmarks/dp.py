"""Differentially private fine-tuning: what DP-SGD costs in accuracy, time and memory.

NCBI-disease NER (``configs/ncbi-disease.yaml``, whole abstracts in 128-token windows: the unit is one
abstract) and ADE-sentence classification (``configs/ade-classification.yaml``; the unit is one abstract,
``unit_field: pmid``, i.e. all of its sentences), each trained non-privately and at epsilon 1, 3 and 8,
with the same base model, epochs and data. Each run is a child process (its own peak RSS); per run:
train time and CPU time (the steadier figure on a shared machine: the whole ``train()`` call, dev
evaluation and the privacy plan included), documents per second and the ratios to the non-private run,
peak resident memory, dev and test F1, for private runs epsilon spent, delta, noise multiplier, steps, and
the membership-inference audit of each model (``dp_audit.py``: attack AUC and advantage on 500 train vs
500 test documents). Models are kept in ``runs/dp/TASK-epsN``. Results are written atomically to ``benchmarks/results/dp.json`` after
every run (a rerun replaces the file).

Private runs use Poisson sampling with an expected batch of ``--dp-batch-size`` units (DP-SGD needs large
batches) and ``--dp-learning-rate``; neither is tuned. The non-private runs use the shipped recipe.

    python benchmarks/dp.py                              # both tasks, non-private + eps 1, 3, 8 (hours)
    python benchmarks/dp.py --quick                      # a smoke run: 48 documents, 1 epoch, eps 8
    python benchmarks/dp_audit.py runs/dp/ner-*          # audit the kept models again (dp.py audits each)
    python benchmarks/dp.py --tasks ner --epsilons 3,8 --max-train-docs 200 --epochs 2
    python benchmarks/dp.py --tasks ner --head-only --dp-learning-rate 5e-2 --base-model models/bc5cdr-disease
                                                        # every run starts from an encoder tuned on public data
    python benchmarks/dp.py --tasks classification --no-baseline --epsilons 8 --unit document \
        --dp-batch-size 256                             # one sentence = one unit

``--unit document`` makes each document (an ADE sentence) its own privacy unit instead of the task's
(the abstract): a weaker guarantee (an abstract's sentences are protected one by one), far more units,
so more and less noisy steps for the same epsilon. (Class weights counted over the training data are
refused under DP: the counts are not private.) Classification runs decide with ``model.decision:
dev_threshold`` unless ``--decision argmax``: under DP-SGD every sentence's ADE probability sinks (each
unit's clipped gradient weighs the same, and four in five are noADE), so argmax finds no ADE sentence
from models that still rank them (``benchmarks/decision_threshold.py`` measures both on kept models).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _env import RESULTS, ROOT  # noqa: E402  (sets up paths and offline mode)

TASKS = {  # shipped config, the labels a private run must be given, extra privacy settings
    "ner": ("configs/ncbi-disease.yaml", {"model.labels": ["Disease"]}, {}),
    "classification": ("configs/ade-classification.yaml", {"model.labels": ["ADE", "noADE"],
                                                           "model.multi_label": False}, {"unit_field": "pmid"}),
}


def run_config(spec: dict[str, Any]) -> tuple[Any, str]:
    """The training config of one run and the name of its model directory."""
    from medtune.config import RunConfig

    config_path, fixed, privacy = TASKS[spec["task"]]
    overrides: dict[str, Any] = {"training.epochs": spec["epochs"], "training.progress_bar": False,
                                 "training.logging_steps": 1000}
    if spec.get("base_model"):
        overrides["base_model"] = spec["base_model"]
    if spec["max_train_docs"]:
        overrides["data.max_train_docs"] = spec["max_train_docs"]
    if spec["max_eval_docs"]:
        overrides["data.max_eval_docs"] = spec["max_eval_docs"]
    if spec["epsilon"] is not None:
        overrides.update(fixed)
        overrides["training.batch_size"] = spec["dp_batch_size"]
        overrides["training.learning_rate"] = spec["dp_learning_rate"]
        overrides["privacy"] = {"dp": {"epsilon": spec["epsilon"], "accountant": spec["accountant"],
                                       "max_grad_norm": spec["max_grad_norm"], **privacy}}
    if spec["physical_batch_size"] and spec["epsilon"] is not None:
        overrides["privacy"]["dp"]["physical_batch_size"] = spec["physical_batch_size"]
    if spec.get("head_only") and spec["epsilon"] is not None:
        overrides["privacy"]["dp"]["head_only"] = True
    if spec.get("top_layers") and spec["epsilon"] is not None:
        overrides["privacy"]["dp"]["train_top_layers"] = spec["top_layers"]
    if spec.get("unit") == "document" and spec["epsilon"] is not None:
        overrides["privacy"]["dp"].pop("unit_field", None)
    if spec["task"] == "classification" and spec.get("decision", "argmax") != "argmax":
        overrides["model.decision"] = spec["decision"]  # both sides alike: the private one and the baseline
    config = RunConfig.from_yaml(ROOT / config_path, overrides=overrides)
    name = f"{spec['task']}-" + (f"eps{spec['epsilon']:g}" if spec["epsilon"] is not None else "non-private")
    if spec.get("head_only") and spec["epsilon"] is not None:
        name += "-head"
    if spec.get("top_layers") and spec["epsilon"] is not None:
        name += f"-top{spec['top_layers']}"
    if spec.get("unit") == "document" and spec["epsilon"] is not None:
        name += "-per-document"
    return config, name


def run_one(spec: dict[str, Any]) -> dict[str, Any]:
    """Train one run in this process (the child) and return its figures."""
    import time

    from dp_audit import audit

    from medtune.training import train

    config, name = run_config(spec)
    with tempfile.TemporaryDirectory(prefix="medtune-dp-") as tmp:
        out_dir = Path(spec["models_dir"]) / name if spec["models_dir"] else Path(tmp) / name
        start, cpu_start = time.perf_counter(), time.process_time()
        result = train(config, out_dir, overwrite=True)
        total, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        audited = audit(out_dir, "test", spec["audit_docs"], 0) if spec["audit_docs"] else None
    m = result.metrics
    train = m["train"]
    out = {"task": spec["task"], "epsilon_target": spec["epsilon"], "private": spec["epsilon"] is not None,
           "batch_size": config.training.batch_size, "learning_rate": config.training.learning_rate,
           "epochs": config.training.epochs, "base_model": config.base_model, "head_only": bool(spec.get("head_only")),
           "train_top_layers": spec.get("top_layers"),
           "decision": getattr(config.model, "decision", None),
           "train_runtime_s": train["runtime_s"], "total_s": round(total, 1),
           "cpu_s": round(cpu, 1),
           "documents": train["documents"], "windows": train["windows"],
           "documents_per_second": round(train["documents"] * float(train["epochs"] or 0) / max(train["runtime_s"], 1e-9), 3),
           "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
           "bf16": train["bf16"], "threads": train["threads"], "cpu": train["cpu"],
           "dev_f1": (m.get("dev") or {}).get("f1"), "test_f1": (m.get("test") or {}).get("f1")}
    if "privacy" in m:
        p = m["privacy"]
        out.update({k: p[k] for k in ("epsilon_spent", "delta", "noise_multiplier", "sample_rate", "steps",
                                      "planned_steps", "stopped_by_budget", "units", "unit", "max_grad_norm",
                                      "accountant")})
    if audited:
        out["audit"] = {k: audited[k] for k in ("auc", "advantage", "tpr_at_1pct_fpr", "members", "non_members",
                                                "dp_advantage_bound")}
    if spec["models_dir"]:
        out["model_dir"] = str(out_dir)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="ner,classification", help="ner, classification or both")
    parser.add_argument("--epsilons", default="1,3,8", help="target epsilons of the private runs")
    parser.add_argument("--no-baseline", action="store_true", help="skip the non-private runs")
    parser.add_argument("--epochs", type=float, default=None, help="epochs of every run (default: the config's)")
    parser.add_argument("--max-train-docs", type=int, default=None, help="only the first N training documents")
    parser.add_argument("--max-eval-docs", type=int, default=None, help="only the first N dev/test documents")
    parser.add_argument("--dp-batch-size", type=int, default=64, help="expected batch of a private run (units)")
    parser.add_argument("--dp-learning-rate", type=float, default=5e-4)
    parser.add_argument("--max-grad-norm", type=float, default=1.0)
    parser.add_argument("--accountant", default="prv", choices=["prv", "rdp"])
    parser.add_argument("--physical-batch-size", type=int, default=64,
                        help="most windows per forward pass of a private run (memory); 0 = no limit")
    parser.add_argument("--head-only", action="store_true",
                        help="private runs train the task head only (privacy.dp.head_only)")
    parser.add_argument("--top-layers", type=int, default=None,
                        help="private runs train the head and the top N layers only (privacy.dp.train_top_layers)")
    parser.add_argument("--unit", default="task", choices=["task", "document"],
                        help="privacy unit of the private runs: the task's (an abstract) or each document")
    parser.add_argument("--decision", default="dev_threshold", choices=["argmax", "dev_threshold"],
                        help="classification, every run: argmax, or a cut on ADE's probability tuned on dev "
                        "(model.decision; DP-SGD's clipping pushes the minority label's scores down as a whole)")
    parser.add_argument("--base-model", default=None,
                        help="every run (non-private too) starts from this encoder: a hub name, or a model trained "
                        "by `medtune train` on public data (its encoder; the head is left behind)")
    parser.add_argument("--models-dir", default=None,
                        help="keep each model as DIR/TASK-epsN (default runs/dp; --quick: discarded; '' discards)")
    parser.add_argument("--audit-docs", type=int, default=500,
                        help="membership-inference audit (dp_audit.py) of each model on N train / N test documents; 0 = none")
    parser.add_argument("--quick", action="store_true",
                        help="48 training documents, 1 epoch, epsilon 8 only, no audit; writes dp-quick.json")
    parser.add_argument("--output", type=Path, default=None, help="default benchmarks/results/dp.json")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # child mode: a JSON run spec
    args = parser.parse_args()
    if args.one:
        print("DPRESULT " + json.dumps(run_one(json.loads(args.one))), flush=True)
        return
    if args.quick:
        args.max_train_docs, args.max_eval_docs = args.max_train_docs or 48, args.max_eval_docs or 24
        args.epochs, args.epsilons = args.epochs or 1, "8"
        args.dp_batch_size, args.audit_docs = min(args.dp_batch_size, 16), 0
        args.models_dir = "" if args.models_dir is None else args.models_dir
    args.models_dir = "runs/dp" if args.models_dir is None else args.models_dir
    args.output = args.output or RESULTS / ("dp-quick.json" if args.quick else "dp.json")
    epsilons = [float(e) for e in args.epsilons.split(",") if e.strip()]
    results: dict[str, Any] = {
        "benchmark": "benchmarks/dp.py", "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv), "runs": []}
    from medtune.fileutils import atomic_write

    for task in [t.strip() for t in args.tasks.split(",") if t.strip()]:
        baseline = None
        for epsilon in ([] if args.no_baseline else [None]) + epsilons:
            spec = {"task": task, "epsilon": epsilon, "epochs": args.epochs or _config_epochs(task),
                    "max_train_docs": args.max_train_docs, "max_eval_docs": args.max_eval_docs,
                    "dp_batch_size": args.dp_batch_size, "dp_learning_rate": args.dp_learning_rate,
                    "max_grad_norm": args.max_grad_norm, "accountant": args.accountant,
                    "physical_batch_size": args.physical_batch_size, "models_dir": args.models_dir,
                    "head_only": args.head_only, "top_layers": args.top_layers, "unit": args.unit, "decision": args.decision,
                    "audit_docs": args.audit_docs, "base_model": args.base_model}
            print(f"[dp] {task} epsilon={epsilon if epsilon is not None else 'inf (non-private)'}", flush=True)
            child = subprocess.run([sys.executable, __file__, "--one", json.dumps(spec)], capture_output=True,
                                   text=True, check=False)
            line = next((l for l in child.stdout.splitlines() if l.startswith("DPRESULT ")), None)
            if child.returncode != 0 or line is None:
                sys.stderr.write(child.stderr[-4000:])
                raise SystemExit(f"[dp] the run {task} epsilon={epsilon} failed (exit {child.returncode})")
            run = json.loads(line[len("DPRESULT "):])
            if epsilon is None:
                baseline = run
            elif baseline is not None:
                run["time_ratio_to_non_private"] = round(run["train_runtime_s"] / max(baseline["train_runtime_s"], 1e-9), 2)
                run["per_document_cost_ratio"] = round(
                    baseline["documents_per_second"] / max(run["documents_per_second"], 1e-9), 2)
                run["cpu_ratio_to_non_private"] = round(run["cpu_s"] / max(baseline["cpu_s"], 1e-9), 2)
            results["runs"].append(run)
            print(f"[dp]   {json.dumps(run)}", flush=True)
            args.output.parent.mkdir(parents=True, exist_ok=True)
            with atomic_write(args.output) as handle:
                json.dump(results, handle, indent=2)
    print(f"[dp] wrote {args.output}")


def _config_epochs(task: str) -> float:
    import yaml

    return float(yaml.safe_load((ROOT / TASKS[task][0]).read_text(encoding="utf-8"))["training"]["epochs"])


if __name__ == "__main__":
    main()
