"""The dense side: the encoder that embeds passages and questions, and its fingerprint.

The encoder is :class:`medtune.embedding.TextEncoder` (the one dense linking uses), built from
:class:`~medtune.retrieval.settings.EncoderSettings`; any object with ``encode(texts) -> (n, dim)``
float32 array of L2-normalised rows and a ``dim`` works (tests inject a deterministic one).

A knowledge base must be queried with the encoder that embedded it: vectors of two encoders live in
unrelated spaces, and the answer would be noise, not an error. The manifest therefore keeps the
encoder's name and a *fingerprint*: the vectors of :data:`PROBES`. Loading compares the encoder's
probe vectors with the stored ones (cosine at least :data:`PROBE_MIN_COSINE`, which bf16 and fp32 of
one model pass and two models do not) and refuses a mismatch.
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence

import numpy as np

from medtune.errors import ModelError
from medtune.retrieval.settings import EncoderSettings

__all__ = ["Encoder", "PROBES", "PROBE_MIN_COSINE", "text_encoder", "fingerprint", "check_fingerprint"]

PROBES = ("What are the symptoms of diabetes?", "Aspirin can lower a fever.",
          "Genetic changes cause this rare syndrome.")
PROBE_MIN_COSINE = 0.98


class Encoder(Protocol):
    @property
    def dim(self) -> int: ...

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def text_encoder(settings: EncoderSettings) -> Any:
    """The :class:`~medtune.embedding.TextEncoder` the settings describe (loaded on first use)."""
    from medtune.embedding import TextEncoder

    return TextEncoder(settings.name, pooling=settings.pooling, max_length=settings.max_length,
                       batch_size=settings.batch_size, bf16=settings.bf16)


def encode(encoder: Encoder, texts: Sequence[str]) -> np.ndarray:
    """``encoder.encode(texts)`` checked: float32, ``(len(texts), dim)``."""
    vectors = np.asarray(encoder.encode(list(texts)), dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] != len(texts):
        raise ModelError(f"the encoder returned an array of shape {vectors.shape} for {len(texts)} texts",
                         fix="give an encoder whose encode(texts) returns one row per text")
    return np.ascontiguousarray(vectors)


def fingerprint(encoder: Encoder) -> list[list[float]]:
    """The probe vectors, rounded to 5 decimals (stored in the manifest)."""
    return [[round(float(x), 5) for x in row] for row in encode(encoder, PROBES)]


def check_fingerprint(encoder: Encoder, stored: list[list[float]], *, name: str, where: str) -> None:
    """``ModelError`` unless ``encoder`` gives the stored probe vectors (see the module docstring)."""
    got = encode(encoder, PROBES)
    want = np.asarray(stored, dtype=np.float32)
    if got.shape != want.shape:
        raise ModelError(f"{where} was built with an encoder of {want.shape[1] if want.ndim == 2 else '?'} "
                         f"dimensions ({name}); this encoder gives {got.shape[1]}",
                         fix=f"load it with the encoder it was built with ({name}), or build it again")
    cos = np.sum(got * want, axis=1) / np.maximum(np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1), 1e-12)
    if float(cos.min()) < PROBE_MIN_COSINE:
        raise ModelError(f"{where} was built with another encoder than the one given (probe cosine "
                         f"{float(cos.min()):.3f} < {PROBE_MIN_COSINE}; built with {name})",
                         fix=f"load it with the encoder it was built with ({name}), or build it again")
