"""What every task family provides: options, model, collation, decoding, metrics.

A task object holds everything needed to turn documents into model inputs and model outputs back
into documents. It is created from a training config (``meta_from_config``) or from a saved model's
``medtune`` metadata, so training and inference share one code path.

A task object is shared: one loaded model may serve many threads at once. Nothing a call computes is
stored on it; :meth:`Task.predict` returns a :class:`Predictions` iterator that carries the call's own
diagnostics (e.g. candidates too long for ``max_length``). Tokenizer calls go through
:func:`tokenize`, which serialises them (a fast tokenizer's truncation settings are shared state).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from typing import Any, Callable, ClassVar, Iterable, Iterator

import numpy as np
import torch
from torch import nn

from medtune.batching import buffered
from medtune.document import Document
from medtune.errors import ModelError
from medtune.runtime import tokenize  # noqa: F401  (re-exported: tasks call the tokenizer through it)
from medtune.tasks.options import TaskOptions
from medtune.trust.calibration import Calibrator
from medtune.trust.items import ScoredItems


def pad(sequences: list[list[int]], value: int) -> torch.Tensor:
    width = max((len(s) for s in sequences), default=0)
    out = torch.full((len(sequences), max(width, 1)), value, dtype=torch.long)
    for i, seq in enumerate(sequences):
        if seq:
            out[i, : len(seq)] = torch.tensor(seq, dtype=torch.long)
    return out


def special_tokens(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The special token ids the tokenizer puts before and after one sequence ([CLS] / [SEP] for BERT)."""
    enc = tokenizer("a", return_special_tokens_mask=True)
    ids, mask = enc["input_ids"], enc["special_tokens_mask"]
    first = mask.index(0)
    last = len(mask) - 1 - mask[::-1].index(0)
    return list(ids[:first]), list(ids[last + 1:])


class Predictions(Iterator[Document]):
    """The documents a :meth:`Task.predict` call yields, in order, and that call's ``diagnostics``
    (counts such as ``candidates_too_long``), complete once the iterator is exhausted."""

    def __init__(self, run: Callable[[Counter], Iterator[Document]]) -> None:
        self.diagnostics: Counter = Counter()
        self._documents = run(self.diagnostics)

    def __iter__(self) -> "Predictions":
        return self

    def __next__(self) -> Document:
        return next(self._documents)


class Task(ABC):
    """A task family. Subclasses set ``name`` and ``options_class`` and implement the abstract methods.

    Class attributes tell the rest of medtune what the task supports, so no code branches on its name:
    ``onnx_graph`` (the graph kind ``medtune export`` writes, see ``medtune.inference.onnx``; None = no
    export), ``ensemble`` (``"tags"``: members' word-level tag probabilities are averaged, ``"classes"``:
    class probabilities; None = no ensembles), ``ensemble_attributes`` / ``ensemble_meta`` (what members
    must share).
    """

    name: ClassVar[str] = ""
    options_class: ClassVar[type[TaskOptions]] = TaskOptions
    onnx_graph: ClassVar[str | None] = None
    ensemble: ClassVar[str | None] = None
    ensemble_attributes: ClassVar[tuple[str, ...]] = ()
    ensemble_meta: ClassVar[tuple[str, ...]] = ("labels",)
    #: The meta keys a per-call copy (:meth:`with_trust`) may replace; a task adds its own decoding settings.
    call_settings: ClassVar[tuple[str, ...]] = ("calibration", "abstain_below")

    def __init__(self, meta: dict[str, Any], tokenizer: Any) -> None:
        self.meta = meta
        self.tokenizer = tokenizer
        self.labels: list[str] = list(meta["labels"])
        # post-hoc parameters of the finished model (absent: scores are the raw ones, nothing abstained)
        self.calibration: Calibrator | None = Calibrator.from_dict(meta["calibration"]) if meta.get("calibration") else None
        self.abstain_below: float | None = meta.get("abstain_below")

    # ------------------------------------------------------------------ set-up
    @classmethod
    @abstractmethod
    def meta_from_config(cls, config: Any, train_docs: list[Document]) -> dict[str, Any]:
        """The metadata saved with the model (labels, head, windowing...), from a run config."""

    @abstractmethod
    def build_model(self, encoder: nn.Module) -> nn.Module:
        ...

    # --------------------------------------------------------------- training
    @abstractmethod
    def check_documents(self, docs: list[Document], *, source: str, training: bool) -> None:
        """Raise a clear error when documents cannot be used by this task."""

    @abstractmethod
    def encode_for_training(self, docs: list[Document]) -> list[dict[str, Any]]:
        ...

    @abstractmethod
    def collate(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        ...

    def feature_length(self, feature: dict[str, Any]) -> int:
        return len(feature["input_ids"])

    # -------------------------------------------------------------- inference
    def buffer_size(self, batch_size: int) -> int:
        """Documents decoded together: enough to fill several length-sorted batches."""
        return max(64, batch_size * 4)

    def predict(self, model: nn.Module, docs: Iterable[Document], *, batch_size: int = 32,
                device: torch.device | None = None, bf16: bool = False) -> Predictions:
        """A prediction for every document, in order (inputs are not modified), streamed in buffers."""
        device = device or next(model.parameters()).device
        model.eval()
        calibration, threshold = self.calibration, self.abstain_below

        def run(diagnostics: Counter) -> Iterator[Document]:
            for chunk in buffered(docs, self.buffer_size(batch_size)):
                preds = self.predict_buffer(model, chunk, batch_size=batch_size, device=device, bf16=bf16,
                                            diagnostics=diagnostics)
                if calibration is not None or threshold is not None:
                    for pred in preds:
                        self.apply_trust(pred, calibration, threshold, diagnostics)
                yield from preds

        return Predictions(run)

    @abstractmethod
    def predict_buffer(self, model: nn.Module, docs: list[Document], *, batch_size: int, device: torch.device,
                       bf16: bool, diagnostics: Counter) -> list[Document]:
        """Predictions for one buffer of documents (new documents; the inputs are not modified)."""

    # ------------------------------------------------------------------ trust
    def apply_trust(self, pred: Document, calibration: Calibrator | None, threshold: float | None,
                    diagnostics: Counter) -> None:
        """Calibrate the scores of one predicted document and mark what scores under ``threshold``
        (``diagnostics["abstained"]`` counts it). Models without either never come here."""
        if calibration is not None:
            self.rescore(pred, calibration)
        if threshold is not None:
            diagnostics["abstained"] += self.mark_abstained(pred, threshold)

    def rescore(self, pred: Document, calibration: Calibrator) -> None:
        """Replace a predicted document's scores by calibrated ones, in place (default: no scores)."""

    def mark_abstained(self, pred: Document, threshold: float) -> int:
        """Mark the predictions scoring under ``threshold`` as abstained (``abstained: true``; kept in
        the output); returns how many (default: the task has no scores)."""
        return 0

    def scored_items(self, gold: list[Document], pred: list[Document]) -> ScoredItems | None:
        """Every scored prediction with whether it is right (calibration, reliability, risk-coverage);
        None when the task's predictions carry no scores."""
        return None

    def headline_counts(self, gold: list[Document], pred: list[Document], **options: Any) -> np.ndarray | None:
        """Per-document ``(tp, fp, fn)`` whose sums give the headline ``f1`` (bootstrap intervals, the
        paired test, subgroups); None when the headline is not such an F1."""
        return None

    def with_trust(self, **changes: Any) -> "Task":
        """A new task object like this one with ``calibration`` / ``abstain_below`` (or another of the
        task's ``call_settings``) replaced (None removes them); this one is not touched (it may serve
        other threads)."""
        meta = dict(self.meta)
        for key, value in changes.items():
            if key not in self.call_settings:
                raise TypeError(f"with_trust() got an unexpected setting {key!r}")
            if value is None:
                meta.pop(key, None)
            else:
                meta[key] = value.to_dict() if isinstance(value, Calibrator) else value
        return type(self)(meta, self.tokenizer)

    def set_calibration(self, calibration: Calibrator | None) -> None:
        """Make ``calibration`` a parameter of the finished model (training only, like thresholds)."""
        if calibration is None:
            self.calibration = None
            self.meta.pop("calibration", None)
        else:  # as saved: a model applies exactly what its config.json holds
            self.meta["calibration"] = calibration.to_dict()
            self.calibration = Calibrator.from_dict(self.meta["calibration"])

    def set_abstain_below(self, threshold: float | None) -> None:
        self.abstain_below = threshold
        if threshold is None:
            self.meta.pop("abstain_below", None)
        else:
            self.meta["abstain_below"] = float(threshold)

    # ---------------------------------------------------------------- metrics
    @abstractmethod
    def metrics(self, gold: list[Document], pred: list[Document], *, diagnostics: Counter | None = None,
                **options: Any) -> dict[str, Any]:
        """Metrics with the headline figure at top-level ``f1``; ``diagnostics`` from the prediction call."""

    def error_examples(self, gold: list[Document], pred: list[Document], n: int) -> list[dict[str, Any]]:
        """Up to ``n`` disagreements for ``medtune evaluate --errors`` (ids and labels; offsets)."""
        return [{"document": g.id, "gold": g.labels, "predicted": p.labels}
                for g, p in zip(gold, pred) if sorted(g.labels) != sorted(p.labels)][:n]

    # ------------------------------------------------------------- ensembles
    def check_ensemble_member(self, model: nn.Module, path: Any) -> None:
        """Raise ModelError when ``model`` cannot be averaged with others of this task."""
        if self.ensemble is None:
            raise ModelError(f"{path} is a '{self.name}' model, which has no ensembles",
                             fix="ensemble models of a task that supports them (ner, relation)")

    def after_training(self, model: nn.Module, dev_docs: list[Document], *, batch_size: int,
                       device: torch.device, bf16: bool) -> None:
        """Hook to fit post-hoc parameters on the dev split (e.g. thresholds)."""

    def dev_predictions(self, model: nn.Module, dev_docs: list[Document], *, batch_size: int,
                        device: torch.device, bf16: bool) -> list[Document]:
        """Dev-split predictions that choose the best epoch: made as the finished model will make them
        (a task with post-hoc parameters fits them first, as ``after_training`` will)."""
        return list(self.predict(model, dev_docs, batch_size=batch_size, device=device, bf16=bf16))
