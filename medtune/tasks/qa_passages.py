"""Retrieve, then read: a BM25 sentence prior for extractive QA over long contexts.

A long context (a full article: COVID-QA's median is ~5,500 tokens, ~26 windows) gives the reader many
windows in which to find a wrong but plausible span. With ``model.passage_prior: bm25`` the sentences of
the context (:func:`medtune.sentences.split_sentences`) are ranked against the question with BM25
(``bm25s``, Lucene variant, lower case, English stop words, Snowball stemmer: the settings of
:class:`medtune.retrieval.bm25.Bm25Index`; the ``retrieval`` extra), and

- only windows that overlap one of the ``passage_top_k`` best sentences are read (the others cost
  nothing: with ``top_k`` 2 the COVID-QA test questions read 613 of their 5,482 windows), and only
  candidate spans that start in one of them are kept;
- each candidate's score (start + end logit) gains ``passage_weight`` times the BM25 score of the
  sentence it starts in, divided by the question's best sentence score (0-1).

With ``model.passage_prior: rerank`` the BM25 ranking is the first stage only: a cross-encoder (a medtune
*classification* model over (sentence, question) pairs, ``model.passage_ranker``, trained with
``configs/covid-qa-sentences.yaml`` on the training questions' sentences) rescores the ``passage_ranker_depth``
sentences BM25 ranks best (:class:`CrossEncoderSentenceRanker`); a sentence's score is then its probability of
holding the answer divided by the question's best, the rescored sentences rank first (by that score), the
others after them in BM25 order with score 0.

``top_k`` and ``weight`` are chosen on the dev split (:func:`tune_passage_prior`: every pair of the grid,
the best mean dev F1, ties to the smaller weight and then the larger ``top_k``), after training or later
(:meth:`medtune.tasks.qa.QaTask.tune_passage_prior`). The grid holds ``weight`` 0 and ``top_k`` = all
sentences, so the prior is never forced on a model it does not help on dev.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal, Sequence

import numpy as np

from medtune.errors import MissingExtraError
from medtune.sentences import split_sentences

PassagePrior = Literal["off", "bm25", "rerank"]
TOP_K_GRID: tuple[int | None, ...] = (1, 2, 3, 5, 10, 20, None)  # None = every sentence
WEIGHT_GRID: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)

__all__ = ["PassagePrior", "SentenceRanking", "SentenceRanker", "CrossEncoderSentenceRanker", "reranked",
           "prior_candidates", "tune_passage_prior", "TOP_K_GRID", "WEIGHT_GRID"]


@dataclass(frozen=True)
class SentenceRanking:
    """The sentences of one context, ranked for one question."""

    starts: np.ndarray  # character start of each sentence (sorted)
    ends: np.ndarray
    scores: np.ndarray  # BM25 score / the question's best score (0-1; all 0 when no query word matches)
    ranks: np.ndarray  # 0 = the best sentence (ties by position)

    def sentence_of(self, chars: np.ndarray) -> np.ndarray:
        """The sentence each character offset falls in (the one starting at or before it; the first if none)."""
        return np.clip(np.searchsorted(self.starts, chars, side="right") - 1, 0, max(len(self.starts) - 1, 0))

    def overlaps_top(self, start: int, end: int, top_k: int | None) -> bool:
        """Does the character range ``[start, end)`` overlap one of the ``top_k`` best sentences?"""
        if top_k is None or not len(self.starts):
            return True
        keep = self.ranks < top_k
        return bool(np.any(keep & (self.starts < end) & (self.ends > start)))


class SentenceRanker:
    """BM25 rankings of a context's sentences; one index per distinct context (contexts repeat over questions).
    The indexes hold the contexts' words: a ranker lives for one batch of questions, never longer."""

    def __init__(self) -> None:
        # the package medtune.retrieval is not imported: it imports the tasks (a circle)
        try:
            import bm25s
            import Stemmer
        except ImportError:
            raise MissingExtraError("model.passage_prior: bm25 (a BM25 sentence prior for qa)", "retrieval") from None
        logging.getLogger("bm25s").setLevel(logging.WARNING)
        self._bm25s, self._stemmer = bm25s, Stemmer.Stemmer("english")
        self._indexes: dict[str, tuple[np.ndarray, np.ndarray, Any]] = {}

    def _tokens(self, texts: list[str], *, ids: bool) -> Any:
        return self._bm25s.tokenize(texts, lower=True, stopwords="en", stemmer=self._stemmer, return_ids=ids,
                                    show_progress=False)

    def rank(self, context: str, question: str) -> SentenceRanking:
        entry = self._indexes.get(context)
        if entry is None:
            sentences = [(a, b) for a, b in split_sentences(context) if b > a] or [(0, len(context))]
            starts = np.array([a for a, _ in sentences], dtype=np.int64)
            ends = np.array([b for _, b in sentences], dtype=np.int64)
            tokens = self._tokens([context[a:b] for a, b in sentences], ids=True)
            index = None
            if len(tokens.vocab):  # a context of stop words or punctuation only has nothing to rank
                index = self._bm25s.BM25(method="lucene")
                index.index(tokens, show_progress=False)
            entry = self._indexes[context] = (starts, ends, index)
        starts, ends, index = entry
        words = self._tokens([question], ids=False)[0] if index is not None else []
        raw = (np.asarray(index.get_scores(words), dtype=np.float64) if words
               else np.zeros(len(starts), dtype=np.float64))
        best = float(raw.max()) if len(raw) else 0.0
        scores = raw / best if best > 0 else np.zeros_like(raw)
        order = np.lexsort((np.arange(len(raw)), -raw))
        ranks = np.empty(len(raw), dtype=np.int64)
        ranks[order] = np.arange(len(raw))
        return SentenceRanking(starts, ends, scores, ranks)


def reranked(first: SentenceRanking, top: np.ndarray, probabilities: np.ndarray) -> SentenceRanking:
    """``first`` with the sentences ``top`` rescored: they rank first by ``probabilities`` (ties: their rank in
    ``first``), scored by probability / the best; every other sentence after them in ``first``'s order, score 0."""
    n = len(first.starts)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if len(top) != len(probabilities):
        raise ValueError("one probability per rescored sentence")
    primary = np.ones(n, dtype=np.float64)  # not rescored: after every rescored sentence (whose keys are <= 0)
    primary[top] = -probabilities
    best = float(probabilities.max()) if len(probabilities) else 0.0
    scores = np.zeros(n, dtype=np.float64)
    if best > 0:
        scores[top] = probabilities / best
    order = np.lexsort((first.ranks, primary))
    ranks = np.empty(n, dtype=np.int64)
    ranks[order] = np.arange(n)
    return SentenceRanking(first.starts, first.ends, scores, ranks)


class CrossEncoderSentenceRanker:
    """BM25, then a pair classifier rescoring the ``depth`` best sentences (the module docstring).

    ``model_dir``: a medtune classification model over ``text`` = sentence, ``text_pair`` = question, with the
    label ``positive_label``. Loaded once; it holds no text. :meth:`rank` indexes contexts like
    :class:`SentenceRanker`, so a ranker (its BM25 part) lives for one batch of questions.
    """

    def __init__(self, model_dir: str, *, depth: int = 50, positive_label: str = "relevant",
                 reranker: Any = None) -> None:
        if depth < 1:
            raise ValueError("passage_ranker_depth must be at least 1")
        if reranker is None:
            # imported here: medtune.retrieval imports the tasks (a circle at import time, not at call time)
            from medtune.retrieval.rerank import ModelReranker

            reranker = ModelReranker(model_dir, positive_label=positive_label, batch_size=64)
        self.reranker, self.depth = reranker, depth
        self.first = SentenceRanker()

    def rank(self, context: str, question: str) -> SentenceRanking:
        first = self.first.rank(context, question)
        top = np.flatnonzero(first.ranks < self.depth)
        top = top[np.argsort(first.ranks[top])]
        texts = [context[first.starts[i]:first.ends[i]] for i in top]
        probabilities = self.reranker.scores(self._fitted(question), np.zeros(0, dtype=np.float32),
                                             [str(i) for i in top], texts) if len(top) else np.zeros(0)
        return reranked(first, top, probabilities)

    def _fitted(self, question: str) -> str:
        """The question cut to half the pair classifier's window (the most a text_pair may take), as the
        reader cuts it to ``max_question_tokens``: a long question is not an error."""
        task = getattr(getattr(self.reranker, "predictor", None), "task", None)
        if task is None or not getattr(task, "max_length", None):
            return question
        limit = task.max_length // 2
        encoded = task.tokenizer(question, add_special_tokens=False, return_offsets_mapping=True)
        if len(encoded["input_ids"]) <= limit:
            return question
        return question[:encoded["offset_mapping"][limit - 1][1]]


def prior_candidates(candidates: Sequence[tuple[float, int, int]], ranking: SentenceRanking, *,
                     top_k: int | None, weight: float) -> list[tuple[float, int, int]]:
    """The candidates that start in a ``top_k`` sentence, each score + ``weight`` x its sentence's score,
    best first (ties: earlier, then shorter). None left: the question gets no answer."""
    arr, ranks, scores = _placed(candidates, ranking)
    keep = _in_top(ranks, top_k)
    score = arr[:, 0] + weight * scores
    out = [(float(score[i]), int(arr[i, 1]), int(arr[i, 2])) for i in np.flatnonzero(keep)]
    return sorted(out, key=lambda c: (-c[0], c[1], c[2]))


def _placed(candidates: Sequence[tuple[float, int, int]], ranking: SentenceRanking
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidates as rows ``(score, start, end)``, with the rank and score of the sentence each starts in."""
    arr = np.array([(s, a, b) for s, a, b in candidates], dtype=np.float64).reshape(-1, 3)
    sentence = ranking.sentence_of(arr[:, 1].astype(np.int64))
    return arr, ranking.ranks[sentence], ranking.scores[sentence]


def _in_top(ranks: np.ndarray, top_k: int | None) -> np.ndarray:
    return np.ones(len(ranks), dtype=bool) if top_k is None else ranks < top_k


def tune_passage_prior(f1_of: Sequence[Any], candidates: Sequence[Sequence[tuple[float, int, int]]],
                       rankings: Sequence[SentenceRanking]) -> tuple[int | None, float, float]:
    """``(top_k, weight, mean dev F1)`` of the best grid point; ``f1_of[q](start, end)`` scores an answer.

    The answer of each grid point is exactly the rank-1 candidate :func:`prior_candidates` gives. A
    question without candidates left scores the empty answer (``f1_of[q](0, 0)``).
    Ties: the smaller weight, then the larger ``top_k`` (the mildest prior).
    """
    prepared = [(*_placed(cands, ranking), {}) for cands, ranking in zip(candidates, rankings)]

    def answer_f1(q: int, a: int, b: int) -> float:
        cache = prepared[q][3]
        if (a, b) not in cache:
            cache[(a, b)] = float(f1_of[q](a, b))
        return cache[(a, b)]

    best: tuple[float, float, float] | None = None
    best_point: tuple[int | None, float, float] = (None, 0.0, 0.0)
    for top_k in TOP_K_GRID:
        for weight in WEIGHT_GRID:
            total = 0.0
            for q, (arr, ranks, scores, _) in enumerate(prepared):
                keep = _in_top(ranks, top_k)
                if not keep.any():
                    total += answer_f1(q, 0, 0)
                    continue
                score = np.where(keep, arr[:, 0] + weight * scores, -np.inf)
                tied = np.flatnonzero(score == score.max())
                i = tied[np.lexsort((arr[tied, 2], arr[tied, 1]))[0]]
                total += answer_f1(q, int(arr[i, 1]), int(arr[i, 2]))
            mean = total / max(len(prepared), 1)
            key = (-round(mean, 12), weight, -(top_k if top_k is not None else 10**9))
            if best is None or key < best:
                best, best_point = key, (top_k, weight, mean)
    return best_point

