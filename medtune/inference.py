"""Applying a trained model: ``nlp = medtune.load(path)``; ``nlp(text)``; ``nlp.pipe(texts)``."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Iterable, Iterator

import torch

from medtune.document import Document
from medtune.errors import ConfigError
from medtune.runtime import tune_allocator
from medtune.tasks.base import resolve_bf16

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
         num_threads: int | None = None, onnx_dir: str | Path | None = None) -> Predictor:
    """Load a model directory written by ``medtune train``.

    ``mode="onnx"`` / ``"onnx-int8"`` runs the graph written by ``medtune export`` (in ``path/onnx``,
    or ``onnx_dir``) with onnxruntime on the CPU, ``intra_op_num_threads`` = torch's thread count.
    """
    from medtune.model_io import load_model

    check_mode(mode)
    tune_allocator()
    if num_threads:
        torch.set_num_threads(num_threads)
    if mode in ONNX_MODES:
        from medtune.onnx import load_onnx_model

        if device not in (None, "cpu"):
            raise ConfigError(f"mode '{mode}' runs on the CPU only, not on '{device}'",
                              fix="drop device=, or use mode='auto' on an accelerator")
        model, tokenizer, task = load_onnx_model(path, quantized=mode == "onnx-int8", onnx_dir=onnx_dir)
        return Predictor(model, tokenizer, task, device=torch.device("cpu"), mode=mode, batch_size=batch_size)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model, tokenizer, task = load_model(path, device=dev)
    return Predictor(model, tokenizer, task, device=dev, mode=mode, batch_size=batch_size)


class TagEnsemble(torch.nn.Module):
    """NER taggers that share a tokenizer and tag set, read as one: the word-level tag distribution is
    the mean of the members' distributions (``emissions`` returns its log, which the NER decoder
    treats as any model's log-probabilities)."""

    head = "linear"

    def __init__(self, members: list[torch.nn.Module]) -> None:
        super().__init__()
        self.members = torch.nn.ModuleList(members)

    def emissions(self, input_ids, attention_mask, word_index, token_type_ids=None) -> torch.Tensor:
        return _log_mean_probs([m.emissions(input_ids, attention_mask, word_index, token_type_ids)
                                for m in self.members])


class ClassEnsemble(torch.nn.Module):
    """Relation models that share a tokenizer, schema and classes, read as one: ``logits`` is the log
    of the mean of the members' class distributions, so its softmax is that mean."""

    def __init__(self, members: list[torch.nn.Module]) -> None:
        super().__init__()
        self.members = torch.nn.ModuleList(members)

    def forward(self, **batch) -> dict[str, torch.Tensor]:
        return {"logits": _log_mean_probs([m(**batch)["logits"] for m in self.members])}


def _log_mean_probs(logits: list[torch.Tensor]) -> torch.Tensor:
    logp = torch.stack([torch.log_softmax(x.float(), dim=-1) for x in logits])
    return torch.logsumexp(logp, dim=0) - torch.log(torch.tensor(float(len(logits))))


# what members must share, beyond the tokenizer, for their probabilities to be averaged
_ENSEMBLE_KEYS = {"ner": ("tags",), "relation": ("classes",)}
_ENSEMBLE_META = {"ner": ("labels", "tag_scheme"),
                  "relation": ("labels", "schema", "pair_scope", "group_by", "max_length", "context_chars")}


def load_ensemble(paths: list[str | Path], *, device: str | None = None, mode: str = "auto",
                  batch_size: int = 32, num_threads: int | None = None) -> Predictor:
    """Load several NER, or several relation, model directories as one model that averages their
    probabilities (word-level tag probabilities; relation class probabilities).

    The members must be of one task, with the same labels and tokenizer (e.g. one config trained with
    different seeds); NER members need the linear head. Windows follow the first member's settings.
    """
    from medtune.errors import ModelError
    from medtune.model_io import load_model, read_meta

    check_mode(mode)
    if mode in ONNX_MODES:
        raise ConfigError(f"an ensemble runs in torch, not in mode '{mode}'", fix="use mode auto, fp32 or bf16")
    if len(paths) < 2:
        raise ConfigError("an ensemble needs at least two model directories", fix="list two or more, or use load()")
    kind = read_meta(paths[0]).get("task")
    if kind not in _ENSEMBLE_KEYS:
        raise ModelError(f"{paths[0]} is a '{kind}' model; ensembles are for ner and relation models",
                         fix="ensemble NER or relation models")
    tune_allocator()
    if num_threads:
        torch.set_num_threads(num_threads)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    members, first = [], None
    for path in paths:
        model, tokenizer, task = load_model(path, expected_task=kind, device=dev)
        if getattr(model, "head", "linear") == "crf":
            raise ModelError(f"{path} has a 'crf' head; an ensemble averages tag probabilities, which a "
                             "CRF's scores are not", fix="ensemble NER models with the linear head")
        if first is None:
            first = (tokenizer, task)
        else:
            for key in _ENSEMBLE_KEYS[kind]:
                if getattr(task, key) != getattr(first[1], key):
                    raise ModelError(f"{path} has {key} {getattr(task, key)}, but {paths[0]} has "
                                     f"{getattr(first[1], key)}", fix="ensemble models trained with the same "
                                     "labels and settings (e.g. one config, different seeds)")
            for key in _ENSEMBLE_META[kind]:
                if task.meta.get(key) != first[1].meta.get(key):
                    raise ModelError(f"{path} has {key} {task.meta.get(key)!r}, but {paths[0]} has "
                                     f"{first[1].meta.get(key)!r}", fix="ensemble models trained with the same "
                                     "labels and settings (e.g. one config, different seeds)")
            if tokenizer.get_vocab() != first[0].get_vocab():
                raise ModelError(f"{path} has another tokenizer than {paths[0]}",
                                 fix="ensemble models fine-tuned from the same base model")
        members.append(model)
    wrapper = TagEnsemble(members) if kind == "ner" else ClassEnsemble(members)
    return Predictor(wrapper.eval(), first[0], first[1], device=dev, mode=mode, batch_size=batch_size)
