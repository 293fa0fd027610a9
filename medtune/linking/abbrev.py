"""Abbreviation definitions inside a document (Schwartz & Hearst, 2003).

A. S. Schwartz and M. A. Hearst, "A simple algorithm for identifying abbreviation definitions in
biomedical text", PSB 2003. Two patterns are recognised, within one sentence:

* ``long form (SF)``: ``hereditary nonpolyposis colorectal cancer (HNPCC)``;
* ``SF (long form)``: ``HNPCC (hereditary nonpolyposis colorectal cancer)``, tried when the text in
  the parentheses is not a plausible short form.

A short form has 2-10 characters, at most two words, starts with a letter or digit and contains a
letter; inside the parentheses only the part before the first ``,`` or ``;`` is taken (``(HD, MIM
143100)``). The long form is searched among the ``min(|SF| + 5, 2 * |SF|)`` words before the parenthesis
(``|SF|`` = characters of the short form). The paper's ``findBestLongForm`` matches the short form's
letters and digits right to left in the candidate, the first one at the start of a word; the long form
starts at that word. It must be longer than the short form and must not contain it as a word.

:func:`find_abbreviations` returns every definition with character offsets into the text;
:func:`abbreviation_map` keeps the first definition of each short form (the one a reader sees first).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Abbreviation", "find_abbreviations", "abbreviation_map", "best_long_form"]

_SENTENCE_END_RE = re.compile(r"[.!?]\s+(?=[A-Z0-9(\[])|[;:]\s")
_WORD_RE = re.compile(r"\S+")


@dataclass(frozen=True)
class Abbreviation:
    """A short form and its long form, with ``[start, end)`` character offsets into the text."""

    short: str
    long: str
    short_start: int
    short_end: int
    long_start: int
    long_end: int


def _valid_short_form(sf: str) -> bool:
    if not 2 <= len(sf) <= 10 or len(sf.split()) > 2:
        return False
    if not sf[0].isalnum() or not any(ch.isalpha() for ch in sf):
        return False
    return True


def best_long_form(short: str, candidate: str) -> int | None:
    """Start offset in ``candidate`` of the shortest long form matching ``short``, or ``None``.

    The algorithm of Schwartz & Hearst (2003), Figure 2: every letter or digit of the short form,
    right to left, must match a character of the candidate further left than the previous match; the
    first character of the short form must match at the start of a word.
    """
    s = len(short) - 1
    pos = len(candidate) - 1
    while s >= 0:
        ch = short[s].lower()
        if not ch.isalnum():
            s -= 1
            continue
        while pos >= 0 and (candidate[pos].lower() != ch
                            or (s == 0 and pos > 0 and candidate[pos - 1].isalnum())):
            pos -= 1
        if pos < 0:
            return None
        pos -= 1
        s -= 1
    return candidate.rfind(" ", 0, pos + 1) + 1


def _sentence_start(text: str, end: int) -> int:
    """Offset where the sentence holding ``text[end - 1]`` starts (a rough splitter is enough)."""
    start = 0
    for match in _SENTENCE_END_RE.finditer(text, 0, end):
        start = match.end()
    return start


def _closing(text: str, open_at: int) -> int | None:
    depth = 0
    for i in range(open_at, min(len(text), open_at + 400)):
        if text[i] == "(":
            depth += 1
        elif text[i] == ")":
            depth -= 1
            if depth == 0:
                return i
    return None


def _long_before(text: str, paren: int, short: str) -> tuple[int, int] | None:
    """The long form of ``short`` among the words before ``text[paren]``: its offsets, or ``None``."""
    lo = _sentence_start(text, paren)
    window = text[lo:paren]
    # no nested parenthesis content: the candidate starts after the last ')' or '(' before ours
    cut = max(window.rfind(")"), window.rfind("("))
    if cut >= 0:
        lo, window = lo + cut + 1, window[cut + 1:]
    words = list(_WORD_RE.finditer(window))
    if not words:
        return None
    max_words = min(len(short) + 5, len(short) * 2)
    first = words[max(0, len(words) - max_words)]
    cand_start = lo + first.start()
    cand_end = lo + words[-1].end()
    candidate = text[cand_start:cand_end]
    rel = best_long_form(short, candidate)
    if rel is None:
        return None
    return _checked(text, cand_start + rel, cand_end, short)


def _checked(text: str, start: int, end: int, short: str) -> tuple[int, int] | None:
    long = text[start:end]
    if len(long) <= len(short) or short.lower() in (w.lower() for w in long.split()):
        return None
    if len(long.split()) > min(len(short) + 5, len(short) * 2):
        return None
    return start, end


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def find_abbreviations(text: str) -> list[Abbreviation]:
    """Every abbreviation definition in ``text``, in text order (see the module docstring)."""
    found: list[Abbreviation] = []
    pos = 0
    while True:
        open_at = text.find("(", pos)
        if open_at < 0:
            break
        pos = open_at + 1
        close = _closing(text, open_at)
        if close is None:
            continue
        inner_start, inner_end = open_at + 1, close
        cut = min((i for i in (text.find(",", inner_start, inner_end), text.find(";", inner_start, inner_end))
                   if i >= 0), default=inner_end)
        sf_start, sf_end = _strip(text, inner_start, cut)
        short = text[sf_start:sf_end]
        if short and _valid_short_form(short):
            span = _long_before(text, open_at, short)
            if span is not None:
                found.append(Abbreviation(short, text[span[0]:span[1]], sf_start, sf_end, *span))
                continue
        # reversed pattern: "SF (long form)" - the short form is the word before the parenthesis
        before = text[:open_at].rstrip()
        match = re.search(r"(\S+)$", before)
        if match is None:
            continue
        short = match.group(1).strip(".,;:\"'")
        if not short or not _valid_short_form(short) or " " in short:
            continue
        sf_end = match.start(1) + match.group(1).find(short) + len(short)
        sf_start = sf_end - len(short)
        long_start, long_end = _strip(text, inner_start, inner_end)
        if long_end - long_start <= len(short):
            continue
        candidate = text[long_start:long_end]
        rel = best_long_form(short, candidate)
        if rel is None:
            continue
        span = _checked(text, long_start + rel, long_end, short)
        if span is not None and span[0] == long_start:
            found.append(Abbreviation(short, text[span[0]:span[1]], sf_start, sf_end, *span))
    return found


def abbreviation_map(text: str) -> dict[str, Abbreviation]:
    """Short form -> its first definition in ``text``."""
    out: dict[str, Abbreviation] = {}
    for abbr in find_abbreviations(text):
        out.setdefault(abbr.short, abbr)
    return out
