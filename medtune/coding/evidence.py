"""Evidence for a predicted code: the text its label-wise attention weighted most, as character spans.

The attention of one code is a weight per sub-word token of the document (the weights sum to 1 over
the document). The evidence is built in three steps, all in character offsets into the original text:

1. the ``top_tokens`` heaviest tokens (ties: the earlier token);
2. each token is widened to the whole word it lies in (letters, digits and in-word ``-'`` marks), so a
   span never cuts a word: ``##itis`` becomes ``pyelonephritis``;
3. widened words that touch or are separated by white space only (``dolor en fosa``) are merged into one
   phrase; a phrase weighs the sum of its tokens' weights. The ``max_spans`` heaviest phrases are kept,
   heaviest first, less those under ``min_share`` of the heaviest one (attention often puts nearly all
   its weight on one phrase: an "a" of weight 0.00003 beside it is no evidence).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_JOINERS = "-'’"


def _in_word(ch: str) -> bool:
    return ch.isalnum()


def word_bounds(text: str, start: int, end: int) -> tuple[int, int]:
    """``[start, end)`` widened to word boundaries (a range of white space or punctuation is kept)."""
    n = len(text)
    start, end = max(0, start), min(n, end)
    while start < end and not _in_word(text[start]):  # a token such as " (" never starts a span
        start += 1
    while end > start and not _in_word(text[end - 1]):
        end -= 1
    if start >= end:
        return start, start
    while start > 0 and (_in_word(text[start - 1]) or (
            text[start - 1] in _JOINERS and start > 1 and _in_word(text[start - 2]))):
        start -= 1
    while end < n and (_in_word(text[end]) or (text[end] in _JOINERS and end + 1 < n and _in_word(text[end + 1]))):
        end += 1
    return start, end


@dataclass(frozen=True)
class EvidenceSpan:
    start: int
    end: int
    weight: float


def evidence_spans(text: str, offsets: np.ndarray, weights: np.ndarray, *, top_tokens: int = 8,
                   max_spans: int = 3, max_gap: int = 1, min_share: float = 0.01) -> list[EvidenceSpan]:
    """The evidence phrases of one code (see the module docstring).

    ``offsets`` (tokens, 2) are the tokens' character ranges in ``text``; ``weights`` (tokens,) their
    attention weights. Two words merge when at most ``max_gap`` white-space characters separate them.
    """
    weights = np.asarray(weights, dtype=np.float64)
    if not len(weights) or max_spans < 1:
        return []
    order = np.argsort(-weights, kind="stable")[: max(1, top_tokens)]
    words: dict[tuple[int, int], float] = {}
    for t in order:
        a, b = word_bounds(text, int(offsets[t][0]), int(offsets[t][1]))
        if a < b:
            words[(a, b)] = words.get((a, b), 0.0) + float(weights[t])
    phrases: list[list[float]] = []  # [start, end, weight]
    for (a, b), w in sorted(words.items()):
        if phrases and a <= phrases[-1][1] + max_gap and text[int(phrases[-1][1]):a].strip() == "":
            phrases[-1][1] = max(phrases[-1][1], b)
            phrases[-1][2] += w
        elif phrases and a < phrases[-1][1]:  # overlapping words (a token inside a longer one)
            phrases[-1][1] = max(phrases[-1][1], b)
            phrases[-1][2] += w
        else:
            phrases.append([a, b, w])
    phrases.sort(key=lambda p: (-p[2], p[0]))
    floor = phrases[0][2] * min_share if phrases else 0.0
    return [EvidenceSpan(int(a), int(b), float(w)) for a, b, w in phrases[:max_spans] if w > 0 and w >= floor]
