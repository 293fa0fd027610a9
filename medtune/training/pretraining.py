"""Compatibility layer: masked-LM pretraining now lives in :mod:`medtune.pretraining`.

``pretrain_mlm(base_model, texts, output_dir, ...)`` keeps its old signature (texts given by the caller,
who must keep test text out) and runs :func:`medtune.pretraining.pretrain` with whole-word masking;
``blocks`` is the old stream packing (``input_ids`` only). Use only training text: pretraining on a
test split leaks it into the evaluation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from medtune.document import Document
from medtune.pretraining.config import (CorpusConfig, PackingConfig, PretrainConfig, PretrainError,
                                        PretrainTrainingConfig)
from medtune.pretraining.corpus import Corpus
from medtune.pretraining.packing import pack
from medtune.pretraining.run import MaskedLMTrainer, masked_lm_loss, pretrain, remove_checkpoints


def blocks(tokenizer: Any, texts: Iterable[str], max_length: int) -> list[dict[str, list[int]]]:
    """Token blocks of exactly ``max_length`` (special tokens included) from concatenated texts."""
    packed = pack(tokenizer, (t for t in texts if t.strip()), max_length, cross_document=True)
    return [{"input_ids": packed[i]["input_ids"]} for i in range(len(packed))]


def document_texts(docs: Iterable[Document]) -> Iterable[str]:
    for doc in docs:
        if doc.text_pair:
            yield doc.text_pair
        yield doc.text


def pretrain_mlm(base_model: str, texts: Iterable[str], output_dir: str | Path, *, epochs: float = 3.0,
                 learning_rate: float = 5e-5, batch_size: int = 16, max_length: int = 128,
                 mlm_probability: float = 0.15, seed: int = 42, bf16: str = "auto", max_steps: int = -1,
                 progress_bar: bool = True) -> dict[str, Any]:
    """Continue masked-LM pretraining of ``base_model`` on ``texts``; write a HF model directory."""
    kept = [t for t in texts if t.strip()]
    if not kept:
        raise PretrainError("no text to pretrain on", fix="give documents with non-empty text")
    config = PretrainConfig(
        base_model=base_model, corpus=CorpusConfig(corpora=["texts"]),
        masking={"probability": mlm_probability}, packing=PackingConfig(max_length=max_length),
        training=PretrainTrainingConfig(epochs=epochs, max_steps=max_steps if max_steps > 0 else None,
                                        learning_rate=learning_rate, batch_size=batch_size, seed=seed, bf16=bf16,
                                        progress_bar=progress_bar, held_out_fraction=0.0))
    corpus = Corpus(texts=kept, excluded_ids=[], card={"corpora": {"texts": {"documents": len(kept)}},
                                                       "documents": len(kept)})
    card = pretrain(config, output_dir, corpus=corpus)
    remove_checkpoints(output_dir)  # the old API trained in one go, with no checkpoints left behind
    return {**card, "blocks": card["corpus"]["blocks"]}


__all__ = ["MaskedLMTrainer", "blocks", "document_texts", "masked_lm_loss", "pretrain_mlm"]
