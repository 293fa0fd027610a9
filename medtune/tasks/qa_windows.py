"""Windows over a long context for extractive question answering, and answer candidates from them.

A context of any length is tokenised once (sub-words with their character offsets into the original
text) and cut into overlapping windows of context tokens; every window is a full model input with
the question in it: ``[CLS] question [SEP] context[a:b] [SEP]`` (the tokenizer's own pair template).
Consecutive windows overlap by ``stride`` tokens, so every context token is in some window and an
answer that crosses one window's edge lies whole inside the next one when it is shorter than the
overlap. Candidates are (score, start char, end char) with character offsets into the context.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medtune.runtime import tokenize

#: best start and end positions looked at per window (their pairs are the candidates)
TOP_K = 20


@dataclass(frozen=True)
class PairTemplate:
    """Where the special tokens of a (question, context) pair go, and the token type of each part."""

    prefix: tuple[int, ...]
    middle: tuple[int, ...]
    suffix: tuple[int, ...]
    prefix_types: tuple[int, ...]
    middle_types: tuple[int, ...]
    suffix_types: tuple[int, ...]
    question_type: int
    context_type: int

    @property
    def specials(self) -> int:
        return len(self.prefix) + len(self.middle) + len(self.suffix)


def pair_template(tokenizer: Any) -> PairTemplate:
    """The tokenizer's pair layout, read off one encoded pair (BERT: [CLS] a [SEP] b [SEP])."""
    enc = tokenize(tokenizer, "a", "b")
    ids = list(enc["input_ids"])
    types = list(enc.get("token_type_ids") or [0] * len(ids))
    seq = enc.sequence_ids()
    first = [i for i, s in enumerate(seq) if s == 0]
    second = [i for i, s in enumerate(seq) if s == 1]
    if not first or not second:
        raise ValueError("the tokenizer does not encode text pairs")
    a0, a1, b0, b1 = first[0], first[-1] + 1, second[0], second[-1] + 1
    return PairTemplate(tuple(ids[:a0]), tuple(ids[a1:b0]), tuple(ids[b1:]), tuple(types[:a0]),
                        tuple(types[a1:b0]), tuple(types[b1:]), types[a0], types[b0])


@dataclass
class ContextTokens:
    """The sub-word tokens of a context and the character range of each (into the original text)."""

    ids: list[int]
    offsets: list[tuple[int, int]]
    starts: np.ndarray = field(init=False, repr=False)
    ends: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.starts = np.array([a for a, _ in self.offsets], dtype=np.int64)
        self.ends = np.array([b for _, b in self.offsets], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.ids)

    def token_range(self, start: int, end: int) -> tuple[int, int] | None:
        """The first and last token (inclusive) that overlap the characters ``[start, end)``; None
        when no token does (the range holds white space only)."""
        hit = np.nonzero((self.starts < end) & (self.ends > start) & (self.ends > self.starts))[0]
        if not len(hit):
            return None
        return int(hit[0]), int(hit[-1])


def context_tokens(tokenizer: Any, text: str) -> ContextTokens:
    enc = tokenize(tokenizer, text, add_special_tokens=False, return_offsets_mapping=True, truncation=False,
                   verbose=False)
    return ContextTokens(list(enc["input_ids"]), [(int(a), int(b)) for a, b in enc["offset_mapping"]])


def plan_windows(n_tokens: int, capacity: int, stride: int) -> list[tuple[int, int]]:
    """Token ranges ``[start, end)`` of at most ``capacity`` context tokens, each starting ``stride``
    tokens before the previous one ends; together they cover ``range(n_tokens)`` (one empty window
    for an empty context)."""
    if capacity < 1:
        raise ValueError(f"no room for the context in a window (capacity {capacity})")
    step = max(capacity - stride, 1)
    windows, start = [], 0
    while True:
        end = min(start + capacity, n_tokens)
        windows.append((start, end))
        if end >= n_tokens:
            return windows
        start += step


@dataclass
class Window:
    """One model input: context tokens ``[start, end)`` of document ``doc``, which begin at position
    ``offset`` of ``input_ids``."""

    doc: int
    start: int
    end: int
    offset: int
    input_ids: list[int]
    token_type_ids: list[int]


def build_windows(template: PairTemplate, question: list[int], context: ContextTokens, *, doc: int,
                  capacity: int, stride: int) -> list[Window]:
    t = template
    head = list(t.prefix) + question + list(t.middle)
    head_types = list(t.prefix_types) + [t.question_type] * len(question) + list(t.middle_types)
    out = []
    for a, b in plan_windows(len(context), capacity, stride):
        ids = head + context.ids[a:b] + list(t.suffix)
        types = head_types + [t.context_type] * (b - a) + list(t.suffix_types)
        out.append(Window(doc, a, b, len(head), ids, types))
    return out


def window_target(window: Window, answers: list[tuple[int, int]]) -> tuple[int, int]:
    """Start and end positions in the window of the first answer (token range) lying whole inside
    it; ``(0, 0)``, the first special token, when none does."""
    for first, last in answers:
        if window.start <= first and last < window.end:
            return first - window.start + window.offset, last - window.start + window.offset
    return 0, 0


def window_candidates(start_logits: np.ndarray, end_logits: np.ndarray, window: Window, context: ContextTokens,
                      *, max_answer_tokens: int, top_k: int = TOP_K) -> list[tuple[float, int, int]]:
    """``(start score + end score, start char, end char)`` of the best token spans of a window: both
    ends on context tokens with characters, end not before start, at most ``max_answer_tokens`` long."""
    n = window.end - window.start
    if n <= 0:
        return []
    lo = window.offset
    s = np.asarray(start_logits[lo:lo + n], dtype=np.float64)
    e = np.asarray(end_logits[lo:lo + n], dtype=np.float64)
    has_chars = context.ends[window.start:window.end] > context.starts[window.start:window.end]
    s = np.where(has_chars, s, -np.inf)
    e = np.where(has_chars, e, -np.inf)
    k = min(top_k, n)
    best_s = np.argsort(-s, kind="stable")[:k]
    best_e = np.argsort(-e, kind="stable")[:k]
    out = []
    for i in best_s:
        if not np.isfinite(s[i]):
            continue
        for j in best_e:
            if j < i or j - i + 1 > max_answer_tokens or not np.isfinite(e[j]):
                continue
            a, b = window.start + int(i), window.start + int(j)
            out.append((float(s[i] + e[j]), int(context.starts[a]), int(context.ends[b])))
    return out


def null_score(start_logits: np.ndarray, end_logits: np.ndarray) -> float:
    """The score of "no answer in this window": start and end on the first special token."""
    return float(start_logits[0] + end_logits[0])


def merge_candidates(candidates: list[tuple[float, int, int]]) -> list[tuple[float, int, int]]:
    """One entry per character span (its best score), best first (ties: earlier, then shorter)."""
    best: dict[tuple[int, int], float] = {}
    for score, a, b in candidates:
        if score > best.get((a, b), -np.inf):
            best[(a, b)] = score
    return sorted(((s, a, b) for (a, b), s in best.items()), key=lambda c: (-c[0], c[1], c[2]))
