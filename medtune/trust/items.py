"""Scored decisions of a task, the common input of calibration, reliability and selective prediction."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class ScoredItems:
    """One row per scored prediction: the document it belongs to, its score and whether it is right.

    ``kind`` says what the score is the probability of: ``"decision"`` (the prediction is right: a
    predicted span, relation, the chosen class or assertion value) or ``"presence"`` (a multi-label
    label is present; the decision is then ``score >= 0.5`` and its confidence ``max(p, 1 - p)``).
    ``gold_total`` is the number of gold items for span and relation tasks (recall and F1 of the kept
    predictions need it) and None where every gold item has a prediction (classification, assertion).
    """

    doc: np.ndarray  # int, index of the document
    score: np.ndarray  # float in [0, 1]
    correct: np.ndarray  # bool
    gold_total: int | None = None
    kind: str = "decision"
    unit: str = "predictions"

    def __post_init__(self) -> None:
        self.doc = np.asarray(self.doc, dtype=np.int64).reshape(-1)
        self.score = np.clip(np.asarray(self.score, dtype=np.float64).reshape(-1), 0.0, 1.0)
        self.correct = np.asarray(self.correct, dtype=bool).reshape(-1)

    @classmethod
    def from_rows(cls, rows: list[tuple[int, float, bool]], **kwargs) -> "ScoredItems":
        if not rows:
            return cls(np.zeros(0), np.zeros(0), np.zeros(0), **kwargs)
        doc, score, correct = zip(*rows)
        return cls(np.array(doc), np.array(score), np.array(correct), **kwargs)

    def __len__(self) -> int:
        return len(self.score)

    def with_scores(self, score: np.ndarray) -> "ScoredItems":
        return ScoredItems(self.doc, score, self.correct, self.gold_total, self.kind, self.unit)

    def subset(self, docs: np.ndarray) -> "ScoredItems":
        """The items of the documents whose indices are in ``docs`` (a resample keeps repeats)."""
        counts = np.bincount(np.asarray(docs, dtype=np.int64), minlength=int(self.doc.max(initial=-1)) + 1)
        reps = counts[self.doc] if len(self.doc) else np.zeros(0, dtype=np.int64)
        idx = np.repeat(np.arange(len(self.doc)), reps)
        return ScoredItems(self.doc[idx], self.score[idx], self.correct[idx], None, self.kind, self.unit)

    def decisions(self) -> tuple[np.ndarray, np.ndarray]:
        """(confidence of each decision, whether the decision is right)."""
        if self.kind == "presence":
            predicted = self.score >= 0.5
            return np.maximum(self.score, 1.0 - self.score), predicted == self.correct
        return self.score, self.correct
