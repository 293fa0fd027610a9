"""Text and text-pair classification, single- or multi-label, over documents of any length.

A document (``text``, optionally preceded by ``text_pair``, e.g. a question) is cut into overlapping
chunks of ``max_length`` tokens; chunk features are pooled per document before the classifier, so a
long abstract is read whole. Multi-label models use a sigmoid per label with thresholds tuned on the
dev split and saved with the model. A single-label model of two labels decides by argmax, or with
``model.decision: dev_threshold`` by a cut on ``eval.positive_label``'s probability tuned on dev
(:mod:`medtune.tasks.thresholds`).
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field
from torch import nn

from medtune.batching import length_batches
from medtune.document import Document, label_set
from medtune.errors import ConfigError, DataFormatError, quote_id
from medtune.evaluation.metrics import _pair_docs, classification_metrics, label_counts
from medtune.models.heads import SequenceClassificationModel
from medtune.runtime import autocast
from medtune.tasks.base import Task, pad, tokenize
from medtune.tasks.options import TaskOptions
from medtune.tasks.registry import register_task
from medtune.tasks.thresholds import tune_positive_threshold
from medtune.trust.calibration import Calibrator
from medtune.trust.items import ScoredItems

logger = logging.getLogger(__name__)


class ClassificationOptions(TaskOptions):
    head: Literal["linear", "cnn"] = "linear"
    multi_label: bool | None = Field(None, description="None = from the corpus (any document without "
                                     "exactly one label makes it multi-label)")
    pooling: Literal["cls", "mean"] = "mean"
    chunk_pooling: Literal["mean", "max"] = "max"
    cnn_kernel_sizes: list[int] = Field(default_factory=lambda: [3, 4, 5])
    cnn_filters: int = Field(128, ge=1)
    tune_thresholds: bool = Field(True, description="multi-label: per-label thresholds tuned on dev")
    class_weights: Literal["none", "balanced"] = Field(
        "none", description="single-label: 'balanced' weights each label's loss by n_docs / (n_labels * "
        "n_docs_with_label) on the training split, so that a minority label (e.g. PubMedQA's 'maybe') is "
        "not ignored; the weights are saved with the model")
    decision: Literal["argmax", "dev_threshold"] = Field(
        "argmax", description="single-label with two labels: 'dev_threshold' predicts eval.positive_label "
        "when its probability reaches the cut that maximises its F1 on the dev split (an imbalanced label; "
        "a model whose scores shifted but still rank, as under DP-SGD); the cut is saved with the model")


@register_task
class ClassificationTask(Task):
    name = "classification"
    options_class = ClassificationOptions
    onnx_graph = "classification-chunk-features"

    def __init__(self, meta: dict[str, Any], tokenizer: Any) -> None:
        super().__init__(meta, tokenizer)
        self.multi_label: bool = bool(meta["multi_label"])
        self.max_length: int = meta["max_length"]
        self.stride: int = meta["stride"]
        self.label_to_id = {lab: i for i, lab in enumerate(self.labels)}
        self.thresholds: dict[str, float] = dict(meta.get("thresholds") or {})
        self.positive_threshold: float | None = meta.get("positive_threshold")

    @classmethod
    def meta_from_config(cls, config: Any, train_docs: list[Document]) -> dict[str, Any]:
        labels = config.model.labels or label_set(train_docs, "labels")
        if not labels:
            raise DataFormatError("the training data has no document labels", field="data.train",
                                  fix="check the label column of the training file")
        multi = config.model.multi_label
        if multi is None:
            multi = any(len(d.labels) != 1 for d in train_docs)
        return {
            "task": cls.name,
            "labels": list(labels),
            "multi_label": bool(multi),
            "head": config.model.head,
            "max_length": config.model.max_length,
            "stride": config.model.stride,
            "pooling": config.model.pooling,
            "chunk_pooling": config.model.chunk_pooling,
            "dropout": config.model.dropout,
            "cnn_kernel_sizes": list(config.model.cnn_kernel_sizes),
            "cnn_filters": config.model.cnn_filters,
            "tune_thresholds": config.model.tune_thresholds,
            **_decision(config, list(labels), bool(multi)),
            **_class_weights(config.model.class_weights, list(labels), bool(multi), train_docs),
        }

    def build_model(self, encoder: nn.Module) -> nn.Module:
        m = self.meta
        return SequenceClassificationModel(
            encoder, len(self.labels), head=m["head"], multi_label=self.multi_label, pooling=m["pooling"],
            chunk_pooling=m["chunk_pooling"], dropout=m.get("dropout", 0.1),
            cnn_kernel_sizes=m.get("cnn_kernel_sizes"), cnn_filters=m.get("cnn_filters", 128),
            class_weights=m.get("class_weights"))

    def check_documents(self, docs: list[Document], *, source: str, training: bool) -> None:
        known = set(self.labels)
        if docs and not any(d.labels for d in docs) and any(d.spans for d in docs):
            raise DataFormatError(
                "the documents carry entity spans but no document labels: they are NER data, and this is "
                "a classification model", path=source, field="labels",
                fix="evaluate a NER model on this data, or give data with document labels")
        for doc in docs:
            if not isinstance(doc.text, str):
                raise DataFormatError(f"document {quote_id(doc.id)} has no text", path=source, field="text")
            if training and not (doc.text.strip() or (doc.text_pair or "").strip()):
                raise DataFormatError(f"document {quote_id(doc.id)} has an empty text", path=source,
                                      fix="remove empty documents from the training data")
            if not self.multi_label and training and len(doc.labels) != 1:
                raise DataFormatError(
                    f"document {quote_id(doc.id)} has {len(doc.labels)} labels but the task is single-label",
                    path=source, field="labels", fix="give one label per document, or set model.multi_label: true")
            for lab in doc.labels:
                if lab not in known:
                    raise DataFormatError(
                        f"document {quote_id(doc.id)} has label {quote_id(lab)}, which the model does not know "
                        f"(labels: {', '.join(self.labels)})", path=source, field="labels",
                        fix="use the model's label set, or list all labels in model.labels")

    # ---------------------------------------------------------------- encoding
    def _chunks(self, doc: Document) -> dict[str, list[list[int]]]:
        kwargs = dict(max_length=self.max_length, stride=self.stride, return_overflowing_tokens=True,
                      verbose=False)
        if doc.text_pair is not None:
            first_len = len(tokenize(self.tokenizer, doc.text_pair, add_special_tokens=False)["input_ids"])
            if first_len > self.max_length // 2:
                raise DataFormatError(
                    f"document {quote_id(doc.id)}: text_pair has {first_len} tokens, more than half of "
                    f"model.max_length ({self.max_length})", field="text_pair",
                    fix="shorten the question/first text or raise model.max_length")
            enc = tokenize(self.tokenizer, doc.text_pair, doc.text or " ", truncation="only_second", **kwargs)
        else:
            enc = tokenize(self.tokenizer, doc.text, truncation=True, **kwargs)
        out = {"input_ids": enc["input_ids"]}
        if "token_type_ids" in enc:
            out["token_type_ids"] = enc["token_type_ids"]
        return out

    def _target(self, doc: Document) -> Any:
        if self.multi_label:
            vec = [0.0] * len(self.labels)
            for lab in doc.labels:
                vec[self.label_to_id[lab]] = 1.0
            return vec
        return self.label_to_id[doc.labels[0]]

    def encode_for_training(self, docs: list[Document]) -> list[dict[str, Any]]:
        features = []
        for doc in docs:
            feature = self._chunks(doc)
            feature["labels"] = self._target(doc)
            features.append(feature)
        return features

    def feature_length(self, feature: dict[str, Any]) -> int:
        return sum(len(c) for c in feature["input_ids"])

    def collate(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        pad_id = self.tokenizer.pad_token_id or 0
        chunks, types, owner = [], [], []
        for d, f in enumerate(features):
            chunks.extend(f["input_ids"])
            types.extend(f.get("token_type_ids") or [[0] * len(c) for c in f["input_ids"]])
            owner.extend([d] * len(f["input_ids"]))
        batch = {
            "input_ids": pad(chunks, pad_id),
            "attention_mask": pad([[1] * len(c) for c in chunks], 0),
            "token_type_ids": pad(types, 0),
            "chunk_to_doc": torch.tensor(owner, dtype=torch.long),
        }
        if "labels" in features[0]:
            dtype = torch.float if self.multi_label else torch.long
            batch["labels"] = torch.tensor([f["labels"] for f in features], dtype=dtype)
        return batch

    # ---------------------------------------------------------------- inference
    def probabilities(self, model: nn.Module, docs: list[Document], *, batch_size: int,
                      device: torch.device, bf16: bool) -> np.ndarray:
        model.eval()
        features = [self._chunks(doc) for doc in docs]
        out = np.zeros((len(docs), len(self.labels)), dtype=np.float32)
        with torch.inference_mode(), autocast(device, bf16):
            for idx in length_batches([self.feature_length(f) for f in features], batch_size):
                batch = {k: v.to(device) for k, v in self.collate([features[i] for i in idx]).items()}
                logits = model(**batch)["logits"].float()
                probs = torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=-1)
                out[idx] = probs.cpu().numpy()
        return out

    def decide(self, doc: Document, probs: np.ndarray, thresholds: dict[str, float] | None = None,
               positive_threshold: float | None = None) -> Document:
        pred = doc.copy(annotations=False)
        pred.label_scores = {lab: round(float(p), 6) for lab, p in zip(self.labels, probs)}
        if self.multi_label:
            cut = self.thresholds if thresholds is None else thresholds
            pred.labels = [lab for lab, p in zip(self.labels, probs) if p >= cut.get(lab, 0.5)]
            return pred
        cut_at = self.positive_threshold if positive_threshold is None else positive_threshold
        if cut_at is None:
            pred.labels = [self.labels[int(np.argmax(probs))]]
        else:
            pos = self.label_to_id[self.meta["positive_label"]]
            pred.labels = [self.labels[pos if probs[pos] >= cut_at else 1 - pos]]
        return pred

    def predict_buffer(self, model: nn.Module, docs: list[Document], *, batch_size: int, device: torch.device,
                       bf16: bool, diagnostics: Counter) -> list[Document]:
        probs = self.probabilities(model, docs, batch_size=batch_size, device=device, bf16=bf16)
        return [self.decide(doc, p) for doc, p in zip(docs, probs)]

    def _tunes_thresholds(self, dev_docs: list[Document]) -> bool:
        if not dev_docs:
            return False
        if self.multi_label:
            return bool(self.meta.get("tune_thresholds", True))
        return self.meta.get("decision") == "dev_threshold"

    def _fit_positive_threshold(self, probs: np.ndarray, dev_docs: list[Document]) -> tuple[float, float]:
        positive = self.meta["positive_label"]
        gold = np.array([positive in doc.labels for doc in dev_docs])
        return tune_positive_threshold(probs[:, self.label_to_id[positive]], gold)

    def tune_decision(self, model: nn.Module, dev_docs: list[Document], *, positive_label: str | None = None,
                      batch_size: int = 32, device: torch.device | None = None, bf16: bool = False) -> dict[str, Any]:
        """Fit the dev-split decision parameters of an already trained model (the multi-label thresholds,
        or the positive label's cut of ``decision: dev_threshold``; ``positive_label`` turns that on for a
        model trained with argmax) and keep them in ``meta``; what was fitted, for a report.
        ``after_training`` does the same at the end of training."""
        if positive_label is not None and not self.multi_label:
            if len(self.labels) != 2 or positive_label not in self.labels:
                raise ConfigError(f"a decision threshold needs one of two labels; {quote_id(positive_label)} is "
                                  f"not one of this model's ({', '.join(self.labels)})",
                                  fix="name one of the model's two labels")
            self.meta.update(decision="dev_threshold", positive_label=positive_label)
        if not self.multi_label and self.meta.get("decision") != "dev_threshold":
            raise ConfigError("this single-label model decides by argmax: there is no threshold to tune",
                              fix="name the positive label (positive_label=...), or train with "
                              "model.decision: dev_threshold")
        device = device or torch.device("cpu")
        probs = self.probabilities(model, dev_docs, batch_size=batch_size, device=device, bf16=bf16)
        if self.multi_label:
            self.thresholds = self._fit_thresholds(probs, dev_docs)  # a parameter of the finished model
            self.meta["thresholds"] = self.thresholds
            return {"thresholds": self.thresholds}
        cut, f1 = self._fit_positive_threshold(probs, dev_docs)
        self.positive_threshold = cut
        self.meta["positive_threshold"] = cut
        return {"positive_label": self.meta["positive_label"], "positive_threshold": cut, "dev_f1": round(f1, 4)}

    def _fit_thresholds(self, probs: np.ndarray, dev_docs: list[Document]) -> dict[str, float]:
        gold = np.zeros_like(probs, dtype=bool)
        for i, doc in enumerate(dev_docs):
            for lab in doc.labels:
                gold[i, self.label_to_id[lab]] = True
        return tune_thresholds(probs, gold, self.labels)

    def after_training(self, model: nn.Module, dev_docs: list[Document], *, batch_size: int,
                       device: torch.device, bf16: bool) -> None:
        if not self._tunes_thresholds(dev_docs):
            return
        fitted = self.tune_decision(model, dev_docs, batch_size=batch_size, device=device, bf16=bf16)
        if self.multi_label:
            logger.info("tuned per-label thresholds on %d dev documents", len(dev_docs))
        else:
            logger.info("tuned the %s threshold on %d dev documents: %.4g (dev F1 %.4f)", fitted["positive_label"],
                        len(dev_docs), fitted["positive_threshold"], fitted["dev_f1"])

    def dev_predictions(self, model: nn.Module, dev_docs: list[Document], *, batch_size: int,
                        device: torch.device, bf16: bool) -> list[Document]:
        """Multi-label (and ``decision: dev_threshold``): the epoch is chosen by dev F1 at thresholds tuned on
        dev, as the model ships. At a fixed 0.5 a young sigmoid head predicts nothing for epochs (F1 0), which
        stops training early."""
        if not self._tunes_thresholds(dev_docs):
            return super().dev_predictions(model, dev_docs, batch_size=batch_size, device=device, bf16=bf16)
        probs = self.probabilities(model, dev_docs, batch_size=batch_size, device=device, bf16=bf16)
        if not self.multi_label:
            cut, _ = self._fit_positive_threshold(probs, dev_docs)
            return [self.decide(doc, p, positive_threshold=cut) for doc, p in zip(dev_docs, probs)]
        thresholds = self._fit_thresholds(probs, dev_docs)
        return [self.decide(doc, p, thresholds) for doc, p in zip(dev_docs, probs)]

    # ---------------------------------------------------------------- trust
    def rescore(self, pred: Document, calibration: Calibrator) -> None:
        """Multi-label: each label's probability. Single-label: the chosen label's probability, the
        others scaled to share the rest (the decision is unchanged: it was made on the raw scores)."""
        if not pred.label_scores:
            return
        if self.multi_label or not pred.labels:
            pred.label_scores = {lab: round(calibration.one(p), 6) for lab, p in pred.label_scores.items()}
            return
        top = pred.labels[0]
        raw = pred.label_scores[top]
        new = calibration.one(raw)
        rest = sum(p for lab, p in pred.label_scores.items() if lab != top)
        others = len(pred.label_scores) - 1
        pred.label_scores = {lab: round(new if lab == top else (p * (1 - new) / rest if rest > 0 else (1 - new) / others), 6)
                             for lab, p in pred.label_scores.items()}

    def mark_abstained(self, pred: Document, threshold: float) -> int:
        """Single-label: the document when its label scores under ``threshold``. Multi-label: when
        any label's decision (present or absent) is less certain than ``threshold``; the labels are
        listed in ``metadata["abstained_labels"]``."""
        if not pred.label_scores:
            return 0
        if self.multi_label:
            unsure = [lab for lab, p in pred.label_scores.items() if max(p, 1 - p) < threshold]
            if unsure:
                pred.metadata["abstained"] = True
                pred.metadata["abstained_labels"] = unsure
            return int(bool(unsure))
        if pred.labels and pred.label_scores.get(pred.labels[0], 1.0) < threshold:
            pred.metadata["abstained"] = True
            return 1
        return 0

    def scored_items(self, gold: list[Document], pred: list[Document]) -> ScoredItems:
        """Single-label: each document's chosen label, right when it is the gold label. Multi-label:
        each (document, label) probability against the label's presence."""
        rows = []
        for d, (g, p) in enumerate(_pair_docs(gold, pred)):
            if self.multi_label:
                rows.extend((d, score, lab in g.labels) for lab, score in p.label_scores.items())
            elif p.labels and p.labels[0] in p.label_scores:
                rows.append((d, p.label_scores[p.labels[0]], p.labels[:1] == g.labels[:1]))
        return ScoredItems.from_rows(rows, kind="presence" if self.multi_label else "decision",
                                     unit="labels" if self.multi_label else "documents")

    def headline_counts(self, gold: list[Document], pred: list[Document], **options: Any) -> np.ndarray:
        return label_counts(gold, pred, self.labels, ignore_labels=options.get("ignore_labels"),
                            positive_label=options.get("positive_label"))

    def metrics(self, gold: list[Document], pred: list[Document], *, diagnostics: Counter | None = None,
                **options: Any) -> dict[str, Any]:
        return classification_metrics(gold, pred, self.labels, multi_label=self.multi_label,
                                      ignore_labels=options.get("ignore_labels"),
                                      positive_label=options.get("positive_label"))


def tune_thresholds(probs: np.ndarray, gold: np.ndarray, labels: list[str]) -> dict[str, float]:
    """Per-label threshold maximising that label's F1 on the dev split (ties: the one nearest 0.5)."""
    grid = np.round(np.arange(0.05, 0.96, 0.05), 2)
    out = {}
    for j, lab in enumerate(labels):
        if not gold[:, j].any():
            out[lab] = 0.5
            continue
        best, best_t = -1.0, 0.5
        for t in sorted(grid, key=lambda x: abs(x - 0.5)):
            pred = probs[:, j] >= t
            tp = float((pred & gold[:, j]).sum())
            denom = float(pred.sum() + gold[:, j].sum())
            f1 = 2 * tp / denom if denom else 0.0
            if f1 > best + 1e-12:
                best, best_t = f1, float(t)
        out[lab] = best_t
    return out


def _decision(config: Any, labels: list[str], multi: bool) -> dict[str, Any]:
    """``{"decision": ..., "positive_label": ...}`` for ``decision: dev_threshold``, checked, else ``{}``."""
    if config.model.decision == "argmax":
        return {}
    fix = "set model.decision: argmax, or give a single-label task of two labels and eval.positive_label"
    if multi or len(labels) != 2:
        raise ConfigError(f"model.decision: dev_threshold needs a single-label task of two labels; this one is "
                          f"{'multi-label' if multi else 'single-label'} with {len(labels)} labels", fix=fix)
    positive = getattr(config.eval, "positive_label", None)
    if positive not in labels:
        raise ConfigError(f"model.decision: dev_threshold cuts on eval.positive_label, which is "
                          f"{quote_id(str(positive)) if positive else 'not set'} (labels: {', '.join(labels)})",
                          fix=fix)
    return {"decision": "dev_threshold", "positive_label": positive}


def _class_weights(mode: str, labels: list[str], multi: bool, train_docs: list[Document]) -> dict[str, Any]:
    """``{"class_weights": [...]}`` for ``class_weights: balanced`` (single-label only), else ``{}``."""
    if mode == "none":
        return {}
    if multi:
        raise ConfigError("model.class_weights: balanced applies to single-label classification",
                          fix="remove model.class_weights, or set model.multi_label: false")
    counts = Counter(d.labels[0] for d in train_docs if len(d.labels) == 1)
    missing = [lab for lab in labels if not counts[lab]]
    if missing:
        raise ConfigError(f"model.class_weights: balanced, but label {quote_id(missing[0])} has no training "
                          "document", fix="give training documents of every label, "
                          "or drop the label from model.labels")
    total = sum(counts[lab] for lab in labels)
    return {"class_weights": [round(total / (len(labels) * counts[lab]), 6) for lab in labels]}
