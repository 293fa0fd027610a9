"""Tiny random BERT models for unit tests: hidden 32, 2 layers, a small WordPiece vocab. No weights."""

from __future__ import annotations

import string
from pathlib import Path

WORDS = ("the of and in with a patient disease cancer fever cough no denies has was is to for breast "
         "gene protein drug dose ade syndrome deficiency mutation risk").split()


def build_tiny_model(path: Path, seed: int = 0) -> Path:
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    path.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += list(string.ascii_lowercase) + list(string.digits) + list(string.punctuation)
    vocab += ["##" + c for c in string.ascii_lowercase + string.digits]
    vocab += WORDS + ["中", "文", "病"]
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizer(vocab={tok: i for i, tok in enumerate(vocab)}, do_lower_case=True)
    tokenizer.save_pretrained(path)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512)
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(path)
    return path
