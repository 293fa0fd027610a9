"""The accuracy suite: train and evaluate the shipped configs, set the figures beside BLURB's anchors.

``medtune bench [--quick] [--tasks ncbi-disease,hoc]`` trains each task's shipped config with the
default base model, evaluates it on the test split, writes ``benchmarks/results/<task>.json`` and a
markdown table. ``--quick`` trains on a small slice for a few steps: a smoke test of the whole suite,
not a measurement. A quick run keeps the corpus's label set (taken from the full training split, as a
full run sees it), so that a slice that lacks a rare label still trains a model that knows it.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medtune.config import RunConfig
from medtune.data import load_split
from medtune.errors import ConfigError, MedtuneError
from medtune.fileutils import atomic_write
from medtune.models.encoder import BUILT_BASE_MODELS, models_dir, pretraining_status, resolve_base_model
from medtune.runtime import cpu_name
from medtune.tasks.registry import task_class
from medtune.training import train

#: The quick run's slice and steps.
QUICK_OVERRIDES: dict[str, Any] = {"data.max_train_docs": 64, "data.max_eval_docs": 32, "training.max_steps": 8,
                                   "training.batch_size": 8, "training.eval_every_epoch": False}


@dataclass(frozen=True)
class BenchTask:
    name: str  # shipped config and named corpus
    kind: str  # BLURB task type, for the macro average
    metrics: tuple[str, ...]  # keys of the evaluation result shown in the table
    bert: float | None = None  # BLURB Table 6, BERT-base uncased
    pubmedbert: float | None = None  # BLURB Table 6, PubMedBERT
    split_note: str = ""
    starts_from: str | None = None  # a bench task whose model (same seed) is this one's base_model
    in_macro: bool = True  # counted in the BLURB-style macro average


# Gu et al. 2021 (BLURB), Table 6. PubMedQA anchors are accuracy.
TASKS: tuple[BenchTask, ...] = (
    BenchTask("bc5cdr-chem", "NER", ("f1",), 89.25, 93.33),
    BenchTask("bc5cdr-disease", "NER", ("f1",), 81.44, 85.62),
    BenchTask("ncbi-disease", "NER", ("f1",), 85.67, 87.82),
    BenchTask("ncbi-disease-transfer", "NER", ("f1",), 85.67, 87.82,
              "NCBI-disease after BC5CDR-disease (intermediate task, same model); not in the macro average",
              starts_from="bc5cdr-disease", in_macro=False),
    BenchTask("bc2gm", "NER", ("f1",), 80.90, 84.52, "MTL-2016 split (devel cut from train), as BLURB"),
    BenchTask("chemprot", "relation extraction", ("f1",), 71.86, 77.24),
    BenchTask("gad", "relation extraction", ("f1",), 80.41, 83.96,
              "BioBERT fold 1; our dev is 10 % of train (upstream dev == test)"),
    BenchTask("hoc", "document classification", ("f1",), 80.20, 82.32,
              "abstract level, our deterministic PMID split (BLURB uses its own split)"),
    BenchTask("pubmedqa", "question answering", ("accuracy", "macro_f1"), 51.62, 55.84),
    BenchTask("pubmedqa-long-answer", "question answering", ("accuracy", "macro_f1"),
              split_note="first stage of pubmedqa-transfer (question + conclusion); no test split",
              in_macro=False),
    BenchTask("pubmedqa-transfer", "question answering", ("accuracy", "macro_f1"), 51.62, 55.84,
              "PubMedQA after the reasoning-free stage on the training questions' conclusions (same model); "
              "not in the macro average", starts_from="pubmedqa-long-answer", in_macro=False),
    BenchTask("nicta-piboso", "sentence classification", ("accuracy", "macro_f1")),
    BenchTask("ade-classification", "sentence classification", ("f1",), split_note="our PMID split; not in BLURB"),
)
BLURB_KINDS = ("NER", "relation extraction", "document classification", "question answering")


def task_by_name(name: str) -> BenchTask:
    for task in TASKS:
        if task.name == name:
            return task

    raise ConfigError(f"unknown benchmark task '{name}'", fix=f"use any of: {', '.join(t.name for t in TASKS)}")


def corpus_label_options(cfg: Any) -> dict[str, Any]:
    """The ``model:`` options that fix a run's label set, as a run on the full training split sets them.

    ``labels`` (and, where the config leaves them to the data, ``multi_label`` and ``relation_schema``)
    from the task's own rule applied to the whole training split, not to a ``data.max_train_docs``
    slice; options the config sets are kept.
    """
    if cfg.model.labels is not None:
        return {}
    full = load_split(cfg.data.model_copy(update={"max_train_docs": None}), "train") or []
    meta = task_class(cfg.task).meta_from_config(cfg, full)
    out: dict[str, Any] = {"labels": list(meta["labels"])}
    fields = type(cfg.model).model_fields
    if "multi_label" in fields and cfg.model.multi_label is None and "multi_label" in meta:
        out["multi_label"] = bool(meta["multi_label"])
    if "relation_schema" in fields and cfg.model.relation_schema is None and "schema" in meta:
        symmetric = set(meta.get("symmetric") or ())
        out["relation_schema"] = [tuple(t) + (("symmetric",) if t[2] in symmetric else ()) for t in meta["schema"]]
    return out


def base_model_tag(base_model: str | None) -> str:
    """The suffix of result and model names trained from another base model ('' for the default).

    A base model built here (``medtune-minilm-med``), by its name or its directory in
    ``$MEDTUNE_MODELS_DIR``, is ``-<name>``; any other directory or hub id adds a short hash of its
    resolved path (``-<last component>-<6 hex>``), so that two folders of one name do not share results.
    """
    if base_model is None:
        return ""
    name = Path(base_model.rstrip("/")).name or "base"
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    if base_model in BUILT_BASE_MODELS:
        return "-" + safe
    resolved = Path(base_model).expanduser().resolve()
    if name in BUILT_BASE_MODELS and resolved == (models_dir() / name).resolve():
        return "-" + safe
    where = str(resolved) if Path(base_model).expanduser().exists() else base_model
    return f"-{safe}-{hashlib.blake2b(where.encode(), digest_size=3).hexdigest()}"


def base_model_pretraining(base_model: str | None) -> dict[str, Any] | None:
    """``{steps, max_steps, complete, date}`` of a base model written by ``medtune pretrain`` (None otherwise)."""
    if base_model is None:
        return None
    try:
        return pretraining_status(resolve_base_model(base_model))
    except MedtuneError:
        return None


def run_name(task_name: str, *, quick: bool, seed: int, tag: str = "") -> str:
    return f"{task_name}-quick{tag}" if quick else f"{task_name}-seed{seed}{tag}"


def run_task(task: BenchTask, *, quick: bool, seed: int, configs: Path, models: Path,
             results: Path, overrides: dict[str, Any] | None = None, tag: str = "") -> dict[str, Any]:
    """Train and evaluate one task; ``overrides`` (dotted config keys) apply to every stage; ``tag``
    suffixes the model and result names (runs from another ``base_model``)."""

    settings: dict[str, Any] = {"training.seed": seed, "training.progress_bar": False}
    if quick:
        settings.update(QUICK_OVERRIDES)
    settings.update(overrides or {})
    out = models / run_name(task.name, quick=quick, seed=seed, tag=tag)
    if task.starts_from:  # the first stage, trained with the same seed unless already there
        first = task_by_name(task.starts_from)
        first_dir = models / run_name(first.name, quick=quick, seed=seed, tag=tag)
        if not (first_dir / "config.json").exists():
            run_task(first, quick=quick, seed=seed, configs=configs, models=models, results=results,
                     overrides=overrides, tag=tag)
        settings["base_model"] = str(first_dir)
    cfg = RunConfig.from_yaml(configs / f"{task.name}.yaml", settings)
    if quick:  # the slice keeps the corpus's label set (a rare label may be missing from it)
        for key, value in corpus_label_options(cfg).items():
            setattr(cfg.model, key, value)
    start = time.perf_counter()
    result = train(cfg, out, overwrite=True)
    test = result.metrics.get("test", {})  # a first stage may have no test split
    row = {
        "task": task.name, "kind": task.kind, "seed": seed, "quick": quick, "model_dir": str(out),
        "date": time.strftime("%Y-%m-%d"), "cpu": cpu_name(), "wall_s": round(time.perf_counter() - start, 1),
        "train_runtime_s": round(result.train_runtime, 1),
        "metrics": {k: test[k] for k in task.metrics if k in test},
        "test": test, "dev_f1": result.metrics.get("dev", {}).get("f1"),
        "anchors": {"bert_base": task.bert, "pubmedbert": task.pubmedbert}, "split_note": task.split_note,
        "base_model": cfg.base_model, "config": str(configs / f"{task.name}.yaml"),
        "overrides": {k: v for k, v in (overrides or {}).items() if k != "base_model"},
        "base_model_pretraining": base_model_pretraining((overrides or {}).get("base_model", cfg.base_model)),
    }
    results.mkdir(parents=True, exist_ok=True)
    with atomic_write(results / (run_name(task.name, quick=quick, seed=seed, tag=tag) + ".json")) as handle:
        json.dump(row, handle, indent=2)
    return row


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown table: our figure beside the BLURB anchors, plus BLURB-style macro averages by task type."""
    lines = ["| task | type | metric | medtune (MiniLM-L6, 22M) | BERT-base | PubMedBERT | note |",
             "|---|---|---|---|---|---|---|"]
    by_kind: dict[str, list[tuple[float, float | None, float | None]]] = {}
    for row in rows:
        task = task_by_name(row["task"])
        first = task.metrics[0]
        if first not in row["metrics"]:  # a first stage without a test split
            continue
        ours = 100 * row["metrics"][first]
        extra = "".join(f"; {k} {100 * row['metrics'][k]:.2f}" for k in task.metrics[1:] if k in row["metrics"])
        lines.append(f"| {task.name} | {task.kind} | {first} | {ours:.2f}{extra} | "
                     f"{task.bert if task.bert is not None else '-'} | "
                     f"{task.pubmedbert if task.pubmedbert is not None else '-'} | {task.split_note} |")
        if task.kind in BLURB_KINDS and task.in_macro:
            by_kind.setdefault(task.kind, []).append((ours, task.bert, task.pubmedbert))
    if by_kind:
        def macro(i: int) -> str:
            vals = [sum(x[i] for x in v) / len(v) for v in by_kind.values() if all(x[i] is not None for x in v)]
            return f"{sum(vals) / len(vals):.2f}" if len(vals) == len(by_kind) else "-"

        lines.append(f"| macro over task types ({', '.join(by_kind)}) | | | {macro(0)} | {macro(1)} | "
                     f"{macro(2)} | average of per-type means, as BLURB |")
    if any(row.get("quick") for row in rows):
        lines.insert(0, "*Quick smoke run on small slices for a few steps: these figures are not measurements.*\n")
    return "\n".join(lines)


def run(tasks: list[str] | None = None, *, quick: bool = False, seeds: list[int] | None = None,
        root: Path = Path("."), base_model: str | None = None,
        overrides: dict[str, Any] | None = None) -> tuple[list[dict[str, Any]], str]:
    """Every selected task and seed; ``base_model`` (a directory or a built name such as
    medtune-minilm-med) replaces each config's base model, and names the results after it."""
    selected = [task_by_name(n) for n in tasks] if tasks else list(TASKS)
    extra = dict(overrides or {})
    if base_model is not None:
        extra["base_model"] = base_model
    rows = []
    for task in selected:
        for seed in seeds or [42]:
            rows.append(run_task(task, quick=quick, seed=seed, configs=root / "configs",
                                 models=root / "models" / "bench", results=root / "benchmarks" / "results",
                                 overrides=extra, tag=base_model_tag(base_model)))
    return rows, table(rows)
