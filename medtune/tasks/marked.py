"""Entity-marked text: the input of relation extraction and trainable assertion.

A span is shown to the encoder inside typed markers made of punctuation the vocabulary already has
("typed entity markers (punct)", Zhou & Chen 2022): the head of a relation becomes
``@ * Drug * aspirin @`` and the tail ``# ^ AE ^ rash #``. No token is added to the vocabulary, so any
pretrained encoder works unchanged. The model reads the hidden state at each opening marker.

Long contexts are cut to ``max_length`` tokens around the marked spans (centred on them); an instance
whose marked spans alone do not fit is reported as not encodable (``None``), never silently cut.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from medtune.batching import length_batches
from medtune.document import Document
from medtune.runtime import autocast
from medtune.tasks.base import Task, pad, special_tokens, tokenize


@dataclass(frozen=True)
class Mark:
    """A span to mark: character offsets in the source text, its type and the marker symbols."""

    start: int
    end: int
    label: str
    symbol: str = "@"
    type_symbol: str = "*"


HEAD_SYMBOLS = ("@", "*")
TAIL_SYMBOLS = ("#", "^")


def insert_markers(text: str, lo: int, hi: int, marks: list[Mark]) -> tuple[str, list[tuple[int, int]]]:
    """``text[lo:hi]`` with markers inserted; returns it and, per mark, the character positions of
    its opening and closing symbols in the new string."""
    inserts: list[tuple[int, int, int, str, int, int]] = []  # (pos, order, -span length, string, mark, which)
    for i, m in enumerate(marks):
        inserts.append((m.start, 1, -(m.end - m.start), f"{m.symbol} {m.type_symbol} {m.label} {m.type_symbol} ", i, 0))
        inserts.append((m.end, 0, m.end - m.start, f" {m.symbol}", i, 1))
    inserts.sort(key=lambda x: (x[0], x[1], x[2]))
    out: list[str] = []
    length = 0
    cursor = lo
    positions = [[-1, -1] for _ in marks]
    for pos, _, _, piece, mark, which in inserts:
        chunk = text[cursor:pos]
        out.append(chunk)
        length += len(chunk)
        cursor = pos
        # the symbol is the first non-space character of the inserted piece
        positions[mark][which] = length + (len(piece) - len(piece.lstrip(" ")))
        out.append(piece)
        length += len(piece)
    out.append(text[cursor:hi])
    return "".join(out), [(a, b) for a, b in positions]


class MarkedEncoder:
    """Tokenises marked contexts into fixed-budget model inputs."""

    def __init__(self, tokenizer: Any, max_length: int, context_chars: int = 600) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.context_chars = context_chars
        self.prefix, self.suffix = special_tokens(tokenizer)

    def encode(self, text: str, lo: int, hi: int, marks: list[Mark]) -> dict[str, Any] | None:
        """Input ids and the token index of each mark's opening symbol; None when the marks do not fit."""
        if any(not (lo <= m.start <= m.end <= hi) for m in marks):
            raise ValueError("a marked span lies outside its context")
        # a sentence can be very long (a whole note without punctuation): bound the characters first
        first, last = min(m.start for m in marks), max(m.end for m in marks)
        lo = max(lo, first - self.context_chars)
        hi = min(hi, last + self.context_chars)
        marked, positions = insert_markers(text, lo, hi, marks)
        enc = tokenize(self.tokenizer, marked, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        ids, offsets = enc["input_ids"], enc["offset_mapping"]
        by_start: dict[int, int] = {}
        for t, (a, b) in enumerate(offsets):
            if b > a:
                by_start.setdefault(a, t)
        try:
            opens = [by_start[o] for o, _ in positions]
            closes = [by_start[c] for _, c in positions]
        except KeyError:  # pragma: no cover - punctuation is always its own token in BERT-style vocabularies
            return None
        budget = self.max_length - len(self.prefix) - len(self.suffix)
        need_lo, need_hi = min(opens), max(closes) + 1
        if need_hi - need_lo > budget:
            return None
        spare = budget - (need_hi - need_lo)
        start = max(0, min(need_lo - spare // 2, len(ids) - budget))
        window = ids[start: start + budget]
        shift = len(self.prefix) - start
        return {"input_ids": self.prefix + window + self.suffix, "marker_index": [o + shift for o in opens]}

    def collate(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        pad_id = self.tokenizer.pad_token_id or 0
        ids = [f["input_ids"] for f in features]
        batch = {
            "input_ids": pad(ids, pad_id),
            "attention_mask": pad([[1] * len(x) for x in ids], 0),
            "marker_index": torch.tensor([f["marker_index"] for f in features], dtype=torch.long),
        }
        if "labels" in features[0]:
            batch["labels"] = torch.tensor([f["labels"] for f in features], dtype=torch.long)
        return batch


def class_probabilities(model: torch.nn.Module, features: list[dict[str, Any]], collate: Any, n_classes: int, *,
                        batch_size: int, device: torch.device, bf16: bool) -> np.ndarray:
    """Softmax over the classes for each feature, batched by length; rows in the order given."""
    out = np.zeros((len(features), n_classes), dtype=np.float32)
    if not features:
        return out
    model.eval()
    with torch.inference_mode(), autocast(device, bf16):
        for idx in length_batches([len(f["input_ids"]) for f in features], batch_size):
            batch = {k: v.to(device) for k, v in collate([features[i] for i in idx]).items()}
            out[idx] = torch.softmax(model(**batch)["logits"].float(), dim=-1).cpu().numpy()
    return out


class MarkedSpanTask(Task):
    """What relation extraction and trainable assertion share: marked-span features, collation,
    batched class probabilities, and prediction over documents in buffers of 64. An instance whose
    marked spans do not fit in ``max_length`` is counted in the call's ``candidates_too_long``.

    Subclasses set ``self.encoder`` (a :class:`MarkedEncoder`) and ``self.classes`` (the model's output
    classes) and implement :meth:`instances` (what to classify in a document) and :meth:`decide` (write
    one decision back into the document).
    """

    encoder: MarkedEncoder
    classes: list[str]

    def instances(self, doc: Document) -> Iterator[tuple[Any, dict[str, Any] | None]]:
        """``(payload, feature)`` for each thing to classify in ``doc`` (feature None: does not fit)."""
        raise NotImplementedError

    def decide(self, doc: Document, payload: Any, probs: np.ndarray) -> None:
        raise NotImplementedError

    def collate(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        return self.encoder.collate(features)

    def _probabilities(self, model: torch.nn.Module, features: list[dict[str, Any]], batch_size: int,
                       device: torch.device, bf16: bool) -> np.ndarray:
        return class_probabilities(model, features, self.collate, len(self.classes), batch_size=batch_size,
                                   device=device, bf16=bf16)

    def buffer_size(self, batch_size: int) -> int:
        return 64

    def predict_buffer(self, model: nn.Module, docs: list[Document], *, batch_size: int, device: torch.device,
                       bf16: bool, diagnostics: Counter) -> list[Document]:
        preds = [doc.copy() for doc in docs]
        items: list[tuple[Document, Any, dict[str, Any]]] = []
        for pred in preds:
            for payload, feature in self.instances(pred):
                if feature is None:
                    diagnostics["candidates_too_long"] += 1
                else:
                    items.append((pred, payload, feature))
        probs = self._probabilities(model, [f for *_, f in items], batch_size, device, bf16)
        for (pred, payload, _), p in zip(items, probs):
            self.decide(pred, payload, p)
        return preds
