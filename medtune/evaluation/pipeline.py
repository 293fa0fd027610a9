"""Evaluate a whole pipeline on gold data: ``medtune evaluate PIPELINE.yaml --data NAME``.

What is measured depends on the data's task:

* relation data (``ade``, ``bc5cdr-cid``): the pipeline runs end to end on the bare text; the
  headline ``f1`` is the end-to-end relation F1 (strict spans, types and relation label; for
  document-level corpora the id-pair F1), beside entity F1 and, per layer, what the pipeline gave.
* linking data (``*-linking``): the pipeline's linking component for each gold type runs on the
  gold mentions; headline ``accuracy`` (accuracy@1) with ``ceiling`` (share of gold ids in the
  vocabulary).
* assertion data (``negex``, ``assertion``): the assertion component runs on the gold concepts;
  headline ``f1`` = F1 of the negated class, with temporality and experiencer accuracy when gold has them.
* NER data: the pipeline's NER components on the bare text; strict span F1.
* PHI data (NER data, e.g. ``physionet-deid``) and a pipeline with a ``deid`` component: the spans
  that component's detector (:class:`medtune.deid.detect.PhiDetector`, built from its config) finds
  on the original text, scored by :func:`medtune.deid.evaluate.deid_metrics`: headline ``recall`` and
  ``precision`` are binary token figures, with per-type recall and strict / lenient entity scores.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from medtune import datasets
from medtune.assertion.metrics import assertion_report
from medtune.data import resolve_documents
from medtune.deid.detect import PhiDetector
from medtune.deid.evaluate import deid_metrics, target_report
from medtune.document import Document
from medtune.errors import ConfigError, DatasetNotFoundError
from medtune.evaluation.metrics import (
    id_relation_metrics,
    relation_errors,
    relation_metrics,
    span_counts,
    span_metrics,
)
from medtune.fileutils import atomic_write
from medtune.linking.evaluate import linking_report
from medtune.pipeline import Pipeline
from medtune.trust.bootstrap import DEFAULT_RESAMPLES, bootstrap_counts
from medtune.trust.groups import group_report, group_values


def _task_of(data: str, docs: list[Document]) -> str:

    try:
        return datasets.get_spec(data).task
    except DatasetNotFoundError:  # not a corpus name but a file: the task its annotations hold
        if any(d.relations or d.metadata.get("id_relations") for d in docs):
            return "relation"
        if any("assertion" in s.attributes or "gold" in s.attributes for d in docs for s in d.spans):
            return "assertion"
        return "ner"


def _bare(doc: Document) -> Document:
    meta = {k: v for k, v in doc.metadata.items() if k in ("pmid", "sentences")}
    return Document(id=doc.id, text=doc.text, text_pair=doc.text_pair, metadata=meta)


def evaluate_pipeline(pipeline_path: str | Path, data: str, *, split: str = "test", format: str | None = None,
                      output: str | Path | None = None, batch_size: int = 32, errors: int = 0,
                      ci: bool = False, resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                      group_by: list[str] | None = None) -> dict[str, Any]:
    """``ci`` and ``group_by`` (bootstrap intervals over documents, metrics per metadata value) are
    available for NER and assertion data, whose headline F1 sums per-document counts."""

    pipe = Pipeline.from_yaml(pipeline_path)
    gold, source = resolve_documents(data, split, format)
    task = _task_of(data, gold)
    phi = task == "ner" and pipe.component("deid") is not None
    if task == "relation":
        result = _relation(pipe, gold, batch_size, errors)
    elif task == "linking":
        result = _linking(pipe, gold)
    elif task == "assertion":
        result = _assertion(pipe, gold, batch_size)
    elif phi:
        result = _deid(pipe, gold, batch_size)
    elif task == "ner":
        result = _ner(pipe, gold, batch_size)
    else:
        raise ConfigError(f"a pipeline cannot be evaluated on {task} data ('{data}')",
                          fix="evaluate the classification model itself with `medtune evaluate MODEL_DIR`")
    counts = result.pop("_counts", None)
    if (ci or group_by) and counts is None:
        raise ConfigError(f"--ci and --group-by are not available for a pipeline on {task} data",
                          fix="use them on NER or assertion data, or evaluate the models themselves")
    if ci:
        result["ci"] = {**bootstrap_counts(counts, n_resamples=resamples, seed=seed), "resamples": resamples,
                        "seed": seed, "level": 0.95, "unit": "documents"}
        result["per_document"] = {"ids": [g.id for g in gold], "counts": counts.tolist(), "columns": ["tp", "fp", "fn"]}
    for field in group_by or []:
        result.setdefault("groups", {})[field] = group_report(group_values(gold, field), counts, field=field,
                                                              ci=ci, n_resamples=resamples, seed=seed)
    first = ("recall", "precision", "f1") if phi else ("f1", "accuracy", "ceiling")
    headline = {k: result.pop(k) for k in first if k in result}
    result = {**headline, **result, "pipeline": str(pipeline_path), "data": source, "task": task}
    if output is not None:
        with atomic_write(output) as handle:
            json.dump(result, handle, indent=2, ensure_ascii=False)
    return result


def _need(pipe: Any, kind: str, label: str | None = None) -> Any:
    comp = pipe.component(kind, label)
    if comp is None:
        what = f"a {kind} component" + (f" for '{label}'" if label else "")
        raise ConfigError(f"pipeline {pipe.source} has no {what}", fix="add one, or evaluate on other data")
    return comp


def _relation(pipe: Any, gold: list[Document], batch_size: int, errors: int) -> dict[str, Any]:

    _need(pipe, "ner")
    _need(pipe, "relation")
    # linking stays: document-level relations hold between the ids it assigns
    pred = list(pipe.pipe([_bare(d) for d in gold], batch_size=batch_size, skip=("assertion",)))
    rel_labels = sorted({r.label for d in gold for r in d.relations})
    ent_labels = sorted({s.label for d in gold for s in d.spans})
    entity = span_metrics(gold, [_only(p, ent_labels) for p in pred], ent_labels)
    mention = relation_metrics(gold, pred, rel_labels)
    result: dict[str, Any] = {"f1": mention["f1"], "headline": "end-to-end relation F1 (strict spans and label)",
                              "precision": mention["precision"], "recall": mention["recall"], "relations": mention,
                              "entities": {"f1": entity["f1"], "precision": entity["precision"],
                                           "recall": entity["recall"], "per_type": entity["per_type"]}}
    if any(d.metadata.get("id_relations") for d in gold):
        doc_level = id_relation_metrics(gold, pred, sorted({r["label"] for d in gold
                                                            for r in d.metadata.get("id_relations") or []}))
        result.update(f1=doc_level["f1"], precision=doc_level["precision"], recall=doc_level["recall"],
                      headline="end-to-end document-level id-pair F1", document_level=doc_level)
    if errors:
        result["errors"] = relation_errors(gold, pred, errors)
    return result


def _only(doc: Document, labels: list[str]) -> Document:
    out = Document(id=doc.id, text=doc.text)
    out.spans = [s for s in doc.spans if s.label in labels]
    return out


def _ner(pipe: Any, gold: list[Document], batch_size: int) -> dict[str, Any]:

    _need(pipe, "ner")
    pred = list(pipe.pipe([_bare(d) for d in gold], batch_size=batch_size,
                          skip=("assertion", "linking", "relation")))
    labels = sorted({s.label for d in gold for s in d.spans})
    pred = [_only(p, labels) for p in pred]
    return {**span_metrics(gold, pred, labels), "_counts": span_counts(gold, pred)}


def _deid(pipe: Any, gold: list[Document], batch_size: int) -> dict[str, Any]:

    comp = _need(pipe, "deid")
    cfg = comp.config
    detector = PhiDetector(rules=cfg.rules, model=comp.model_path, outside_weight=cfg.outside_weight,
                           batch_size=min(batch_size, 16), mode=cfg.mode, times=cfg.times, not_phi=cfg.not_phi)
    found = detector.detect([_bare(d) for d in gold])
    result = deid_metrics(gold, found)
    result["targets"] = target_report(result)
    weight = detector.predictor.task.outside_weight if detector.predictor is not None else None
    result["detector"] = {"rules": cfg.rules, "model": str(comp.model_path) if comp.model_path else None,
                          "outside_weight": weight, "not_phi": cfg.not_phi}
    return result


def _linking(pipe: Any, gold: list[Document]) -> dict[str, Any]:

    labels = sorted({s.label for d in gold for s in d.spans})
    per_label = {}
    for label in labels:
        comp = _need(pipe, "linking", label)
        docs = [_only_with_ids(d, label) for d in gold]
        per_label[label] = linking_report(comp.load(), docs)
    if len(per_label) == 1:
        return dict(next(iter(per_label.values())))
    n = sum(r["n"] for r in per_label.values())
    accuracy = sum(r["accuracy"] * r["n"] for r in per_label.values()) / n if n else 0.0
    ceiling = sum(r["ceiling"] * r["n"] for r in per_label.values()) / n if n else 0.0
    return {"accuracy": accuracy, "ceiling": ceiling, "n": n, "per_label": per_label}


def _only_with_ids(doc: Document, label: str) -> Document:
    out = doc.copy()
    out.spans = [s for s in out.spans if s.label == label]
    out.relations = []
    return out


def _assertion(pipe: Any, gold: list[Document], batch_size: int) -> dict[str, Any]:

    comp = _need(pipe, "assertion")
    docs = [d.copy() for d in gold]
    for doc in docs:  # the component must not see the gold values
        for span in doc.spans:
            span.attributes = {k: v for k, v in span.attributes.items() if k not in ("gold", "assertion")}
    comp.process(docs, batch_size=batch_size)
    for g, p in zip(gold, docs):
        for gs, ps in zip(g.spans, p.spans):
            if "gold" in gs.attributes:
                ps.attributes["gold"] = gs.attributes["gold"]
    report = assertion_report(docs)
    counts = np.zeros((len(docs), 3), dtype=np.int64)  # per document (tp, fp, fn) of the negated class
    for d, doc in enumerate(docs):
        for span in doc.spans:
            gold_values = span.attributes.get("gold")
            if isinstance(gold_values, Mapping) and "negated" in gold_values:
                g, p = bool(gold_values["negated"]), bool(span.attributes.get("negated", False))
                counts[d] += (g and p, p and not g, g and not p)
    out: dict[str, Any] = {"f1": report["negated"]["f1"], "headline": "F1 of the negated class",
                           "precision": report["negated"]["precision"], "recall": report["negated"]["recall"]}
    for axis in ("temporality", "experiencer", "uncertain"):
        if axis in report and "accuracy" in report[axis]:
            out[f"{axis}_accuracy"] = report[axis]["accuracy"]
    out["backend"] = comp.config.backend or "rules"
    return {**out, **report, "_counts": counts}
