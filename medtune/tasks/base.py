"""What every task family provides: model, collation, decoding, metrics.

A task object holds everything needed to turn documents into model inputs and model outputs back
into documents. It is created from a training config (``from_config``) or from a saved model's
``medtune`` metadata (``from_meta``), so training and inference share one code path.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Iterable, Iterator

import torch
from torch import nn

from medtune.document import Document


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


class Task(ABC):
    """A task family. Subclasses set ``name`` and implement the abstract methods."""

    name: str = ""

    def __init__(self, meta: dict[str, Any], tokenizer: Any) -> None:
        self.meta = meta
        self.tokenizer = tokenizer
        self.labels: list[str] = list(meta["labels"])

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
    @abstractmethod
    def predict(
        self,
        model: nn.Module,
        docs: Iterable[Document],
        *,
        batch_size: int = 32,
        device: torch.device | None = None,
        bf16: bool = False,
    ) -> Iterator[Document]:
        """Yield a prediction for every document, in order (inputs are not modified)."""

    # ---------------------------------------------------------------- metrics
    @abstractmethod
    def metrics(self, gold: list[Document], pred: list[Document], **options: Any) -> dict[str, Any]:
        """Metrics with the headline figure at top-level ``f1``."""

    def after_training(self, model: nn.Module, dev_docs: list[Document], *, batch_size: int,
                       device: torch.device, bf16: bool) -> None:
        """Hook to fit post-hoc parameters on the dev split (e.g. thresholds)."""

    def dev_predictions(self, model: nn.Module, dev_docs: list[Document], *, batch_size: int,
                        device: torch.device, bf16: bool) -> list[Document]:
        """Dev-split predictions that choose the best epoch: made as the finished model will make them
        (a task with post-hoc parameters fits them first, as ``after_training`` will)."""
        return list(self.predict(model, dev_docs, batch_size=batch_size, device=device, bf16=bf16))
