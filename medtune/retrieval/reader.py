"""Reading an answer span out of the best passage, with an extractive question-answering model.

Optional: without a reader, the answer is the passage. With one, :meth:`SpanReader.read` gets the
question and the passage text and returns an :class:`AnswerSpan` (character offsets into the passage)
or ``None`` (the model found no answer in it). :class:`ModelReader` runs a medtune ``qa`` model
directory (:mod:`medtune.tasks.qa`): the passage is the document's ``text``, the question its
``text_pair``; the prediction's ``answer`` span of rank 1 is the answer, and a document the model
labels ``no_answer`` gives none.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from medtune.document import Document
from medtune.errors import ModelError

__all__ = ["AnswerSpan", "SpanReader", "ModelReader"]


@dataclass(frozen=True)
class AnswerSpan:
    """An answer inside a passage: ``passage.text[start:end] == text``."""

    text: str
    start: int
    end: int
    score: float

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "start": self.start, "end": self.end, "score": round(self.score, 6)}


class SpanReader(Protocol):
    def read(self, question: str, passage: str) -> AnswerSpan | None: ...


class ModelReader:
    """A medtune ``qa`` model as reader (see the module docstring)."""

    def __init__(self, model_dir: str | Path, mode: str = "auto") -> None:
        from medtune.inference import load

        self.model_dir = str(model_dir)
        self.predictor = load(model_dir, mode=mode, batch_size=4)
        if getattr(self.predictor.task, "name", None) != "qa":
            raise ModelError(f"{model_dir} is not an extractive question-answering model "
                             f"(task {getattr(self.predictor.task, 'name', '?')})",
                             fix="give a model trained with task: qa, or leave out the reader")

    def read(self, question: str, passage: str) -> AnswerSpan | None:
        pred = next(iter(self.predictor.pipe([Document(id="passage", text=passage, text_pair=question)])))
        if "no_answer" in pred.labels:
            return None
        answers = [s for s in pred.spans if s.label == "answer"]
        if not answers:
            return None
        best = min(answers, key=lambda s: (s.attributes.get("rank", 1), -(s.score or 0.0)))
        return AnswerSpan(text=passage[best.start:best.end], start=best.start, end=best.end,
                          score=float(best.score or 0.0))
