"""Training speed: medtune against a plain Hugging Face Trainer baseline, in one process and one run.

Both train the same model (the default MiniLM) on the same data (NCBI-disease IOB sentences from
mtl_ner), for the same epochs, batch size and learning rate. The baseline is the run_ner recipe:
fp32, first sub-token labelled, DataCollatorForTokenClassification (padding to the longest in a random
batch), no length grouping. medtune uses its defaults: length-grouped batches with dynamic padding,
bf16 autocast where the CPU has native bf16, and glibc malloc thresholds that keep large freed blocks
for reuse (``medtune.runtime``). ``--ablation`` also runs medtune with each lever off. Printed: samples/s of each and their ratio, peak resident
memory during each phase, and the test strict F1 of each (seqeval strict IOB2 for the baseline, strict
character-span F1 for medtune, which are equal on IOB data; see tests/test_metrics.py).

    python benchmarks/train_speed.py [--epochs 3] [--batch-size 32] [--lr 1e-4] [--quick] [--ablation]
                                     [--seeds 42,43,44]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from medtune.fileutils import atomic_write  # noqa: E402
from medtune.io.conll import read_conll  # noqa: E402
from medtune.runtime import cpu_name  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


class PeakRSS:
    """Samples this process's resident memory in a thread; ``peak`` is the maximum seen (MiB)."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval, self.peak, self._stop = interval, 0.0, threading.Event()
        self._proc = psutil.Process()

    def __enter__(self) -> "PeakRSS":
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss / 2**20)
            time.sleep(self.interval)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss / 2**20)


def corpus(data_dir: Path, split: str, limit: int | None):
    path = data_dir / "mtl_ner" / "NCBI-disease-IOB" / f"{split}.tsv"
    docs = list(read_conll(path))
    return docs[:limit] if limit else docs


def baseline(base: str, train_docs, test_docs, args) -> dict:
    """The run_ner.py recipe with the HF Trainer, fp32, no length grouping."""
    from seqeval.metrics import f1_score
    from seqeval.scheme import IOB2
    from transformers import (AutoModelForTokenClassification, AutoTokenizer, DataCollatorForTokenClassification,
                              Trainer, TrainingArguments)

    from medtune.io.conll import tags_from_spans

    tokenizer = AutoTokenizer.from_pretrained(base)
    labels = ["O", "B-Disease", "I-Disease"]
    l2i = {lab: i for i, lab in enumerate(labels)}

    def rows(docs):
        out = []
        for d in docs:
            toks = d.metadata["tokens"]
            words = [d.text[a:b] for a, b in toks]
            tags = tags_from_spans(d, toks)
            enc = tokenizer(words, is_split_into_words=True, truncation=True, max_length=args.max_length)
            lab, prev = [], None
            for w in enc.word_ids():
                lab.append(-100 if w is None or w == prev else l2i[tags[w]])
                prev = w
            out.append({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": lab})
        return out

    train_rows, test_rows = rows(train_docs), rows(test_docs)
    torch.manual_seed(args.seed)
    model = AutoModelForTokenClassification.from_pretrained(
        base, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=l2i)
    with tempfile.TemporaryDirectory() as tmp:
        targs = TrainingArguments(output_dir=tmp, num_train_epochs=args.epochs, learning_rate=args.lr,
                                  per_device_train_batch_size=args.batch_size, per_device_eval_batch_size=64,
                                  seed=args.seed, use_cpu=True, save_strategy="no", eval_strategy="no",
                                  report_to="none", disable_tqdm=True, logging_steps=10_000)
        trainer = Trainer(model=model, args=targs, train_dataset=train_rows,
                          data_collator=DataCollatorForTokenClassification(tokenizer))
        with PeakRSS() as mem:
            out = trainer.train()
        pred = trainer.predict(test_rows)
    y_true, y_pred = [], []
    for row, logits in zip(test_rows, pred.predictions):
        t, p = [], []
        for k, lab in enumerate(row["labels"]):
            if lab != -100:
                t.append(labels[lab])
                p.append(labels[int(logits[k].argmax())])
        y_true.append(t)
        y_pred.append(p)
    return {"samples_per_second": out.metrics["train_samples_per_second"], "runtime_s": out.metrics["train_runtime"],
            "peak_rss_mib": round(mem.peak), "test_f1": f1_score(y_true, y_pred, mode="strict", scheme=IOB2)}


def medtune_run(base: str, data_dir: Path, args, bf16: str, group: bool, malloc: bool = True) -> dict:
    from medtune.config import RunConfig
    from medtune.training import train

    folder = data_dir / "mtl_ner" / "NCBI-disease-IOB"
    cfg = RunConfig.from_dict({
        "task": "ner", "base_model": base,
        "data": {"train": str(folder / "train.tsv"), "test": str(folder / "test.tsv"), "format": "conll",
                 "max_train_docs": args.limit, "max_eval_docs": args.limit},
        "model": {"max_length": args.max_length, "stride": 16},
        "training": {"epochs": args.epochs, "learning_rate": args.lr, "batch_size": args.batch_size,
                     "warmup_ratio": 0.0, "weight_decay": 0.0, "bf16": bf16, "group_by_length": group,
                     "early_stopping_patience": None, "eval_every_epoch": False, "progress_bar": False,
                     "seed": args.seed, "logging_steps": 10_000, "malloc_tuning": malloc},
    })
    with tempfile.TemporaryDirectory() as tmp, PeakRSS() as mem:
        result = train(cfg, Path(tmp) / "model")
    return {"samples_per_second": result.train_samples_per_second, "runtime_s": round(result.train_runtime, 1),
            "peak_rss_mib": round(mem.peak), "test_f1": result.metrics["test"]["f1"], "bf16": bf16,
            "group_by_length": group, "malloc_tuning": malloc}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=float, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--seeds", default=None,
                        help="comma-separated seeds: run baseline and medtune once per seed and report the mean "
                             "and sample std of each and of their F1 difference (overrides --seed)")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N sentences of each split")
    parser.add_argument("--quick", action="store_true", help="500 sentences, 1 epoch: a smoke run")
    parser.add_argument("--ablation", action="store_true", help="also run medtune with each lever alone")
    parser.add_argument("--runs", default=None,
                        help=f"comma-separated subset of {','.join(RUNS)} to run (default: the baseline and "
                             "medtune, plus the ablation rows with --ablation)")
    args = parser.parse_args()
    if args.quick:
        args.limit, args.epochs = args.limit or 500, 1
    if args.runs:
        args.selected = [r.strip() for r in args.runs.split(",")]
        unknown = [r for r in args.selected if r not in RUNS]
        if unknown:
            parser.error(f"unknown run(s) {unknown}; choose from {', '.join(RUNS)}")
    else:
        args.selected = ["hf_trainer_baseline", "medtune"] + (
            ["medtune_default_allocator", "medtune_fp32_grouped", "medtune_bf16_ungrouped"] if args.ablation else [])
    from medtune.models.encoder import resolve_base_model

    data_dir = Path(os.environ.get("MEDTUNE_DATA_DIR", "../shared/data"))
    base = resolve_base_model("default")
    train_docs = corpus(data_dir, "train", args.limit)
    test_docs = corpus(data_dir, "test", args.limit)
    print(f"CPU: {cpu_name()}, {torch.get_num_threads()} threads; {len(train_docs)} train sentences, "
          f"{args.epochs} epochs, batch {args.batch_size}, lr {args.lr}", flush=True)
    seeds = [int(x) for x in args.seeds.split(",")] if args.seeds else [args.seed]
    per_seed = {}
    for seed in seeds:
        args.seed = seed
        per_seed[str(seed)] = one_seed(base, data_dir, train_docs, test_docs, args)
    runs = per_seed[str(seeds[0])]
    compared = {"medtune", "hf_trainer_baseline"} <= set(runs)
    f1_gap = (runs["medtune"]["test_f1"] - runs["hf_trainer_baseline"]["test_f1"]) * 100 if compared else None
    summary = None
    if len(seeds) > 1:
        summary = summarise(per_seed)
        print(f"\nover seeds {args.seeds}:\n| run | samples/s (mean) | test F1 mean ± std |\n|---|---|---|")
        for name, row in summary["runs"].items():
            print(f"| {name} | {row['samples_per_second']:.1f} | {row['test_f1_mean']:.4f} ± {row['test_f1_std']:.4f} |")
        if compared:
            f1_gap = summary["f1_gap_points_mean"]
            print(f"F1 difference per seed (points): {summary['f1_gap_points']}; mean {f1_gap:+.2f} "
                  f"± {summary['f1_gap_points_std']:.2f}")
    if compared:
        print(f"\nmedtune / baseline: {runs['medtune']['ratio_vs_baseline']:.2f}x samples/s; "
              f"test F1 difference {f1_gap:+.2f} points{' (mean over seeds)' if summary else ''} "
              f"(target: >= 1.5x and >= -0.3 points)")
    RESULTS.mkdir(exist_ok=True)
    name = "train_speed_quick.json" if args.quick else ("train_speed_seeds.json" if summary else "train_speed.json")
    if args.runs and not args.quick:
        name = name.replace(".json", "_" + "_".join(args.selected) + ".json")
    with atomic_write(RESULTS / name) as handle:
        json.dump({"date": time.strftime("%Y-%m-%d"), "cpu": cpu_name(), "threads": torch.get_num_threads(),
                   "args": vars(args), "runs": runs, "per_seed": per_seed, "summary": summary}, handle, indent=2)


def one_seed(base: str, data_dir: Path, train_docs, test_docs, args) -> dict:
    """The chosen runs (``RUNS`` order) with ``args.seed``; prints their table."""
    print(f"seed {args.seed}", flush=True)
    runs = {}
    for name in RUNS:  # the default-allocator row first: the tuned setting lasts for the rest of the process
        if name not in args.selected:
            continue
        if name == "hf_trainer_baseline":
            runs[name] = baseline(base, train_docs, test_docs, args)
        else:
            bf16, group, malloc = RUNS[name]
            runs[name] = medtune_run(base, data_dir, args, bf16, group, malloc=malloc)
        print(f"{name}:", runs[name], flush=True)
    base_sps = runs["hf_trainer_baseline"]["samples_per_second"] if "hf_trainer_baseline" in runs else None
    print("\n| run | samples/s | ratio | peak RSS MiB | test F1 |\n|---|---|---|---|---|")
    for name, r in runs.items():
        r["test_f1"] = float(r["test_f1"])
        r["ratio_vs_baseline"] = round(r["samples_per_second"] / base_sps, 2) if base_sps else None
        ratio = f"{r['ratio_vs_baseline']:.2f}" if base_sps else "-"
        print(f"| {name} | {r['samples_per_second']:.1f} | {ratio} | {r['peak_rss_mib']} | "
              f"{r['test_f1']:.4f} |", flush=True)
    return runs


#: run name -> (bf16, group_by_length, malloc_tuning) of a medtune run; None for the HF baseline
RUNS: dict[str, tuple[str, bool, bool] | None] = {
    "hf_trainer_baseline": None,
    "medtune_default_allocator": ("auto", True, False),
    "medtune": ("auto", True, True),
    "medtune_fp32_grouped": ("false", True, True),
    "medtune_bf16_ungrouped": ("true", False, True),
}


def summarise(per_seed: dict) -> dict:
    """Mean and sample std per run over seeds, and of medtune's F1 difference to the baseline (points)."""
    from statistics import mean, stdev

    names = list(next(iter(per_seed.values())))
    rows = {}
    for name in names:
        f1s = [runs[name]["test_f1"] for runs in per_seed.values()]
        rows[name] = {"samples_per_second": mean(runs[name]["samples_per_second"] for runs in per_seed.values()),
                      "test_f1_mean": mean(f1s), "test_f1_std": stdev(f1s), "test_f1": f1s}
    if not {"medtune", "hf_trainer_baseline"} <= set(names):
        return {"runs": rows}
    gaps = [round((runs["medtune"]["test_f1"] - runs["hf_trainer_baseline"]["test_f1"]) * 100, 2)
            for runs in per_seed.values()]
    return {"runs": rows, "f1_gap_points": gaps, "f1_gap_points_mean": mean(gaps), "f1_gap_points_std": stdev(gaps)}

if __name__ == "__main__":
    main()
