"""Clinical coding (ICD-10): every code of a document of any length, each with the text that supports it.

A document is tokenised once (sub-words with character offsets) and cut into overlapping chunks of
``max_length`` tokens (``stride`` tokens of overlap); each text token is attended once, by the chunk
that holds it with the more context (the overlap is split in the middle). The model
(:mod:`medtune.models.heads_coding`) gives every code of the label set a score; codes scoring at least
the threshold tuned on dev (saved with the model) are predicted, at most ``max_codes``, best first.

Output (a new document; the input is not modified):

* ``labels``: the predicted codes, best first; ``label_scores``: the ``score_depth`` best codes with
  their probabilities (the ranking the CodiEsp MAP reads);
* ``spans``: for each predicted code its evidence, the ``evidence_spans`` phrases its attention weighted
  most (:mod:`medtune.coding.evidence`), label ``evidence``, ``ids = [code]``, ``score`` = the phrase's
  attention weight, ``attributes = {"code", "rank"}``; character offsets into ``text``;
* ``metadata["codes"]``: per predicted code its score, category, chapter, description (when the model
  was trained with descriptions) and the ids of its evidence spans: the link from a code to its text.

Codes are suggestions for a human coder: the evidence is what the model looked at, not a proof.
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
from medtune.coding import icd10
from medtune.coding.evidence import evidence_spans
from medtune.document import Document, Span, label_set
from medtune.errors import DataFormatError, quote_id
from medtune.evaluation.coding import coding_counts, coding_metrics
from medtune.evaluation.metrics import _pair_docs
from medtune.models.heads_coding import CodingModel
from medtune.runtime import autocast
from medtune.tasks.base import Task, pad, special_tokens, tokenize
from medtune.tasks.options import TaskOptions
from medtune.tasks.qa_windows import ContextTokens, context_tokens, plan_windows
from medtune.tasks.registry import register_task
from medtune.trust.calibration import Calibrator
from medtune.trust.items import ScoredItems

logger = logging.getLogger(__name__)

EVIDENCE_LABEL = "evidence"


class CodingOptions(TaskOptions):
    head: Literal["laat", "pooled"] = Field("laat", description="laat: label-wise attention over all tokens "
                                            "(evidence from the attention); pooled: mean of the tokens + linear")
    max_length: int = Field(512, ge=8, le=8192, description="tokens per chunk, special tokens included")
    stride: int = Field(64, ge=0, description="tokens of overlap between consecutive chunks")
    attention_dim: int = Field(256, ge=8, description="laat: size of the attention space (without descriptions)")
    code_system: Literal["auto", "ICD-10-CM", "ICD-10-PCS"] = Field(
        "auto", description="auto = the documents' metadata['code_system'], else ICD-10-CM")
    descriptions: Literal["none", "auto", "package", "vocab"] = Field(
        "none", description="code descriptions joined to the label queries (medtune.coding.icd10): package = "
        "simple-icd-10-cm (medtune[coding]), vocab = the CDC categories under $MEDTUNE_DATA_DIR, auto = the "
        "first of these found, none = no descriptions")
    max_codes: int = Field(50, ge=1, description="most codes predicted per document (those with evidence)")
    score_depth: int = Field(1000, ge=1, description="codes kept in label_scores per document, best first "
                             "(the official CodiEsp MAP reads 1000)")
    evidence_spans: int = Field(3, ge=0, description="evidence phrases per predicted code (0: none)")
    evidence_tokens: int = Field(8, ge=1, description="heaviest tokens per code that the phrases are built from")
    tune_threshold: bool = Field(True, description="one threshold for all codes, tuned on dev (micro-F1)")
    threshold: float = Field(0.5, gt=0, lt=1, description="the threshold when it is not tuned")


def own_ranges(windows: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """For each window ``[a, b)`` of text tokens, the part it attends: consecutive windows split their
    overlap in the middle, so every text token belongs to exactly one window."""
    out = []
    for i, (a, b) in enumerate(windows):
        lo = a if i == 0 else (a + windows[i - 1][1]) // 2
        hi = b if i == len(windows) - 1 else (windows[i + 1][0] + b) // 2
        out.append((lo, max(lo, hi)))
    return out


def tune_threshold(probs: np.ndarray, gold: np.ndarray, extra_gold: int = 0) -> float:
    """The threshold (0.01 .. 0.99) maximising micro-F1 of ``probs >= t`` against ``gold``; ``extra_gold``
    counts gold codes outside the label set (always missed). Ties: the one nearest 0.5."""
    grid = sorted(np.round(np.arange(0.01, 1.0, 0.01), 2), key=lambda t: abs(t - 0.5))
    total = float(gold.sum()) + extra_gold
    best, best_t = -1.0, 0.5
    for t in grid:
        pred = probs >= t
        denom = float(pred.sum()) + total
        f1 = 2 * float((pred & gold).sum()) / denom if denom else 0.0
        if f1 > best + 1e-12:
            best, best_t = f1, float(t)
    return best_t


def _system(config: Any, docs: list[Document]) -> str:
    if config.model.code_system != "auto":
        return config.model.code_system
    found = {d.metadata.get("code_system") for d in docs if d.metadata.get("code_system")}
    return found.pop() if len(found) == 1 else "ICD-10-CM"


@register_task
class CodingTask(Task):
    name = "coding"
    options_class = CodingOptions
    call_settings = Task.call_settings + ("threshold",)

    def __init__(self, meta: dict[str, Any], tokenizer: Any) -> None:
        super().__init__(meta, tokenizer)
        self.max_length: int = meta["max_length"]
        self.stride: int = meta["stride"]
        self.system: str = meta["code_system"]["name"]
        self.threshold: float = float(meta.get("threshold", 0.5))
        self.label_to_id = {lab: i for i, lab in enumerate(self.labels)}
        self.unseen = set(meta.get("unseen_labels") or [])
        self.prefix, self.suffix = special_tokens(tokenizer)

    # ------------------------------------------------------------------ set-up
    @classmethod
    def meta_from_config(cls, config: Any, train_docs: list[Document]) -> dict[str, Any]:
        m = config.model
        trained = label_set(train_docs, "labels")
        labels = sorted(set(m.labels or []) | set(trained)) if m.labels else trained
        if not labels:
            raise DataFormatError("the training data has no codes (document labels)", field="data.train",
                                  fix="give documents with their codes as labels (e.g. data: {name: codiesp-d})")
        system = _system(config, train_docs)
        codes = icd10.code_system(system, m.descriptions)
        descriptions = {}
        for lab in labels:
            found = codes.description(lab)
            if found is not None:
                descriptions[lab] = found.text
        per_doc = sum(len(d.labels) for d in train_docs) / max(1, len(train_docs))
        return {
            "task": cls.name, "labels": list(labels), "head": m.head, "max_length": m.max_length,
            "stride": m.stride, "dropout": m.dropout, "attention_dim": m.attention_dim,
            "code_system": codes.info(), "use_descriptions": bool(descriptions),
            "descriptions": descriptions, "max_codes": m.max_codes, "score_depth": m.score_depth,
            "evidence_spans": m.evidence_spans, "evidence_tokens": m.evidence_tokens,
            "tune_threshold": m.tune_threshold, "threshold": m.threshold,
            "unseen_labels": sorted(set(labels) - set(trained)), "prior": per_doc / len(labels),
            "unseen_prior": 1.0 / (len(train_docs) + 2),
            "card_lines": [f"- code system: {codes.name}, {codes.version}; descriptions: {codes.source or 'none'}",
                           f"- {len(labels)} codes ({len(trained)} seen in training); codes are suggestions "
                           "for a human coder, each with the text its attention weighted most as evidence"],
            "_encode_descriptions": bool(descriptions),  # build_model encodes them once (not saved)
        }

    def build_model(self, encoder: nn.Module) -> nn.Module:
        m = self.meta
        model = CodingModel(encoder, len(self.labels), head=m["head"], dropout=m.get("dropout", 0.1),
                            attention_dim=m.get("attention_dim", 256), descriptions=bool(m.get("use_descriptions")),
                            prior=m.get("prior"), unseen_prior=m.get("unseen_prior"))
        model.seen.copy_(torch.tensor([0.0 if lab in self.unseen else 1.0 for lab in self.labels]))
        if self.meta.pop("_encode_descriptions", False):  # training: the pretrained encoder encodes them
            model.label_embeddings.copy_(self.encode_descriptions(encoder))
        return model

    def encode_descriptions(self, encoder: nn.Module, batch_size: int = 64) -> torch.Tensor:
        """Mean-pooled encoder states of each code's description (the code itself where it has none)."""
        texts = [self.meta["descriptions"].get(lab, lab) for lab in self.labels]
        out = []
        encoder.eval()
        with torch.inference_mode():
            for i in range(0, len(texts), batch_size):
                enc = tokenize(self.tokenizer, texts[i:i + batch_size], padding=True, truncation=True,
                               max_length=64, return_tensors="pt")
                kwargs = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
                states = encoder(**kwargs).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).float()
                out.append((states * mask).sum(1) / mask.sum(1).clamp(min=1.0))
        encoder.train()
        return torch.cat(out).clone()

    def check_documents(self, docs: list[Document], *, source: str, training: bool) -> None:
        if docs and not any(d.labels for d in docs) and any(d.spans for d in docs):
            raise DataFormatError("the documents carry spans but no codes: they are NER data, and this is a coding "
                                  "model", path=source, field="labels",
                                  fix="evaluate a NER model on this data, or give documents with their codes")
        for doc in docs:
            if not isinstance(doc.text, str):
                raise DataFormatError(f"document {quote_id(doc.id)} has no text", path=source, field="text")
            if training:
                unknown = [lab for lab in doc.labels if lab not in self.label_to_id]
                if unknown:
                    raise DataFormatError(f"document {quote_id(doc.id)} has a code the model does not know",
                                          path=source, field="labels", fix="list every training code in model.labels, "
                                          "or leave model.labels unset (the codes of the training data)")

    # ---------------------------------------------------------------- encoding
    def _features(self, doc: Document) -> dict[str, Any]:
        context = context_tokens(self.tokenizer, doc.text or "")
        capacity = self.max_length - len(self.prefix) - len(self.suffix)
        windows = plan_windows(len(context), capacity, self.stride)
        chunks = [list(self.prefix) + context.ids[a:b] + list(self.suffix) for a, b in windows]
        owned = [(lo - a + len(self.prefix), hi - a + len(self.prefix))
                 for (a, _), (lo, hi) in zip(windows, own_ranges(windows))]
        return {"input_ids": chunks, "owned": owned, "context": context}

    def encode_for_training(self, docs: list[Document]) -> list[dict[str, Any]]:
        features = []
        for doc in docs:
            feature = self._features(doc)
            del feature["context"]
            feature["label_ids"] = sorted(self.label_to_id[lab] for lab in doc.labels if lab in self.label_to_id)
            features.append(feature)
        return features

    def feature_length(self, feature: dict[str, Any]) -> int:
        return sum(len(c) for c in feature["input_ids"])

    def collate(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        pad_id = self.tokenizer.pad_token_id or 0
        chunks = [c for f in features for c in f["input_ids"]]
        input_ids = pad(chunks, pad_id)
        width = input_ids.size(1)
        rows, c = [], 0
        for f in features:
            row = []
            for lo, hi in f["owned"]:
                row.extend(range(c * width + lo, c * width + hi))
                c += 1
            rows.append(row)
        batch = {
            "input_ids": input_ids,
            "attention_mask": pad([[1] * len(ch) for ch in chunks], 0),
            "token_type_ids": pad([[0] * len(ch) for ch in chunks], 0),
            "token_index": pad(rows, 0),
            "token_mask": pad([[1] * len(r) for r in rows], 0),
        }
        if "label_ids" in features[0]:
            labels = torch.zeros(len(features), len(self.labels))
            for i, f in enumerate(features):
                labels[i, f["label_ids"]] = 1.0
            batch["labels"] = labels
        return batch

    # ---------------------------------------------------------------- inference
    def buffer_size(self, batch_size: int) -> int:
        return max(16, batch_size * 4)

    def _scores(self, model: nn.Module, features: list[dict[str, Any]], *, batch_size: int, device: torch.device,
                bf16: bool, evidence: bool) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray] | None]]:
        """Probabilities (docs, codes) and, per document, its top codes with their token weights."""
        model.eval()
        probs = np.zeros((len(features), len(self.labels)), dtype=np.float32)
        tops: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(features)
        k = min(int(self.meta.get("max_codes", 50)), len(self.labels)) if evidence else 0
        # the attention is (docs, codes, tokens): a few documents per forward pass bound its memory
        step = max(1, min(batch_size, 8))
        with torch.inference_mode(), autocast(device, bf16):
            for idx in length_batches([self.feature_length(f) for f in features], step):
                batch = {key: v.to(device) for key, v in self.collate([features[i] for i in idx]).items()}
                out = model(**batch, evidence_top=k)
                probs[idx] = torch.sigmoid(out["logits"].float()).cpu().numpy()
                if k:
                    codes, weights = out["top_codes"].cpu().numpy(), out["top_weights"].float().cpu().numpy()
                    for j, i in enumerate(idx):
                        n = len(features[i]["context"])
                        tops[i] = (codes[j], weights[j, :, :n])
        return probs, tops

    def decide(self, doc: Document, probs: np.ndarray, top: tuple[np.ndarray, np.ndarray] | None,
               context: ContextTokens | None, threshold: float | None = None, diagnostics: Counter | None = None
               ) -> Document:
        m = self.meta
        cut = self.threshold if threshold is None else threshold
        pred = doc.copy(annotations=False)
        order = np.argsort(-probs, kind="stable")
        depth = min(int(m.get("score_depth", 1000)), len(order))
        pred.label_scores = {self.labels[j]: round(float(probs[j]), 6) for j in order[:depth]}
        chosen = [int(j) for j in order[: int(m.get("max_codes", 50))] if probs[j] >= cut]
        pred.labels = [self.labels[j] for j in chosen]
        weights = {int(c): w for c, w in zip(*top)} if top is not None else {}
        offsets = np.asarray(context.offsets if context is not None else [], dtype=np.int64).reshape(-1, 2)
        entries, n_span = [], 0
        for j in chosen:
            code = self.labels[j]
            ids = []
            if j in weights and m.get("evidence_spans", 3):
                for rank, ev in enumerate(evidence_spans(pred.text, offsets, weights[j], top_tokens=m.get(
                        "evidence_tokens", 8), max_spans=m.get("evidence_spans", 3)), start=1):
                    n_span += 1
                    span = Span(start=ev.start, end=ev.end, label=EVIDENCE_LABEL, text=pred.text[ev.start:ev.end],
                                score=round(ev.weight, 6), ids=[code], id=f"E{n_span}",
                                attributes={"code": code, "rank": rank})
                    pred.spans.append(span)
                    ids.append(span.id)
            elif diagnostics is not None:
                diagnostics["codes_without_evidence"] += 1
            entry: dict[str, Any] = {"code": code, "score": pred.label_scores.get(code, round(float(probs[j]), 6)),
                                     "category": icd10.category(code, self.system),
                                     "chapter": icd10.chapter(code, self.system), "evidence": ids}
            if code in (m.get("descriptions") or {}):
                entry["description"] = m["descriptions"][code]
            entries.append(entry)
        pred.metadata["codes"] = entries
        return pred

    def predict_buffer(self, model: nn.Module, docs: list[Document], *, batch_size: int, device: torch.device,
                       bf16: bool, diagnostics: Counter) -> list[Document]:
        features = [self._features(doc) for doc in docs]
        diagnostics["chunks"] += sum(len(f["input_ids"]) for f in features)
        probs, tops = self._scores(model, features, batch_size=batch_size, device=device, bf16=bf16, evidence=True)
        return [self.decide(doc, p, t, f["context"], diagnostics=diagnostics)
                for doc, p, t, f in zip(docs, probs, tops, features)]

    # ---------------------------------------------------------------- threshold
    def _fit_threshold(self, model: nn.Module, dev_docs: list[Document], *, batch_size: int, device: torch.device,
                       bf16: bool) -> tuple[float, np.ndarray, list[dict[str, Any]]]:
        features = [self._features(doc) for doc in dev_docs]
        probs, _ = self._scores(model, features, batch_size=batch_size, device=device, bf16=bf16, evidence=False)
        gold = np.zeros_like(probs, dtype=bool)
        outside = 0
        for i, doc in enumerate(dev_docs):
            for lab in doc.labels:
                if lab in self.label_to_id:
                    gold[i, self.label_to_id[lab]] = True
                else:
                    outside += 1
        return tune_threshold(probs, gold, outside), probs, features

    def after_training(self, model: nn.Module, dev_docs: list[Document], *, batch_size: int,
                       device: torch.device, bf16: bool) -> None:
        if not (self.meta.get("tune_threshold", True) and dev_docs):
            return
        self.threshold, _, _ = self._fit_threshold(model, dev_docs, batch_size=batch_size, device=device, bf16=bf16)
        self.meta["threshold"] = self.threshold  # a parameter of the finished model
        logger.info("tuned the coding threshold on %d dev documents: %.2f", len(dev_docs), self.threshold)

    def dev_predictions(self, model: nn.Module, dev_docs: list[Document], *, batch_size: int,
                        device: torch.device, bf16: bool) -> list[Document]:
        """The epoch is chosen by dev micro-F1 at the threshold tuned on dev, as the model ships (without
        evidence, which the choice does not read)."""
        if not (self.meta.get("tune_threshold", True) and dev_docs):
            features = [self._features(doc) for doc in dev_docs]
            probs, _ = self._scores(model, features, batch_size=batch_size, device=device, bf16=bf16, evidence=False)
            return [self.decide(d, p, None, None) for d, p in zip(dev_docs, probs)]
        threshold, probs, _ = self._fit_threshold(model, dev_docs, batch_size=batch_size, device=device, bf16=bf16)
        return [self.decide(d, p, None, None, threshold) for d, p in zip(dev_docs, probs)]

    # ---------------------------------------------------------------- trust
    def rescore(self, pred: Document, calibration: Calibrator) -> None:
        pred.label_scores = {lab: round(calibration.one(p), 6) for lab, p in pred.label_scores.items()}
        for entry in pred.metadata.get("codes") or []:
            entry["score"] = pred.label_scores.get(entry["code"], entry["score"])

    def mark_abstained(self, pred: Document, threshold: float) -> int:
        """A predicted code scoring under ``threshold`` is marked (``abstained: true`` in its
        ``metadata["codes"]`` entry); the document counts once."""
        unsure = [e for e in pred.metadata.get("codes") or [] if e["score"] < threshold]
        for entry in unsure:
            entry["abstained"] = True
        if unsure:
            pred.metadata["abstained"] = True
        return int(bool(unsure))

    def scored_items(self, gold: list[Document], pred: list[Document]) -> ScoredItems:
        """Each (document, code) score kept in ``label_scores`` against the code's presence."""
        rows = [(d, score, lab in g.labels) for d, (g, p) in enumerate(_pair_docs(gold, pred))
                for lab, score in p.label_scores.items()]
        return ScoredItems.from_rows(rows, kind="presence", unit="codes")

    def headline_counts(self, gold: list[Document], pred: list[Document], **options: Any) -> np.ndarray:
        return coding_counts(gold, pred)

    def metrics(self, gold: list[Document], pred: list[Document], *, diagnostics: Counter | None = None,
                **options: Any) -> dict[str, Any]:
        seen = [lab for lab in self.labels if lab not in self.unseen]
        return coding_metrics(gold, pred, system=self.system, train_codes=seen)

    def error_examples(self, gold: list[Document], pred: list[Document], n: int) -> list[dict[str, Any]]:
        out = []
        for g, p in _pair_docs(gold, pred):
            missed, extra = sorted(set(g.labels) - set(p.labels)), [c for c in p.labels if c not in g.labels]
            if missed or extra:
                out.append({"document": g.id, "missed": missed, "extra": extra})
        return out[:n]
