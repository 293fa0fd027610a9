"""medtune.embedding.TextEncoder on the tiny random BERT of conftest.py: shapes, pooling, batching."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from medtune.embedding import TextEncoder
from medtune.errors import ModelError

TEXTS = ["breast cancer", "a patient with fever and cough", "gene", "drug dose of the protein mutation risk",
         "syndrome"]


def test_encode_shape_norm_and_input_order(tiny_model_dir: Path) -> None:
    encoder = TextEncoder(str(tiny_model_dir), bf16=False)
    vectors = encoder.encode(TEXTS)
    assert vectors.shape == (len(TEXTS), 32) and vectors.dtype == np.float32 and encoder.dim == 32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    reversed_ = encoder.encode(TEXTS[::-1])  # batches sorted by length inside; rows in input order out
    assert np.allclose(reversed_[::-1], vectors, atol=1e-5)
    one_by_one = TextEncoder(str(tiny_model_dir), batch_size=1, bf16=False).encode(TEXTS)
    assert np.allclose(one_by_one, vectors, atol=1e-5)  # padding does not leak into the mean
    assert not np.allclose(vectors[0], vectors[1], atol=1e-3)
    assert encoder.encode([]).shape == (0, 32)


def test_mean_pooling_by_hand(tiny_model_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModel.from_pretrained(tiny_model_dir).eval()
    with torch.inference_mode():
        enc = tokenizer([TEXTS[1]], return_tensors="pt")
        want = model(**enc).last_hidden_state[0].mean(0)
    want = (want / want.norm()).numpy()
    got = TextEncoder(str(tiny_model_dir), bf16=False).encode([TEXTS[1]])[0]
    assert np.allclose(got, want, atol=1e-5)
    cls = TextEncoder(str(tiny_model_dir), pooling="cls", bf16=False).encode([TEXTS[1]])[0]
    assert not np.allclose(cls, got, atol=1e-3)


def test_truncation_and_bad_arguments(tiny_model_dir: Path, tmp_path: Path) -> None:
    long = " ".join(["gene"] * 200)
    short = TextEncoder(str(tiny_model_dir), max_length=8, bf16=False)
    assert np.allclose(short.encode([long]), short.encode([" ".join(["gene"] * 50)]), atol=1e-5)
    with pytest.raises(ValueError, match="pooling"):
        TextEncoder(str(tiny_model_dir), pooling="max")
    with pytest.raises(ValueError):
        TextEncoder(str(tiny_model_dir), batch_size=0)
    with pytest.raises(ModelError):
        TextEncoder(str(tmp_path / "nowhere")).encode(["x"])
