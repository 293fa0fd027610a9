"""Negative candidates for relation training from a NER model.

In corpora that annotate entities only where a relation holds (ADE), the unannotated training documents
are, by the corpus's definition, free of relations. ``model.negatives_from_model`` gives them the spans
that the pipeline's own NER model predicts, so every pair among them is a negative candidate. This lives
in training (not in the relation task) because it runs a model: tasks never load models.
"""

from __future__ import annotations

import logging
from pathlib import Path

from medtune.document import Document
from medtune.errors import ConfigError
from medtune.inference import Predictor
from medtune.models.store import load_model

logger = logging.getLogger(__name__)


def with_model_negatives(docs: list[Document], model_dir: str | None) -> list[Document]:
    """``docs`` plus the unannotated ones with a NER model's spans (unchanged when ``model_dir`` is None)."""
    if not model_dir:
        return docs
    return list(docs) + model_negative_docs(docs, model_dir)


def model_negative_docs(docs: list[Document], model_dir: str, batch_size: int = 64) -> list[Document]:
    """Unannotated training documents with the spans a NER model predicts in them.

    Like ``distant_negative_docs``, for corpora that annotate entities only where a relation holds, but
    the spans are those the pipeline's own NER model proposes (its vocabulary and its boundaries), so the
    relation model is trained on the candidates it will meet in text that reports no relation. Every
    pair counts as a negative.
    """
    path = Path(model_dir)
    if not (path / "config.json").exists():
        raise ConfigError(f"model.negatives_from_model: '{model_dir}' is not a model directory",
                          fix="give the directory written by `medtune train` for a NER model")
    empty = [d for d in docs if not (d.spans or d.relations or d.labels)]
    if not empty:
        return []
    model, tokenizer, task = load_model(path, expected_task="ner")
    nlp = Predictor(model, tokenizer, task, device=next(model.parameters()).device, mode="auto",
                    batch_size=batch_size)
    out = []
    inputs = (Document(id=d.id, text=d.text, metadata=dict(d.metadata)) for d in empty)
    for pred in nlp.pipe(inputs):
        if len(pred.spans) >= 2:
            pred.metadata["model_negative"] = True
            out.append(pred)
    logger.info("model negatives: %d of %d unannotated documents with at least two predicted spans",
                len(out), len(empty))
    return out
