"""The second stage: rescore the first ``depth`` fused passages, then fuse the two rankings.

Two rerankers, one interface (``scores(question, vector, passages, texts) -> one score per passage``):

* :class:`MaxSimReranker` needs no training: a passage's score is the best cosine between the question
  and any of its sentences (or the whole passage), with the knowledge base's own encoder. A long
  passage that answers in one sentence is no longer diluted by the rest. Sentence vectors are cached
  per passage (bounded), so questions that share candidates embed them once.
* :class:`ModelReranker` is a cross-encoder: a medtune *classification* model trained on (question,
  passage) pairs (``text`` = the passage as indexed, ``text_pair`` = the question, labels ``relevant``
  / ``irrelevant``; see :func:`medtune.retrieval.training_data.reranker_pairs` and
  ``configs/medquad-reranker.yaml``). The score is the probability of ``positive_label``.

:func:`rerank_order` fuses the fused ranking and the reranker's ranking over the top ``depth`` by
weighted reciprocal rank, ``(1 - weight) / (60 + rank_fused) + weight / (60 + rank_reranker)``
(``weight`` 1 = the reranker's order; chosen on dev); passages below ``depth`` keep their order.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np

from medtune.document import Document
from medtune.errors import ConfigError, ModelError
from medtune.retrieval.dense import Encoder, encode
from medtune.retrieval.hybrid import ranks
from medtune.sentences import split_sentences

__all__ = ["Reranker", "MaxSimReranker", "ModelReranker", "rerank_order", "RRF_K"]

RRF_K = 60


class Reranker(Protocol):
    kind: str

    def scores(self, question: str, vector: np.ndarray, ids: Sequence[str], texts: Sequence[str]) -> np.ndarray: ...


class MaxSimReranker:
    """Best sentence cosine (see the module docstring)."""

    kind = "maxsim"

    def __init__(self, encoder: Encoder, cache_size: int = 50_000) -> None:
        self.encoder = encoder
        self.cache_size = cache_size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def _sentence_vectors(self, ids: Sequence[str], texts: Sequence[str]) -> list[np.ndarray]:
        with self._lock:
            found = {i: self._cache[i] for i in ids if i in self._cache}
            for i in found:
                self._cache.move_to_end(i)
        missing = [(i, t) for i, t in zip(ids, texts) if i not in found]
        if missing:
            pieces: list[str] = []
            owners: list[int] = []
            for k, (_, text) in enumerate(missing):
                sentences = [text[a:b] for a, b in split_sentences(text) if text[a:b].strip()]
                for sentence in (sentences if len(sentences) > 1 else []) + [text]:
                    pieces.append(sentence)
                    owners.append(k)
            vectors = encode(self.encoder, pieces)
            owner = np.asarray(owners)
            with self._lock:
                for k, (pid, _) in enumerate(missing):
                    found[pid] = self._cache[pid] = vectors[owner == k]
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return [found[i] for i in ids]

    def scores(self, question: str, vector: np.ndarray, ids: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        if not ids:
            return np.zeros(0, dtype=np.float32)
        return np.array([float((v @ vector).max()) for v in self._sentence_vectors(ids, texts)], dtype=np.float32)


class ModelReranker:
    """A medtune pair classifier as cross-encoder (see the module docstring)."""

    kind = "model"

    def __init__(self, model_dir: str | Path, positive_label: str = "relevant", batch_size: int = 16,
                 mode: str = "auto") -> None:
        from medtune.inference import load

        self.model_dir = str(model_dir)
        self.predictor = load(model_dir, mode=mode, batch_size=batch_size)
        task = self.predictor.task
        if getattr(task, "name", None) != "classification" or positive_label not in (task.labels or ()):
            raise ModelError(f"{model_dir} is not a pair classifier with the label '{positive_label}' "
                             f"(task {getattr(task, 'name', '?')}, labels {', '.join(task.labels or ())})",
                             fix="train one with configs/medquad-reranker.yaml, or set rerank.positive_label")
        self.positive_label = positive_label

    def scores(self, question: str, vector: np.ndarray, ids: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        docs = [Document(id=f"candidate-{k}", text=text, text_pair=question) for k, text in enumerate(texts)]
        out = list(self.predictor.pipe(docs))
        return np.array([float(d.label_scores.get(self.positive_label, 0.0)) for d in out], dtype=np.float32)


def rerank_order(order: np.ndarray, rerank_scores: np.ndarray, weight: float, rows: np.ndarray) -> np.ndarray:
    """The top ``len(rerank_scores)`` positions of ``order`` re-fused with the reranker (module docstring).

    ``rows``: the passage rows of the positions in ``order[:depth]`` (the last tie-break).
    """
    depth = len(rerank_scores)
    head = order[:depth]
    fused_rank = np.arange(1, depth + 1)
    rerank_rank = ranks(rerank_scores, -fused_rank.astype(np.float32), rows)
    final = (1 - weight) / (RRF_K + fused_rank) + weight / (RRF_K + rerank_rank)
    return np.concatenate([head[np.lexsort((fused_rank, -final))], order[depth:]])


def make_reranker(kind: str, *, encoder: Encoder, model: str | None, positive_label: str) -> Any:
    """The reranker of ``rerank.kind`` (``None`` for ``none``)."""
    if kind == "none":
        return None
    if kind == "maxsim":
        return MaxSimReranker(encoder)
    if not model:
        raise ConfigError("rerank.kind 'model' needs rerank.model (a model directory)",
                          fix="give the reranker's directory, e.g. --rerank models/medquad-reranker")
    return ModelReranker(model, positive_label=positive_label)
