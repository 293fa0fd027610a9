"""Sentence boundaries as character offsets, for relation candidates, assertion scope and pipelines.

One splitter for the whole package (the ConText rules were tuned with it). Offsets always point into
the original text, so spans never move; white space between sentences belongs to none.
"""

from __future__ import annotations

import bisect
import re
from typing import Any, Literal

Newlines = Literal["auto", "always", "never"]

_ABBREVIATIONS = frozenset("""
dr mr mrs ms prof pt pts vs v e.g i.e etc approx appt dept st fig nos dx hx tx rx sx fx
b.i.d t.i.d q.i.d q.d p.o p.r i.v i.m s.c q.h h.s p.r.n a.m p.m mg ml mcg cc min max sr jr inc
""".split())

_BOUNDARY = re.compile(
    r"[.!?]+[\"')\]]*(?=\s)"  # end punctuation (with closing quotes / brackets) before white space
    r"|\n[ \t]*\n"  # a blank line
    r"|\n(?=[ \t]*(?:[-*\u2022]|\d{1,2}[.)]\s|[A-Z][A-Z /&]{2,}:))"  # a line break before an item / HEADER:
)


_LINE_BREAK = re.compile(r"\r\n|\r|\n")
#: A line that ends like this continues on the next line (hard-wrapped prose), whatever follows.
_CONTINUES = re.compile(r"[,;(\[/&+\-\u2013]\s*$")
#: Lines needed before ``newlines="auto"`` reads a text as one sentence per line.
AUTO_MIN_LINES = 3


def line_per_sentence(text: str) -> bool:
    """Whether ``text`` looks like one sentence per line (the rule of ``newlines="auto"``).

    True when the text has at least :data:`AUTO_MIN_LINES` non-blank lines, no line after the first
    starts with a lower-case letter, and no line but the last ends in a continuation mark (``,`` ``;``
    ``(`` ``[`` ``/`` ``&`` ``+`` ``-`` ``–``). Hard-wrapped prose almost always has a line that starts
    in lower case or ends with a comma, so its line breaks stay what they are today.
    """
    lines = [line.strip() for line in _LINE_BREAK.split(text)]
    lines = [line for line in lines if line]
    if len(lines) < AUTO_MIN_LINES:
        return False
    if any(line[0].islower() for line in lines[1:]):
        return False
    return not any(_CONTINUES.search(line) for line in lines[:-1])


def split_sentences(text: str, newlines: Newlines = "auto") -> list[tuple[int, int]]:
    """Character ``(start, end)`` of the sentences of ``text``, white space trimmed.

    A sentence ends at ``.``, ``!`` or ``?`` followed by white space (unless the word before the
    period is a common clinical abbreviation, a single letter or a list number opening the sentence,
    or the next word starts in lower case), at a blank line, and at a line break followed by a list
    item or an upper-case section header (``EXAM:``). Simple and predictable: it never drops or
    reorders characters.

    ``newlines`` says whether every line break also ends a sentence: ``"always"``; ``"never"`` (only
    the rules above); ``"auto"`` (default) when :func:`line_per_sentence` says the text is written one
    sentence per line (corpora that separate sentences by line breaks only), else as ``"never"``.
    A text without line breaks is split the same way by all three.
    """
    if newlines not in ("auto", "always", "never"):
        raise ValueError(f"newlines must be 'auto', 'always' or 'never', not {newlines!r}")
    if "\n" not in text and "\r" not in text:
        return _split(text)
    if newlines == "never" or (newlines == "auto" and not line_per_sentence(text)):
        return _split(text)
    out: list[tuple[int, int]] = []
    start = 0
    for m in _LINE_BREAK.finditer(text):
        out.extend((start + a, start + b) for a, b in _split(text[start:m.start()]))
        start = m.end()
    out.extend((start + a, start + b) for a, b in _split(text[start:]))
    return out


def _split(text: str) -> list[tuple[int, int]]:
    bounds: list[tuple[int, int]] = []
    start = 0
    n = len(text)
    for m in _BOUNDARY.finditer(text):
        end = m.end()
        if m.group(0)[0] == ".":
            word_start = m.start()
            while word_start > start and not text[word_start - 1].isspace():
                word_start -= 1
            word = text[word_start:m.start()].lower().strip("([\"'")
            if len(word) == 1 and word.isalpha() or word in _ABBREVIATIONS:
                continue
            if word.isdigit() and len(word) <= 2 and not text[start:word_start].strip():
                continue  # a list number ("1. Fluids") opens its sentence
            nxt = end
            while nxt < n and text[nxt].isspace():
                nxt += 1
            if nxt < n and text[nxt].islower():
                continue
        bounds.append((start, end))
        start = end
    bounds.append((start, n))
    out = []
    for a, b in bounds:
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if b > a:
            out.append((a, b))
    return out


def sentences_of(doc: Any, newlines: Newlines = "auto") -> list[tuple[int, int]]:
    """The document's sentences: ``doc.metadata["sentences"]`` when given, else :func:`split_sentences`."""
    given = doc.metadata.get("sentences") if getattr(doc, "metadata", None) else None
    if given:
        return [(int(a), int(b)) for a, b in given]
    return split_sentences(doc.text, newlines)


def sentence_index(sentences: list[tuple[int, int]], offset: int) -> int:
    """Index of the sentence holding character ``offset`` (the nearest one before it when between)."""
    starts = [s for s, _ in sentences]
    return max(0, bisect.bisect_right(starts, offset) - 1)
