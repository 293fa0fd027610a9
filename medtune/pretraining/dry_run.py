"""``medtune pretrain --dry-run``: the corpus's counts (documents, characters, tokens, blocks, exclusions)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from transformers import AutoTokenizer

from medtune.models.encoder import resolve_base_model
from medtune.pretraining.config import PretrainConfig
from medtune.pretraining.corpus import build_corpus
from medtune.pretraining.packing import check_tokenizer, pack


def corpus_counts(config: PretrainConfig, data_dir: str | Path | None = None) -> dict[str, Any]:
    """Only counts: no text of any document."""
    tokenizer = AutoTokenizer.from_pretrained(resolve_base_model(config.base_model), trust_remote_code=False)
    check_tokenizer(tokenizer, f"base_model {config.base_model}")
    corpus = build_corpus(config.corpus, data_dir)
    blocks = pack(tokenizer, corpus.texts, config.packing.max_length, cross_document=config.packing.cross_document)
    per_epoch = math.ceil(len(blocks) / (config.training.batch_size * config.training.gradient_accumulation_steps))
    return {**corpus.card, "tokens": blocks.text_tokens, "blocks": len(blocks), "steps_per_epoch": per_epoch,
            "block_tokens": int(blocks.offsets[-1])}
