"""Sentence embeddings from a plain encoder: one vector per text, for retrieval.

>>> encoder = TextEncoder("default")            # or a model directory, or a hub id when online
>>> vectors = encoder.encode(["heart attack", "myocardial infarction"])
>>> float(vectors[0] @ vectors[1])               # rows are L2-normalised: dot product = cosine

The encoder (any Hugging Face encoder: BERT, MiniLM, a medtune base model) is found by
:func:`medtune.models.encoder.resolve_base_model` and loaded on first use, never with remote code. A text's
vector is the mean of the last layer over its tokens (``pooling="mean"``, padding excluded) or the
``[CLS]`` vector (``pooling="cls"``), L2-normalised, float32. Texts are tokenised in batches of
``batch_size`` sorted by length (less padding), truncated to ``max_length`` tokens; the result is in the
input order. ``bf16``: ``"auto"`` uses bfloat16 autocast where the CPU computes it natively
(:func:`medtune.runtime.resolve_bf16`), ``True``/``False`` force it. Used by the linker's dense index
(:mod:`medtune.linking.dense`) and meant for question-answering retrieval.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer

from medtune.batching import length_batches
from medtune.models.encoder import quiet_loading, resolve_base_model
from medtune.runtime import autocast, resolve_bf16, tokenize

__all__ = ["TextEncoder", "POOLINGS"]

POOLINGS = ("mean", "cls")
_CPU = torch.device("cpu")


class TextEncoder:
    """Embeds texts with the encoder ``model_name_or_dir`` (see the module docstring).

    ``encode(texts)`` returns a ``(len(texts), dim)`` float32 array of L2-normalised rows. The model is
    loaded on the first call of :meth:`encode` or :attr:`dim`.
    """

    def __init__(self, model_name_or_dir: str, pooling: str = "mean", max_length: int = 128,
                 batch_size: int = 128, bf16: str | bool = "auto") -> None:
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be 'mean' or 'cls', not {pooling!r}")
        if max_length < 1 or batch_size < 1:
            raise ValueError("max_length and batch_size must be positive")
        self.name = model_name_or_dir
        self.pooling = pooling
        self.max_length = max_length
        self.batch_size = batch_size
        self.bf16_setting = bf16
        self._model: Any = None
        self._tokenizer: Any = None
        self._bf16 = False

    def _load(self) -> None:
        if self._model is not None:
            return
        path = resolve_base_model(self.name)
        with quiet_loading():
            self._tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
            self._model = AutoModel.from_pretrained(path, trust_remote_code=False)
        self._model.eval()
        self._bf16 = resolve_bf16(self.bf16_setting, _CPU)

    @property
    def dim(self) -> int:
        """The length of a vector (the encoder's hidden size)."""
        self._load()
        return int(self._model.config.hidden_size)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of ``texts`` (rows L2-normalised, float32), in batches sorted by length."""
        self._load()
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        with torch.inference_mode(), autocast(_CPU, self._bf16):
            for idx in length_batches([len(t) for t in texts], self.batch_size):
                enc = tokenize(self._tokenizer, [texts[i] for i in idx], padding=True, truncation=True,
                                      max_length=self.max_length, return_tensors="pt")
                hidden = self._model(**enc).last_hidden_state.float()
                if self.pooling == "cls":
                    vec = hidden[:, 0]
                else:
                    mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                    vec = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
                vec = torch.nn.functional.normalize(vec, dim=-1)
                out[idx] = vec.numpy()
        return out
