"""Which tokens a masked-LM step predicts: whole words, SpanBERT-style spans, or single pieces.

Selection works on the word ids recorded while packing (:mod:`medtune.pretraining.packing`): a word
is the run of word pieces with one word id, special tokens ([CLS], [SEP], [PAD]) have word id -1 and
are never selected (and any id in ``tokenizer.all_special_ids`` is refused as well).

* ``whole_word``: words in a random order are selected until ``probability`` of the block's tokens
  are covered; all pieces of a word or none.
* ``span``: span lengths in words are drawn from a geometric distribution (``span_p``, clipped at
  ``span_max_words``; SpanBERT: p = 0.2, at most 10), each span starts at a random word, and spans
  are added until the budget is reached; a span is contiguous words, never crossing a special token
  (a span that would reach past a [SEP] is cut there, and one over an already masked word is redrawn).
* ``token``: ``probability`` of the pieces, independently of words (BERT's original recipe).

Each selected token is replaced by [MASK] (``mask_fraction``, 80 %), by a random non-special token
(``random_fraction``, 10 %) or kept (the rest), and is a label; every other label is -100.
The random state comes from torch's global generator (seeded by the Trainer, saved in each checkpoint and
restored on ``--resume``); it is drawn only for batches that are masked here, never for the held-out
batches (masked once, :meth:`MaskingCollator.premask`). The order of the blocks does not depend on it:
the training sampler has its own generator (:class:`medtune.pretraining.run.SeededLengthGroupedSampler`).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from medtune.pretraining.config import MaskingConfig
from medtune.pretraining.packing import SPECIAL

IGNORE = -100


def _words(word_ids: np.ndarray, special: np.ndarray) -> list[np.ndarray]:
    """Token positions of each word, in order (consecutive positions with one word id)."""
    out: list[np.ndarray] = []
    start = None
    for i, w in enumerate(word_ids):
        if w == SPECIAL or special[i]:
            if start is not None:
                out.append(np.arange(start, i))
                start = None
            continue
        if start is None:
            start = i
        elif w != word_ids[i - 1]:
            out.append(np.arange(start, i))
            start = i
    if start is not None:
        out.append(np.arange(start, len(word_ids)))
    return out


def select(word_ids: Sequence[int], special: Sequence[bool], cfg: MaskingConfig,
           rng: np.random.Generator) -> np.ndarray:
    """A boolean mask of the positions to predict in one block."""
    word_ids = np.asarray(word_ids)
    special = np.asarray(special, dtype=bool) | (word_ids == SPECIAL)
    chosen = np.zeros(len(word_ids), dtype=bool)
    candidates = np.flatnonzero(~special)
    if len(candidates) == 0:
        return chosen
    budget = max(1, int(round(cfg.probability * len(candidates))))
    if cfg.strategy == "token":
        chosen[rng.choice(candidates, size=min(budget, len(candidates)), replace=False)] = True
        return chosen
    words = _words(word_ids, special)
    covered = 0
    if cfg.strategy == "whole_word":
        for w in rng.permutation(len(words)):
            if covered >= budget:
                break
            piece = words[w]
            if covered > 0 and covered + len(piece) > budget:
                continue  # a word that would overshoot the budget: try a shorter one
            chosen[piece] = True
            covered += len(piece)
        return chosen
    taken = np.zeros(len(words), dtype=bool)
    for _ in range(10 * len(words)):
        if covered >= budget or taken.all():
            break
        length = min(int(rng.geometric(cfg.span_p)), cfg.span_max_words, len(words))
        start = int(rng.integers(0, len(words) - length + 1))
        # a span never crosses a special token: it is cut before the first word not adjacent to the last
        span = words[start:start + length]
        cut = next((k + 1 for k in range(len(span) - 1) if span[k + 1][0] != span[k][-1] + 1), len(span))
        span, length = span[:cut], cut
        if taken[start:start + length].any():
            continue
        taken[start:start + length] = True
        for piece in span:
            chosen[piece] = True
            covered += len(piece)
    return chosen


class MaskingCollator:
    """Pads blocks to the longest in the batch and masks them; blocks that carry ``labels`` (the
    held-out set, masked once with a fixed seed) are only padded."""

    def __init__(self, tokenizer: Any, cfg: MaskingConfig) -> None:
        self.cfg = cfg
        self.pad_id = int(tokenizer.pad_token_id)
        self.mask_id = int(tokenizer.mask_token_id)
        self.special_ids = np.asarray(sorted(set(tokenizer.all_special_ids)), dtype=np.int64)
        vocab = len(tokenizer)
        keep = np.ones(vocab, dtype=bool)
        keep[self.special_ids[self.special_ids < vocab]] = False
        self.random_ids = np.flatnonzero(keep)

    def mask(self, input_ids: Sequence[int], word_ids: Sequence[int],
             rng: np.random.Generator) -> tuple[list[int], list[int]]:
        ids = np.asarray(input_ids, dtype=np.int64)
        chosen = select(word_ids, np.isin(ids, self.special_ids), self.cfg, rng)
        labels = np.where(chosen, ids, IGNORE)
        draw = rng.random(len(ids))
        out = ids.copy()
        to_mask = chosen & (draw < self.cfg.mask_fraction)
        to_random = chosen & ~to_mask & (draw < self.cfg.mask_fraction + self.cfg.random_fraction)
        out[to_mask] = self.mask_id
        if to_random.any():
            out[to_random] = rng.choice(self.random_ids, size=int(to_random.sum()))
        return out.tolist(), labels.tolist()

    def premask(self, features: Sequence[dict[str, list[int]]], seed: int) -> list[dict[str, list[int]]]:
        """Masked copies of ``features`` with a fixed seed: the held-out set, the same at every evaluation."""
        rng = np.random.default_rng(seed)
        out = []
        for f in features:
            ids, labels = self.mask(f["input_ids"], f["word_ids"], rng)
            out.append({"input_ids": ids, "labels": labels})
        return out

    def __call__(self, features: Sequence[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        rng: np.random.Generator | None = None  # drawn at the first block to mask: held-out batches draw nothing
        width = max(len(f["input_ids"]) for f in features)
        ids = np.full((len(features), width), self.pad_id, dtype=np.int64)
        labels = np.full((len(features), width), IGNORE, dtype=np.int64)
        attention = np.zeros((len(features), width), dtype=np.int64)
        for row, f in enumerate(features):
            if "labels" in f:
                masked, lab = f["input_ids"], f["labels"]
            else:
                if rng is None:
                    rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))
                masked, lab = self.mask(f["input_ids"], f["word_ids"], rng)
            n = len(masked)
            ids[row, :n], labels[row, :n], attention[row, :n] = masked, lab, 1
        return {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(attention),
                "labels": torch.from_numpy(labels)}
