from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tiny import build_tiny_model  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A random BERT (hidden 32, 2 layers) with a small WordPiece vocab, built once per session."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    value = os.environ.get("MEDTUNE_DATA_DIR")
    if not value or not Path(value).is_dir():
        pytest.skip("MEDTUNE_DATA_DIR is not set to the public corpora")
    return Path(value)


@pytest.fixture(scope="session")
def tiny_ner_model(tiny_model_dir, tmp_path_factory) -> Path:
    """A tiny NER model trained (overfitted) once per session on made-up documents."""
    from helpers import ner_docs
    from medtune.config import RunConfig
    from medtune.io.jsonl import write_jsonl
    from medtune.training import train

    tmp = tmp_path_factory.mktemp("tiny-ner")
    write_jsonl(ner_docs(6, repeat=2), tmp / "train.jsonl")
    write_jsonl(ner_docs(3, repeat=2, prefix="v"), tmp / "dev.jsonl")
    cfg = RunConfig.from_dict({
        "task": "ner", "base_model": str(tiny_model_dir),
        "data": {"train": str(tmp / "train.jsonl"), "dev": str(tmp / "dev.jsonl"), "format": "jsonl"},
        "model": {"max_length": 32, "stride": 8},
        "training": {"max_steps": 80, "batch_size": 4, "learning_rate": 3e-3, "warmup_ratio": 0.0,
                     "progress_bar": False, "bf16": "false", "early_stopping_patience": None},
    })
    return train(cfg, tmp / "model").output_dir
