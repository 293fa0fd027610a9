"""Routing by question type: keep the candidates whose section is the type of the question.

MedQuAD's passages carry their question type as section (``Symptoms``, ``Treatment``, ...), and a
question's type is easy to predict from its wording (configs/medquad-qtype.yaml). With
``search.qtype_model`` set, :class:`QtypeRouter` predicts each question's type and :func:`route` keeps
the candidates whose section is that type (compared case-insensitively) before fusion; when the
classifier is unsure (probability under ``search.qtype_min_score``) or no candidate has that section,
every candidate is kept. It suits a knowledge base whose sections are the classifier's labels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from medtune.errors import ModelError
from medtune.retrieval.hybrid import Candidates
from medtune.retrieval.passages import Passage

__all__ = ["QtypeRouter", "route"]


class QtypeRouter:
    """A medtune classification model that names the type of a question."""

    def __init__(self, model_dir: str | Path, min_score: float = 0.5) -> None:
        from medtune.inference import load

        self.model_dir = str(model_dir)
        self.predictor = load(model_dir, batch_size=32)
        if getattr(self.predictor.task, "name", None) != "classification":
            raise ModelError(f"{model_dir} is not a question-type classifier (task "
                             f"{getattr(self.predictor.task, 'name', '?')})",
                             fix="train one with configs/medquad-qtype.yaml, or leave out search.qtype_model")
        self.min_score = min_score

    def predict(self, questions: Sequence[str]) -> list[tuple[str | None, float]]:
        """The classifier's type (lower case) and its probability for each question."""
        out: list[tuple[str | None, float]] = []
        for doc in self.predictor.pipe(list(questions)):
            label = doc.labels[0] if doc.labels else None
            out.append((label.lower() if label else None, float(doc.label_scores.get(label, 0.0)) if label else 0.0))
        return out

    def types(self, questions: Sequence[str]) -> list[str | None]:
        """The predicted type of each question, or ``None`` where the classifier is unsure."""
        return [label if score >= self.min_score else None for label, score in self.predict(questions)]


def route(c: Candidates, passages: Sequence[Passage], qtype: str | None) -> Candidates:
    """``c`` restricted to passages whose section is ``qtype`` (all of ``c`` when none is, or no type)."""
    if qtype is None or not len(c):
        return c
    keep = np.array([(passages[int(r)].source.section or "").lower() == qtype for r in c.rows], dtype=bool)
    return Candidates(c.rows[keep], c.bm25[keep], c.dense[keep]) if keep.any() else c
