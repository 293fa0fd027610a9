"""Extractive question answering: a question and a context of any length in, answer spans out.

The context is ``doc.text`` and the question ``doc.text_pair`` (as in pair classification); gold
answers are spans labelled ``answer`` on ``doc.text`` (several allowed; none means the question has no
answer). The context is read in overlapping windows of ``max_length`` tokens, each with the whole
question (see :mod:`medtune.tasks.qa_windows`); a start and an end score per token give candidate
spans in every window, which are merged over the document (one score per character span).

A prediction holds the ``n_best`` candidates as ``answer`` spans, best first, each with ``score`` (a
softmax over the n-best and, for a model with the no-answer option, the no-answer score) and
``attributes["rank"]`` (1 = the answer). With the no-answer option (``model.no_answer``; by default
on when some training question has no answer) the no-answer score is the best window's score of
"start and end on [CLS]"; when it beats the best span by more than ``null_threshold`` (tuned on the
dev split, saved in the model meta), the document is labelled ``no_answer`` (its candidates are
kept, for review), and ``label_scores["no_answer"]`` holds that probability.

Metrics follow the official SQuAD evaluation (v2 script): answers are normalised (lower case, ASCII
punctuation and the articles a/an/the removed, white space collapsed), exact match and token F1
take the maximum over the gold answers; the headline ``f1`` is the mean F1 over questions (0-1, not
the script's 0-100), with the has-answer / no-answer breakdown.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import re
import string
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, model_validator
from torch import nn

from medtune.batching import buffered, length_batches
from medtune.document import Document, Span
from medtune.errors import ConfigError, DataFormatError, ModelError, quote_id
from medtune.evaluation.metrics import _pair_docs
from medtune.io.squad import ANSWER, NO_ANSWER, predicted_answer
from medtune.models.heads import SpanExtractionModel
from medtune.runtime import autocast
from medtune.tasks.base import Task, pad, tokenize
from medtune.tasks.options import TaskOptions
from medtune.tasks.qa_passages import (CrossEncoderSentenceRanker, PassagePrior, SentenceRanker, SentenceRanking,
                                       prior_candidates, tune_passage_prior)
from medtune.tasks.qa_windows import (ContextTokens, Window, build_windows, context_tokens, merge_candidates,
                                      null_score, pair_template, window_candidates, window_target)
from medtune.tasks.registry import register_task
from medtune.trust.calibration import Calibrator
from medtune.trust.items import ScoredItems

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------- SQuAD normalisation
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """The official SQuAD normalisation: lower case, no ASCII punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, gold: str) -> int:
    return int(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(prediction: str, gold: str) -> float:
    """Token F1 of the normalised answers; an empty one scores 1 only against an empty one."""
    pred_tokens, gold_tokens = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    common = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred_tokens), common / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def gold_answers(doc: Document) -> list[str]:
    """The gold answer texts that normalise to something; ``[""]`` for a question without one (as the
    official script scores it)."""
    texts = [doc.text[s.start:s.end] for s in doc.spans if s.label == ANSWER]
    return [t for t in texts if normalize_answer(t)] or [""]


def question_scores(gold: Document, pred: Document) -> tuple[int, float]:
    answers, answer = gold_answers(gold), predicted_answer(pred)
    return max(exact_match(answer, g) for g in answers), max(token_f1(answer, g) for g in answers)


def squad_metrics(gold: list[Document], pred: list[Document]) -> dict[str, Any]:
    """Exact match and F1 (means over questions, 0-1), overall and for questions with / without an answer."""
    rows = {"has_answer": [], "no_answer": []}
    predicted_none = 0
    for g, p in _pair_docs(gold, pred):
        em, f1 = question_scores(g, p)
        rows["no_answer" if gold_answers(g) == [""] else "has_answer"].append((em, f1))
        predicted_none += int(predicted_answer(p) == "")
    every = rows["has_answer"] + rows["no_answer"]

    def summary(items: list[tuple[int, float]]) -> dict[str, Any]:
        n = len(items)
        return {"exact_match": sum(e for e, _ in items) / n if n else 0.0,
                "f1": sum(f for _, f in items) / n if n else 0.0, "questions": n}

    out = summary(every)
    result: dict[str, Any] = {"f1": out["f1"], "exact_match": out["exact_match"], "questions": out["questions"],
                              "documents": out["questions"], "predicted_no_answer": predicted_none}
    for key, items in rows.items():
        if items:
            result[key] = summary(items)
    return result


# --------------------------------------------------------------------------- options
class QaOptions(TaskOptions):
    head: Literal["linear"] = "linear"
    labels: list[str] | None = Field(None, description="always ['answer'] (the label of answer spans)")
    max_length: int = Field(384, ge=32, le=8192, description="tokens per window: question, context part and "
                                                              "special tokens")
    stride: int = Field(128, ge=0, description="context tokens shared by consecutive windows")
    max_question_tokens: int = Field(64, ge=1, description="longer questions are cut to this many tokens "
                                     "(counted in the diagnostics and the training log)")
    max_answer_tokens: int = Field(30, ge=1, description="the longest answer predicted, in tokens")
    n_best: int = Field(5, ge=1, le=100, description="answer candidates returned per question")
    no_answer: bool | None = Field(None, description="predict 'no answer' when the [CLS] score beats the best "
                                   "span by more than a threshold tuned on dev; None = on when some training "
                                   "question has no answer")
    negative_window_ratio: float = Field(
        1.0, ge=0.0, le=1.0, description="training keeps every window that holds an answer and this share "
        "of the others (chosen by a hash of training.seed, question id and window, so the same ones every "
        "epoch and run); a question without an answer keeps at least one window")
    passage_prior: PassagePrior = Field(
        "off", description="bm25: rank the context's sentences against the question with BM25, read only the "
        "windows over the best top_k sentences and add weight x the sentence score to each span's; top_k and "
        "weight are chosen on the dev split (medtune.tasks.qa_passages; needs the retrieval extra); rerank: the "
        "same, with the passage_ranker_depth best BM25 sentences rescored by the cross-encoder passage_ranker")
    passage_ranker: str | None = Field(
        None, description="passage_prior rerank: a medtune classification model directory over (sentence, "
        "question) pairs with the label 'relevant' (configs/covid-qa-sentences.yaml trains one)")
    passage_ranker_depth: int = Field(50, ge=1, description="passage_prior rerank: the BM25 sentences rescored")

    @model_validator(mode="after")
    def _room_for_context(self) -> QaOptions:
        room = self.max_length - self.max_question_tokens - 4
        if self.stride >= room:
            raise ValueError(f"model.stride ({self.stride}) must be smaller than model.max_length - "
                             f"model.max_question_tokens - 4 ({room}): windows need new context tokens")
        if self.labels is not None and self.labels != [ANSWER]:
            raise ValueError("model.labels of a qa model is ['answer'] (the label of answer spans)")
        if self.passage_prior != "off" and not all(importlib.util.find_spec(m) for m in ("bm25s", "Stemmer")):
            raise ValueError(f"model.passage_prior: {self.passage_prior} needs the retrieval extra: "
                             "pip install 'medtune[retrieval]' -c constraints.txt")
        if self.passage_prior == "rerank" and not self.passage_ranker:
            raise ValueError("model.passage_prior: rerank needs model.passage_ranker (a sentence cross-encoder's "
                             "directory; configs/covid-qa-sentences.yaml trains one)")
        return self


@dataclass
class _Scored:
    """What the model says about one question: merged candidates (best first) and the no-answer score."""

    candidates: list[tuple[float, int, int]]
    null: float


# --------------------------------------------------------------------------- the task
@register_task
class QaTask(Task):
    name = "qa"
    options_class = QaOptions
    onnx_graph = None  # no ONNX graph for span extraction yet: `medtune export` says so
    ensemble = None  # no ensembles: members' candidate spans are not averaged

    def __init__(self, meta: dict[str, Any], tokenizer: Any) -> None:
        super().__init__(meta, tokenizer)
        self.max_length: int = meta["max_length"]
        self.stride: int = meta["stride"]
        self.max_question_tokens: int = meta.get("max_question_tokens", 64)
        self.max_answer_tokens: int = meta.get("max_answer_tokens", 30)
        self.n_best: int = meta.get("n_best", 5)
        self.no_answer: bool = bool(meta.get("no_answer", False))
        self.null_threshold: float = float(meta.get("null_threshold", 0.0))
        self.template = pair_template(tokenizer)
        self.passage_prior: str = meta.get("passage_prior", "off")
        self.passage_top_k: int | None = meta.get("passage_top_k")
        self.passage_weight: float = float(meta.get("passage_weight", 0.0))
        self.passage_ranker: str | None = meta.get("passage_ranker")
        self.passage_ranker_depth: int = int(meta.get("passage_ranker_depth", 50))
        self._reranker: Any = None  # the cross-encoder of passage_prior rerank, loaded on first use

    @classmethod
    def meta_from_config(cls, config: Any, train_docs: list[Document]) -> dict[str, Any]:
        m = config.model
        if m.passage_prior == "rerank" and not (Path(m.passage_ranker or "") / "config.json").is_file():
            # checked before training: the prior is tuned after it
            raise ConfigError(f"model.passage_ranker {m.passage_ranker} is not a model directory",
                              fix="train the sentence cross-encoder first (medtune train "
                                  "configs/covid-qa-sentences.yaml --output models/covid-qa-sentences), or set "
                                  "model.passage_prior: bm25")
        no_answer = m.no_answer
        if no_answer is None:
            no_answer = any(not _answer_spans(d) for d in train_docs)
        return {
            "task": cls.name, "labels": [ANSWER], "head": m.head, "max_length": m.max_length,
            "stride": m.stride, "dropout": m.dropout, "max_question_tokens": m.max_question_tokens,
            "max_answer_tokens": m.max_answer_tokens, "n_best": m.n_best, "no_answer": bool(no_answer),
            "null_threshold": 0.0, "negative_window_ratio": m.negative_window_ratio,
            "negative_window_seed": config.training.seed, "passage_prior": m.passage_prior,
            "passage_top_k": None, "passage_weight": 0.0,
            "passage_ranker": str(Path(m.passage_ranker).resolve()) if m.passage_ranker else None,
            "passage_ranker_depth": m.passage_ranker_depth,
        }

    def build_model(self, encoder: nn.Module) -> nn.Module:
        return SpanExtractionModel(encoder, dropout=self.meta.get("dropout", 0.1))

    # ---------------------------------------------------------------- checks
    def check_documents(self, docs: list[Document], *, source: str, training: bool) -> None:
        if docs and all(d.text_pair is None for d in docs):
            raise DataFormatError(
                "the documents have no question (text_pair): they are not question-answering data, and this "
                "is a qa model", path=source, field="text_pair",
                fix="give documents with the question in text_pair and the context in text (e.g. a SQuAD file)")
        for doc in docs:
            doc.validate(source=source)
            if doc.text_pair is None:
                raise DataFormatError(f"document {quote_id(doc.id)} has no question", path=source,
                                      field="text_pair", fix="put the question in text_pair")
            for i, span in enumerate(doc.spans):
                if span.label != ANSWER:
                    raise DataFormatError(
                        f"document {quote_id(doc.id)} has a span labelled {quote_id(span.label)}; a qa model "
                        "reads answer spans only", path=source, field=f"spans[{i}].label",
                        fix="label gold answers 'answer' (the SQuAD reader does), or remove other spans")
            if training and not doc.text.strip():
                raise DataFormatError(f"document {quote_id(doc.id)} has an empty context", path=source,
                                      field="text", fix="remove questions without a context from the training data")
            if training and not self.no_answer and not _answer_spans(doc):
                raise DataFormatError(
                    f"document {quote_id(doc.id)} has no answer, and the model has no no-answer option",
                    path=source, field="spans", fix="set model.no_answer: true, or give every question an answer")

    # ---------------------------------------------------------------- encoding
    def _question(self, doc: Document, counts: Counter) -> list[int]:
        if doc.text_pair is None:
            raise DataFormatError(f"document {quote_id(doc.id)} has no question", field="text_pair",
                                  fix="put the question in text_pair (a qa model answers questions)")
        ids = list(tokenize(self.tokenizer, doc.text_pair, add_special_tokens=False, verbose=False)["input_ids"])
        if len(ids) > self.max_question_tokens:
            counts["questions_truncated"] += 1
            ids = ids[:self.max_question_tokens]
        return ids

    def _windows(self, doc: Document, d: int, context: ContextTokens, counts: Counter) -> list[Window]:
        question = self._question(doc, counts)
        capacity = self.max_length - self.template.specials - len(question)
        windows = build_windows(self.template, question, context, doc=d, capacity=capacity, stride=self.stride)
        counts["windows"] += len(windows)
        return windows

    def encode_for_training(self, docs: list[Document]) -> list[dict[str, Any]]:
        counts: Counter = Counter()
        ratio = float(self.meta.get("negative_window_ratio", 1.0))
        seed = self.meta.get("negative_window_seed", 0)
        contexts: dict[str, ContextTokens] = {}
        features = []
        for d, doc in enumerate(docs):
            context = contexts.get(doc.text)
            if context is None:
                context = contexts[doc.text] = context_tokens(self.tokenizer, doc.text)
            answers = []
            for span in _answer_spans(doc):
                tokens = context.token_range(span.start, span.end)
                if tokens is None:
                    counts["answers_without_tokens"] += 1
                    continue
                if tokens[1] - tokens[0] + 1 > self.max_answer_tokens:
                    counts["answers_longer_than_max_answer_tokens"] += 1
                answers.append(tokens)
            windows = self._windows(doc, d, context, counts)
            targets = [window_target(w, answers) for w in windows]
            if answers and all(t == (0, 0) for t in targets):
                counts["answers_in_no_window"] += 1
            kept = [k for k, t in enumerate(targets) if t != (0, 0) or _keep(seed, doc.id, k, ratio)]
            if not kept and not answers:  # a question without an answer still teaches "no answer"
                kept = [min(range(len(windows)), key=lambda k: _hash(seed, doc.id, k))]
            counts["windows_kept"] += len(kept)
            for k in kept:
                w = windows[k]
                features.append({"input_ids": w.input_ids, "token_type_ids": w.token_type_ids,
                                 "labels": list(targets[k])})
        logger.info("qa training: %d questions, %d windows, %d kept (negative_window_ratio %s)", len(docs),
                    counts["windows"], counts["windows_kept"], ratio)
        for key, what in (("questions_truncated", f"questions were cut to {self.max_question_tokens} tokens"),
                          ("answers_without_tokens", "gold answers cover no token (white space only) and are "
                                                     "left out"),
                          ("answers_in_no_window", "questions have no answer that fits whole in a window (answer "
                                                   "longer than the stride): no window teaches them"),
                          ("answers_longer_than_max_answer_tokens",
                           f"gold answers are longer than max_answer_tokens ({self.max_answer_tokens}), which "
                           "prediction never returns")):
            if counts[key]:
                logger.warning("%d %s", counts[key], what)
        return features

    def collate(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        pad_id = self.tokenizer.pad_token_id or 0
        batch = {
            "input_ids": pad([f["input_ids"] for f in features], pad_id),
            "attention_mask": pad([[1] * len(f["input_ids"]) for f in features], 0),
            "token_type_ids": pad([f["token_type_ids"] for f in features], 0),
        }
        if "labels" in features[0]:
            batch["labels"] = torch.tensor([f["labels"] for f in features], dtype=torch.long)
        return batch

    # ---------------------------------------------------------------- inference
    def _model_prior(self) -> tuple[int | None, float] | None:
        return (self.passage_top_k, self.passage_weight) if self.passage_prior != "off" else None

    def _sentence_ranker(self, prior: str) -> SentenceRanker | CrossEncoderSentenceRanker:
        """A fresh ranker for one batch (its BM25 indexes hold note text); the cross-encoder is kept."""
        if prior != "rerank":
            return SentenceRanker()
        if self._reranker is None:
            path = self.passage_ranker
            if not path or not (Path(path) / "config.json").is_file():
                raise ModelError(f"the passage ranker of this qa model ({path or 'none'}) is not a model directory",
                                 fix="put the sentence cross-encoder back at that path, or tune the prior again "
                                     "with a ranker (QaTask.tune_passage_prior(..., ranker=DIR)) or with BM25")
            self._reranker = CrossEncoderSentenceRanker(path, depth=self.passage_ranker_depth).reranker
        return CrossEncoderSentenceRanker(self.passage_ranker or "", depth=self.passage_ranker_depth,
                                          reranker=self._reranker)

    def _rankings(self, docs: list[Document], prior: str | None = None) -> list[SentenceRanking]:
        ranker = self._sentence_ranker(prior or self.passage_prior)
        return [ranker.rank(doc.text, doc.text_pair or "") for doc in docs]

    def _score(self, model: nn.Module, docs: list[Document], *, batch_size: int, device: torch.device,
               bf16: bool, diagnostics: Counter, prior: Any = "model") -> list[_Scored]:
        """Candidates of every question; ``prior``: ``(top_k, weight)`` of the BM25 sentence prior, ``None``
        for the reader alone, or ``"model"`` for the model's own setting."""
        prior = self._model_prior() if prior == "model" else prior
        rankings = self._rankings(docs) if prior is not None else None
        contexts: dict[str, ContextTokens] = {}
        windows: list[Window] = []
        for d, doc in enumerate(docs):
            context = contexts.get(doc.text)
            if context is None:
                context = contexts[doc.text] = context_tokens(self.tokenizer, doc.text)
            planned = self._windows(doc, d, context, diagnostics)
            if rankings is not None and prior[0] is not None:
                read = [w for w in planned if w.end <= w.start or rankings[d].overlaps_top(
                    int(context.starts[w.start]), int(context.ends[w.end - 1]), prior[0])]
                diagnostics["windows_skipped_by_passage_prior"] += len(planned) - len(read)
                planned = read
            windows.extend(planned)
        candidates: list[list[tuple[float, int, int]]] = [[] for _ in docs]
        nulls = [np.inf] * len(docs)
        model.eval()
        with torch.inference_mode(), autocast(device, bf16):
            for idx in length_batches([len(w.input_ids) for w in windows], batch_size):
                batch = self.collate([{"input_ids": windows[i].input_ids,
                                       "token_type_ids": windows[i].token_type_ids} for i in idx])
                logits = model(**{k: v.to(device) for k, v in batch.items()})["logits"].float().cpu().numpy()
                for row, i in enumerate(idx):
                    w = windows[i]
                    start, end = logits[row, :, 0], logits[row, :, 1]
                    nulls[w.doc] = min(nulls[w.doc], null_score(start, end))
                    candidates[w.doc].extend(window_candidates(start, end, w, contexts[docs[w.doc].text],
                                                               max_answer_tokens=self.max_answer_tokens))
        merged = [merge_candidates(c) for c in candidates]
        if rankings is not None:
            merged = [prior_candidates(c, r, top_k=prior[0], weight=prior[1]) for c, r in zip(merged, rankings)]
        return [_Scored(c, float(n)) for c, n in zip(merged, nulls)]

    def _decide(self, doc: Document, scored: _Scored, threshold: float) -> Document:
        pred = doc.copy(annotations=False)
        best = scored.candidates[:self.n_best]
        logits = [s for s, _, _ in best] + ([scored.null] if self.no_answer else [])
        probs = _softmax(np.array(logits, dtype=np.float64)) if logits else np.zeros(0)
        for rank, ((_, a, b), p) in enumerate(zip(best, probs), start=1):
            pred.spans.append(Span(start=a, end=b, label=ANSWER, text=doc.text[a:b], score=round(float(p), 6),
                                   attributes={"rank": rank}))
        if self.no_answer:
            pred.label_scores = {NO_ANSWER: round(float(probs[-1]), 6)}
        if not best or (self.no_answer and scored.null - best[0][0] > threshold):
            pred.labels = [NO_ANSWER]
        return pred

    def predict_buffer(self, model: nn.Module, docs: list[Document], *, batch_size: int, device: torch.device,
                       bf16: bool, diagnostics: Counter) -> list[Document]:
        scored = self._score(model, docs, batch_size=batch_size, device=device, bf16=bf16, diagnostics=diagnostics)
        return [self._decide(doc, s, self.null_threshold) for doc, s in zip(docs, scored)]

    def _dev_scores(self, model: nn.Module, dev_docs: list[Document], **kwargs: Any) -> list[_Scored]:
        out: list[_Scored] = []
        for chunk in buffered(dev_docs, self.buffer_size(kwargs["batch_size"])):
            out.extend(self._score(model, chunk, diagnostics=Counter(), **kwargs))
        return out

    def _tuned_prior(self, model: nn.Module, dev_docs: list[Document], **kwargs: Any) -> dict[str, Any]:
        """The sentence prior (of the model's ``passage_prior``: BM25 or reranked) that maximises dev F1
        (:func:`tune_passage_prior`) and the reader's own F1."""
        raw = self._dev_scores(model, dev_docs, prior=None, **kwargs)

        def scorer(doc: Document) -> Any:
            answers = gold_answers(doc)
            return lambda a, b: max(token_f1(doc.text[a:b], g) for g in answers)

        f1_of = [scorer(doc) for doc in dev_docs]
        alone = float(np.mean([f(s.candidates[0][1], s.candidates[0][2]) if s.candidates else f(0, 0)
                               for f, s in zip(f1_of, raw)])) if raw else 0.0
        rankings = self._rankings(dev_docs)
        top_k, weight, f1 = tune_passage_prior(f1_of, [s.candidates for s in raw], rankings)
        return {"prior": self.passage_prior, "top_k": top_k, "weight": weight, "dev_f1": round(f1, 6),
                "dev_f1_reader_alone": round(alone, 6), "questions": len(dev_docs)}

    def tune_passage_prior(self, model: nn.Module, dev_docs: list[Document], *, batch_size: int,
                           device: torch.device, bf16: bool, prior: str | None = None,
                           ranker: str | Path | None = None, depth: int | None = None) -> dict[str, Any]:
        """Turn the sentence prior on with the ``top_k`` and ``weight`` best on ``dev_docs`` (saved in the meta
        with the model; also for a model trained without it). ``prior``: ``bm25`` or ``rerank`` (default:
        ``rerank`` when ``ranker`` is given, else the model's own prior, else ``bm25``); ``ranker``: a sentence
        cross-encoder's directory, rescoring the ``depth`` best BM25 sentences. Returns the choice and dev F1s."""
        if not dev_docs:
            raise ValueError("the passage prior is tuned on dev questions: none were given")
        prior = prior or ("rerank" if ranker is not None else
                          self.passage_prior if self.passage_prior != "off" else "bm25")
        if prior not in ("bm25", "rerank"):
            raise ValueError(f"prior must be 'bm25' or 'rerank', not {prior!r}")
        before = (self.passage_prior, self.passage_ranker, self.passage_ranker_depth, self._reranker)
        self.passage_prior = prior
        if ranker is not None:
            self.passage_ranker, self._reranker = str(Path(ranker).resolve()), None
        if depth is not None:
            self.passage_ranker_depth = depth
        try:
            tuned = self._tuned_prior(model, dev_docs, batch_size=batch_size, device=device, bf16=bf16)
        except BaseException:
            self.passage_prior, self.passage_ranker, self.passage_ranker_depth, self._reranker = before
            raise
        self.passage_top_k, self.passage_weight = tuned["top_k"], tuned["weight"]
        self.meta.update({"passage_prior": self.passage_prior, "passage_top_k": tuned["top_k"],
                          "passage_weight": tuned["weight"], "passage_ranker": self.passage_ranker,
                          "passage_ranker_depth": self.passage_ranker_depth})
        logger.info("passage prior (%s) tuned on %d dev questions: top_k %s, weight %s (dev F1 %.4f; reader alone "
                    "%.4f)", self.passage_prior, len(dev_docs), tuned["top_k"] or "all", tuned["weight"],
                    tuned["dev_f1"], tuned["dev_f1_reader_alone"])
        return tuned

    def after_training(self, model: nn.Module, dev_docs: list[Document], *, batch_size: int,
                       device: torch.device, bf16: bool) -> None:
        """The passage prior (``passage_prior: bm25`` or ``rerank``), then, with the no-answer option, the
        threshold: each the setting that maximises dev F1 becomes the model's."""
        if self.passage_prior != "off" and not dev_docs:
            logger.warning("model.passage_prior: %s is tuned on the dev split, and this run has none: the "
                           "model ships without it (passage_prior off)", self.passage_prior)
            self.passage_prior = self.meta["passage_prior"] = "off"
        elif self.passage_prior != "off":
            self.tune_passage_prior(model, dev_docs, batch_size=batch_size, device=device, bf16=bf16)
        if not (self.no_answer and dev_docs):
            return
        scored = self._dev_scores(model, dev_docs, batch_size=batch_size, device=device, bf16=bf16)
        self.null_threshold = tune_null_threshold(dev_docs, scored)
        self.meta["null_threshold"] = self.null_threshold
        logger.info("no-answer threshold tuned on %d dev questions: %.4f", len(dev_docs), self.null_threshold)

    def dev_predictions(self, model: nn.Module, dev_docs: list[Document], *, batch_size: int,
                        device: torch.device, bf16: bool) -> list[Document]:
        """The epoch is chosen by dev F1 at the prior and threshold tuned on dev, as the model ships."""
        kwargs = {"batch_size": batch_size, "device": device, "bf16": bf16}
        if self.passage_prior != "off" and dev_docs:
            tuned = self._tuned_prior(model, dev_docs, **kwargs)
            # read again as the model will (the windows over the top sentences only: their no-answer score)
            scored = self._dev_scores(model, dev_docs, prior=(tuned["top_k"], tuned["weight"]), **kwargs)
        elif not self.no_answer:
            return super().dev_predictions(model, dev_docs, **kwargs)
        else:
            scored = self._dev_scores(model, dev_docs, **kwargs)
        if not self.no_answer:
            return [self._decide(doc, s, 0.0) for doc, s in zip(dev_docs, scored)]
        threshold = tune_null_threshold(dev_docs, scored)
        return [self._decide(doc, s, threshold) for doc, s in zip(dev_docs, scored)]

    # ---------------------------------------------------------------- trust
    def rescore(self, pred: Document, calibration: Calibrator) -> None:
        for span in pred.spans:
            if span.score is not None:
                span.score = round(calibration.one(span.score), 6)
        if NO_ANSWER in pred.label_scores:
            pred.label_scores[NO_ANSWER] = round(calibration.one(pred.label_scores[NO_ANSWER]), 6)

    def mark_abstained(self, pred: Document, threshold: float) -> int:
        """The answer (rank-1 span, or the no-answer decision) when its score is under ``threshold``."""
        if NO_ANSWER in pred.labels:
            if pred.label_scores.get(NO_ANSWER, 1.0) < threshold:
                pred.metadata["abstained"] = True
                return 1
            return 0
        top = next((s for s in pred.spans if s.attributes.get("rank") == 1), None)
        if top is not None and top.score is not None and top.score < threshold:
            top.attributes["abstained"] = True
            return 1
        return 0

    def scored_items(self, gold: list[Document], pred: list[Document]) -> ScoredItems:
        """Each question's answer with its score, right when it matches a gold answer exactly (normalised)."""
        rows = []
        for d, (g, p) in enumerate(_pair_docs(gold, pred)):
            if NO_ANSWER in p.labels:
                score = p.label_scores.get(NO_ANSWER)
            else:
                score = next((s.score for s in p.spans if s.attributes.get("rank") == 1), None)
            if score is not None:
                rows.append((d, score, bool(question_scores(g, p)[0])))
        return ScoredItems.from_rows(rows, unit="questions")

    # ---------------------------------------------------------------- metrics
    def metrics(self, gold: list[Document], pred: list[Document], *, diagnostics: Counter | None = None,
                **options: Any) -> dict[str, Any]:
        result = squad_metrics(gold, pred)
        if diagnostics:
            result["diagnostics"] = {k: int(v) for k, v in sorted(diagnostics.items())}
        return result

    def error_examples(self, gold: list[Document], pred: list[Document], n: int) -> list[dict[str, Any]]:
        """Questions whose answer is not an exact match, with the gold and predicted answers."""
        out = []
        for g, p in _pair_docs(gold, pred):
            em, f1 = question_scores(g, p)
            if em:
                continue
            top = next((s for s in p.spans if s.attributes.get("rank") == 1), None)
            out.append({"document": g.id, "f1": round(f1, 4),
                        "gold": [{"start": s.start, "end": s.end, "text": g.text[s.start:s.end]}
                                 for s in _answer_spans(g)],
                        "predicted": None if NO_ANSWER in p.labels or top is None else
                        {"start": top.start, "end": top.end, "text": top.text, "score": top.score}})
            if len(out) >= n:
                break
        return out


def tune_null_threshold(gold: list[Document], scored: list[_Scored]) -> float:
    """The no-answer threshold (logit units) with the best mean F1 on ``gold``; ties: nearest 0.

    A question is answered "no answer" when its no-answer score exceeds its best span's by more
    than the threshold.
    """
    margins, f1_answer, f1_none = [], [], []
    for doc, s in zip(gold, scored):
        answers = gold_answers(doc)
        best = doc.text[s.candidates[0][1]:s.candidates[0][2]] if s.candidates else ""
        margins.append(s.null - s.candidates[0][0] if s.candidates else np.inf)
        f1_answer.append(max(token_f1(best, a) for a in answers))
        f1_none.append(max(token_f1("", a) for a in answers))
    margin, ans, none = np.array(margins), np.array(f1_answer), np.array(f1_none)
    best_t, best_f1 = 0.0, -1.0
    finite = [float(m) for m in margin if np.isfinite(m)]
    # at a margin m, that question answers and those above m do not; under the smallest, none answers
    grid = sorted({0.0, *finite, *([min(finite) - 1.0] if finite else [])}, key=lambda t: (abs(t), t))
    for t in grid:
        f1 = float(np.where(margin > t, none, ans).mean()) if len(margin) else 0.0
        if f1 > best_f1 + 1e-12:
            best_t, best_f1 = t, f1
    return round(best_t, 6)


def _answer_spans(doc: Document) -> list[Span]:
    return [s for s in doc.spans if s.label == ANSWER]


def _hash(seed: Any, doc_id: str, k: int) -> int:
    return int(hashlib.sha256(f"{seed}:{doc_id}:{k}".encode("utf-8")).hexdigest(), 16)


def _keep(seed: Any, doc_id: str, k: int, ratio: float) -> bool:
    """A seeded, order-free coin: the same windows are kept every run."""
    return ratio >= 1.0 or _hash(seed, doc_id, k) % 1_000_000 < ratio * 1_000_000


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


__all__ = ["QaOptions", "QaTask", "normalize_answer", "exact_match", "token_f1", "squad_metrics",
           "gold_answers", "predicted_answer", "tune_null_threshold"]
