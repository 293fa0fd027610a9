"""Applying a trained model: ``nlp = medtune.load(path)``; ``nlp(text)``; ``nlp.pipe(texts)``."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Iterable, Iterator

import torch

from medtune.document import Document
from medtune.tasks.base import resolve_bf16


class Predictor:
    """A loaded model with its task: turns texts or documents into annotated documents.

    ``mode`` selects the numeric path: ``fp32``, ``bf16`` (autocast; fast on CPUs with AVX-512 BF16 or
    AMX) or ``auto`` (bf16 where the hardware has it natively, else fp32).
    """

    def __init__(self, model: torch.nn.Module, tokenizer, task, *, device: torch.device, mode: str = "fp32",
                 batch_size: int = 32) -> None:
        self.model, self.tokenizer, self.task = model, tokenizer, task
        self.device = device
        self.mode = mode
        self.bf16 = resolve_bf16({"fp32": "false", "bf16": "true"}.get(mode, mode), device)
        self.batch_size = batch_size

    @property
    def labels(self) -> list[str]:
        return self.task.labels

    def __call__(self, text: str | Document) -> Document:
        return next(self.pipe([text], batch_size=1))

    def pipe(self, items: Iterable[str | Document], batch_size: int | None = None) -> Iterator[Document]:
        """Predict lazily: memory stays bounded however many items stream through."""
        counter = itertools.count()

        def as_docs() -> Iterator[Document]:
            for item in items:
                if isinstance(item, Document):
                    yield item
                elif isinstance(item, str):
                    yield Document(id=f"doc-{next(counter)}", text=item)
                else:
                    raise TypeError(f"pipe() takes strings or Documents, not {type(item).__name__}")

        yield from self.task.predict(self.model, as_docs(), batch_size=batch_size or self.batch_size,
                                     device=self.device, bf16=self.bf16)


def load(path: str | Path, *, device: str | None = None, mode: str = "auto", batch_size: int = 32,
         num_threads: int | None = None) -> Predictor:
    """Load a model directory written by ``medtune train`` (or exported by ``medtune export``)."""
    from medtune.model_io import load_model

    if num_threads:
        torch.set_num_threads(num_threads)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model, tokenizer, task = load_model(path, device=dev)
    return Predictor(model, tokenizer, task, device=dev, mode=mode, batch_size=batch_size)
