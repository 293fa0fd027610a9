"""Applying a trained model: ``nlp = medtune.load(path)``; ``nlp(text)``; ``nlp.pipe(texts)``."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Iterable, Iterator

import torch

from medtune.document import Document
from medtune.errors import ConfigError
from medtune.inference.onnx import load_onnx_model
from medtune.models.store import load_model
from medtune.runtime import resolve_bf16, tune_allocator
from medtune.tasks import Predictions

TORCH_MODES = ("auto", "fp32", "bf16")
ONNX_MODES = ("onnx", "onnx-int8")
MODES = TORCH_MODES + ONNX_MODES


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ConfigError(f"unknown inference mode '{mode}'", fix=f"use one of: {', '.join(MODES)}")


class Predictor:
    """A loaded model with its task: turns texts or documents into annotated documents.

    ``mode`` selects the numeric path: ``fp32``, ``bf16`` (autocast; fast on CPUs with AVX-512 BF16 or
    AMX), ``auto`` (bf16 where the hardware has it natively, else fp32), or ``onnx`` / ``onnx-int8``
    (onnxruntime on the graph written by ``medtune export``; ``model`` is then an adapter with the
    methods the tasks call).
    """

    def __init__(self, model: torch.nn.Module, tokenizer, task, *, device: torch.device, mode: str = "fp32",
                 batch_size: int = 32) -> None:
        check_mode(mode)
        self.model, self.tokenizer, self.task = model, tokenizer, task
        self.device = device
        self.mode = mode
        if mode in ONNX_MODES:
            self.bf16 = False
        else:
            self.bf16 = resolve_bf16({"fp32": "false", "bf16": "true"}.get(mode, mode), device)
        self.batch_size = batch_size

    @property
    def precision(self) -> str:
        """The numeric path actually taken: ``fp32``, ``bf16``, ``onnx`` or ``onnx-int8``."""
        if self.mode in ONNX_MODES:
            return self.mode
        return "bf16" if self.bf16 else "fp32"

    @property
    def labels(self) -> list[str]:
        return self.task.labels

    def __call__(self, text: str | Document) -> Document:
        return next(self.pipe([text], batch_size=1))

    def pipe(self, items: Iterable[str | Document], batch_size: int | None = None) -> Predictions:
        """Predict lazily: memory stays bounded however many items stream through. The returned
        iterator's ``diagnostics`` hold this call's counts (e.g. ``candidates_too_long``)."""
        return self.task.predict(self.model, as_documents(items), batch_size=batch_size or self.batch_size,
                                 device=self.device, bf16=self.bf16)


def as_documents(items: Iterable[str | Document]) -> Iterator[Document]:
    """Documents as given, and strings as documents ``doc-0``, ``doc-1``, ... (numbered among strings)."""
    counter = itertools.count()
    for item in items:
        if isinstance(item, Document):
            yield item
        elif isinstance(item, str):
            yield Document(id=f"doc-{next(counter)}", text=item)
        else:
            raise TypeError(f"expected strings or Documents, not {type(item).__name__}")


def load(path: str | Path, *, device: str | None = None, mode: str = "auto", batch_size: int = 32,
         num_threads: int | None = None, onnx_dir: str | Path | None = None) -> Predictor:
    """Load a model directory written by ``medtune train``.

    ``mode="onnx"`` / ``"onnx-int8"`` runs the graph written by ``medtune export`` (in ``path/onnx``,
    or ``onnx_dir``) with onnxruntime on the CPU, ``intra_op_num_threads`` = torch's thread count.
    """
    check_mode(mode)
    tune_allocator()
    if num_threads:
        torch.set_num_threads(num_threads)
    if mode in ONNX_MODES:
        if device not in (None, "cpu"):
            raise ConfigError(f"mode '{mode}' runs on the CPU only, not on '{device}'",
                              fix="drop device=, or use mode='auto' on an accelerator")
        model, tokenizer, task = load_onnx_model(path, quantized=mode == "onnx-int8", onnx_dir=onnx_dir)
        return Predictor(model, tokenizer, task, device=torch.device("cpu"), mode=mode, batch_size=batch_size)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model, tokenizer, task = load_model(path, device=dev)
    return Predictor(model, tokenizer, task, device=dev, mode=mode, batch_size=batch_size)
