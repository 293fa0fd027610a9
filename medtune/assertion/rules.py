r"""A ConText-style assertion engine: negation, uncertainty, temporality, experiencer, conditionality.

The engine follows the ConText algorithm (Harkema et al., 2009; NegEx by Chapman et al., 2001):
trigger phrases ("no", "denies", "history of", "mother") open a *scope* in one direction; a concept
span that lies in the scope of a trigger gets the trigger's attribute. A scope ends

* at the end of the sentence that holds the trigger (the engine never looks past the sentence that
  holds the span),
* at a *terminator* of the trigger's category family ("but", "however", "which", "cause of", ...),
* at the next trigger of the same family (with ``same_family_terminates``, the default; see
  ``SCOPE_ENDERS``), so that in "possible pneumonia, no effusion" the effusion is negated, not
  uncertain; an uncertainty cue inside a negation's scope does not end it,
* after ``max_scope`` word tokens, when the rule (or the lexicon's ``defaults``) sets one.

*Pseudo-triggers* ("no increase", "not only", "gram negative") match like triggers and hide every
shorter trigger they overlap, so "no increase in pain" leaves the pain affirmed. Among overlapping
matches the longest wins ("cannot rule out" over "cannot"), which is how NegEx resolves them.

Categories and the span attribute they set:

===================  ===============  ==============
category             attribute        family
===================  ===============  ==============
NEGATED_EXISTENCE    ``negated``      existence
POSSIBLE_EXISTENCE   ``uncertain``    existence
HISTORICAL           ``historical``   temporality
HYPOTHETICAL         ``hypothetical`` temporality
FAMILY               ``family``       experiencer
CONDITIONAL          ``conditional``  conditional
PSEUDO               (none: masks)    all
TERMINATE            (none: ends)     all, or ``terminates``
===================  ===============  ==============

A lexicon is a YAML file::

    defaults:               # optional
      max_scope: null       # word tokens; null = to the end of the sentence
      same_family_terminates: true
    rules:
      - phrase: denies                    # or a list of phrases sharing the other keys
        category: NEGATED_EXISTENCE
        direction: forward                # forward | backward | bidirectional | terminate | pseudo
        max_scope: 8                      # optional, word tokens
      - {phrase: "but", category: TERMINATE}
      - {phrase: "r/o|rule out", category: POSSIBLE_EXISTENCE, regex: true}
      - {phrase: "which", category: TERMINATE, terminates: [NEGATED_EXISTENCE, POSSIBLE_EXISTENCE]}

Literal phrases match case-insensitively, token by token: text and phrase are cut into words
(``\w+``) and single punctuation marks, so a phrase matches at word boundaries whatever the white
space between its tokens ("rule-out" matches "rule - out", "h/o" matches "h / o"). ``regex: true``
phrases are regular expressions in Python's syntax (matched case-insensitively by the ``regex``
module in its ``re``-compatible mode, used as written; put ``\b`` around words yourself). A pattern
that takes more than ``regex_timeout`` seconds (default 0.2) on one sentence -- catastrophic
backtracking, as in ``(a+)+$`` -- stops the analysis with a ``ConfigError`` naming the lexicon file and
the rule. Regex and literal matches compete in the same longest-match resolution. A
modifier category with ``direction: terminate`` ends the scopes of its family; with ``direction:
pseudo`` it masks. A user lexicon that repeats a phrase of an earlier file replaces
that file's rules for the phrase (a ``PSEUDO`` rule thus switches a shipped trigger off).

Nothing in this module logs or raises note text: errors name lexicon files, rule indexes and keys.
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from medtune.assertion.lexicon import (  # noqa: F401
    ATTRIBUTES,
    CATEGORIES,
    CATEGORY_ATTRIBUTE,
    CATEGORY_FAMILY,
    DEFAULT_KEYS,
    DIRECTIONS,
    REGEX_TIMEOUT_S,
    SCOPE_ENDERS,
    WORD_TOKEN,
    ContextRule,
    compile_regex,
    load_lexicon,
    load_shipped_lexicon,
    origin_error,
    parse_lexicon_text,
    parse_rules,
    phrase_tokens,
    shipped_lexicon_path,
)
from medtune.document import Document
from medtune.errors import ConfigError, quote_id
from medtune.sentences import sentences_of, split_sentences


# --------------------------------------------------------------------------- engine
@dataclass
class _Cue:
    start: int
    end: int
    rules: list[ContextRule]


@dataclass
class _SentenceCues:
    """The resolved cues of one sentence (region) and the word tokens used to count scopes."""

    start: int
    end: int
    modifiers: list[tuple[int, int, ContextRule]] = field(default_factory=list)
    terminators: list[tuple[int, int, ContextRule]] = field(default_factory=list)
    token_starts: list[int] = field(default_factory=list)


class ContextEngine:
    """Apply ConText rules to the spans of documents. See the module docstring.

    ``labels`` restricts the engine to spans with one of these labels (others are left untouched);
    ``max_scope`` and ``same_family_terminates`` override the lexicon ``defaults``; ``regex_timeout``:
    the seconds a regex rule may take on one sentence (``ConfigError`` beyond).
    """

    def __init__(
        self,
        rules: Sequence[ContextRule],
        *,
        max_scope: int | None = None,
        same_family_terminates: bool = True,
        labels: Iterable[str] | None = None,
        regex_timeout: float = REGEX_TIMEOUT_S,
    ) -> None:
        self.rules = list(rules)
        self.regex_timeout = regex_timeout
        self.max_scope = max_scope
        self.same_family_terminates = same_family_terminates
        self.labels = frozenset(labels) if labels is not None else None
        self._literal: dict[tuple[str, ...], list[ContextRule]] = {}
        regex_rules: list[ContextRule] = []
        for rule in self.rules:
            if rule.regex:
                regex_rules.append(rule)
            else:
                self._literal.setdefault(phrase_tokens(rule.phrase), []).append(rule)
        self._regex = [(compile_regex(r), r) for r in regex_rules]
        self._longest = max((len(k) for k in self._literal), default=0)
        self._firsts = frozenset(k[0] for k in self._literal)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_yaml(
        cls,
        paths: Sequence[str | Path] | str | Path | None = None,
        *,
        extend: bool = True,
        labels: Iterable[str] | None = None,
        **overrides: Any,
    ) -> ContextEngine:
        """The shipped English lexicon plus the user lexicons ``paths`` (``extend=True``), or the
        user lexicons alone (``extend=False``).

        A phrase that a later file repeats replaces the rules of earlier files for that phrase.
        ``defaults`` of later files override earlier ones; keyword ``overrides`` (``max_scope``,
        ``same_family_terminates``) override them all.
        """
        if isinstance(paths, (str, Path)):
            paths = [paths]
        files: list[Path] = [Path(p) for p in paths or []]
        if not extend and not files:
            raise ConfigError("extend=False needs at least one lexicon file",
                              fix="pass paths=[...] or keep extend=True to use the shipped lexicon")
        loaded = [load_shipped_lexicon()] if extend else []
        loaded += [load_lexicon(path) for path in files]
        merged: list[ContextRule] = []
        settings: dict[str, Any] = {"max_scope": None, "same_family_terminates": True}
        for rules, defaults in loaded:
            keys = {r.key for r in rules}
            merged = [r for r in merged if r.key not in keys] + rules
            settings.update(defaults)
        unknown = sorted(set(overrides) - set(DEFAULT_KEYS))
        if unknown:
            raise TypeError(f"unexpected keyword argument(s) {unknown}")
        settings.update(overrides)
        return cls(merged, labels=labels, **settings)

    # ------------------------------------------------------------------ matching
    def _match(self, text: str, start: int, end: int) -> _SentenceCues:
        """Find, resolve and classify the cues of ``text[start:end]`` (offsets stay document-level)."""
        region = text[start:end]
        found: list[_Cue] = []
        tokens = [(m.start() + start, m.end() + start, m.group(0).lower().replace("\u2019", "'"))
                  for m in WORD_TOKEN.finditer(region)]
        words = [t[2] for t in tokens]
        n = len(words)
        for i, first in enumerate(words):
            if first not in self._firsts:
                continue
            for size in range(min(self._longest, n - i), 0, -1):
                rules = self._literal.get(tuple(words[i:i + size]))
                if rules:
                    found.append(_Cue(tokens[i][0], tokens[i + size - 1][1], rules))
                    break
        for pattern, rule in self._regex:
            try:
                spans = [m.span() for m in pattern.finditer(region, timeout=self.regex_timeout)]
            except TimeoutError:
                raise origin_error(
                    rule, f"the regular expression took more than {self.regex_timeout} s on one sentence "
                    f"({len(region)} characters): it backtracks catastrophically",
                    "rewrite the pattern without nested or adjacent repetitions that can match the same "
                    "text in many ways (e.g. (a+)+ -> a+, (\\w+\\s?)+ -> [\\w\\s]+), anchor it with \\b, "
                    "or make it a literal phrase (regex: false)") from None
            for a, b in spans:
                if b > a:
                    found.append(_Cue(a + start, b + start, [rule]))
        # the longest match wins; among equals, the earliest
        found.sort(key=lambda c: (c.start - c.end, c.start))
        taken: list[tuple[int, int]] = []
        kept: list[_Cue] = []
        for cue in found:
            if any(cue.start < b and a < cue.end for a, b in taken):
                continue
            taken.append((cue.start, cue.end))
            kept.append(cue)
        kept.sort(key=lambda c: c.start)
        word_starts = [a for a, _b, w in tokens if w[0].isalnum() or w[0] == "_"]
        result = _SentenceCues(start, end, token_starts=word_starts)
        for cue in kept:
            for rule in cue.rules:
                if rule.is_modifier:
                    result.modifiers.append((cue.start, cue.end, rule))
                elif rule.direction == "terminate":
                    result.terminators.append((cue.start, cue.end, rule))
        return result

    # ------------------------------------------------------------------ scopes
    def _in_scope(self, cues: _SentenceCues, cue: tuple[int, int, ContextRule], a: int, b: int) -> bool:
        s, e, rule = cue
        if a < e and s < b:  # a trigger inside (or overlapping) the concept is part of the concept
            return False
        limit = rule.max_scope if rule.max_scope is not None else self.max_scope
        enders = SCOPE_ENDERS[rule.category]
        if a >= e and rule.direction in ("forward", "bidirectional"):
            stop = cues.end
            for ts, _te, trule in cues.terminators:
                if ts >= e and rule.category in trule.terminates:
                    stop = min(stop, ts)
                    break
            if self.same_family_terminates:
                for ms, _me, mrule in cues.modifiers:
                    if ms >= e and mrule.category in enders:
                        stop = min(stop, ms)
                        break
            if a >= stop:
                return False
            if limit is not None:
                between = bisect_left(cues.token_starts, a) - bisect_left(cues.token_starts, e)
                if between >= limit:
                    return False
            return True
        if b <= s and rule.direction in ("backward", "bidirectional"):
            stop = cues.start
            for _ts, te, trule in reversed(cues.terminators):
                if te <= s and rule.category in trule.terminates:
                    stop = max(stop, te)
                    break
            if self.same_family_terminates:
                for _ms, me, mrule in reversed(cues.modifiers):
                    if me <= s and mrule.category in enders:
                        stop = max(stop, me)
                        break
            if b <= stop:
                return False
            if limit is not None:
                between = bisect_left(cues.token_starts, s) - bisect_right(cues.token_starts, b - 1)
                if between >= limit:
                    return False
            return True
        return False

    def _assert(self, cues: _SentenceCues, a: int, b: int) -> tuple[dict[str, bool], list[list[int]]]:
        values = dict.fromkeys(ATTRIBUTES, False)
        fired: list[list[int]] = []
        for cue in cues.modifiers:
            if self._in_scope(cues, cue, a, b):
                values[CATEGORY_ATTRIBUTE[cue[2].category]] = True
                if [cue[0], cue[1]] not in fired:
                    fired.append([cue[0], cue[1]])
        return values, fired

    # ------------------------------------------------------------------ public API
    def __call__(self, doc: Document, *, labels: Iterable[str] | None = None) -> Document:
        """Set the six assertion attributes and ``assertion_cues`` on the spans of ``doc`` (in place).

        Only spans whose label is in ``labels`` (or the engine's ``labels``) are touched when a filter
        is given. ``doc.metadata["sentences"]`` (a list of ``[start, end]``) is used when present,
        otherwise the text is split with :func:`split_sentences`. Returns ``doc``.
        """
        wanted = frozenset(labels) if labels is not None else self.labels
        spans = [s for s in doc.spans if wanted is None or s.label in wanted]
        if not spans:
            return doc
        sentences = _sorted_sentences(doc)
        starts = [s for s, _ in sentences]
        cache: dict[tuple[int, int], _SentenceCues] = {}
        for span in spans:
            region = _region(sentences, starts, span.start, span.end, len(doc.text))
            cues = cache.get(region)
            if cues is None:
                cues = cache[region] = self._match(doc.text, *region)
            values, fired = self._assert(cues, span.start, span.end)
            span.attributes.update(values)
            span.attributes["assertion_cues"] = fired
        return doc

    def assert_span(self, text: str, start: int, end: int) -> dict[str, bool]:
        """The six assertion attributes of ``text[start:end]`` (looking only at its sentence)."""
        if not (0 <= start <= end <= len(text)):
            raise ValueError(f"offsets [{start}, {end}) outside a text of length {len(text)}")
        sentences = split_sentences(text)
        region = _region(sentences, [s for s, _ in sentences], start, end, len(text))
        values, _ = self._assert(self._match(text, *region), start, end)
        return values

    def cues(self, text: str) -> list[dict[str, Any]]:
        """Every resolved trigger and terminator of ``text``: offsets, category and direction (for
        debugging a lexicon; the matched text is not returned)."""
        out = []
        for s, e in split_sentences(text) or [(0, len(text))]:
            found = self._match(text, s, e)
            for a, b, rule in sorted(found.modifiers + found.terminators, key=lambda c: c[0]):
                out.append({"start": a, "end": b, "category": rule.category, "direction": rule.direction,
                            "origin": rule.origin})
        return out

    def __repr__(self) -> str:
        return (f"ContextEngine({len(self.rules)} rules, max_scope={self.max_scope}, "
                f"same_family_terminates={self.same_family_terminates})")




def _sorted_sentences(doc: Document) -> list[tuple[int, int]]:
    """:func:`medtune.sentences.sentences_of`, sorted (``_region`` bisects), malformed metadata refused."""
    try:
        return sorted(sentences_of(doc))
    except (TypeError, ValueError):
        raise ConfigError(f"document {quote_id(doc.id)}: metadata 'sentences' must be a list of [start, end]",
                          fix="give character offsets as pairs of integers, or drop the key") from None


def _region(sentences: list[tuple[int, int]], starts: list[int], a: int, b: int, n: int) -> tuple[int, int]:
    """The stretch of text the engine reads for a span ``[a, b)``: the sentence(s) it overlaps, or
    the nearest sentence when it lies in the white space between two."""
    if not sentences:
        return (0, n)
    i = bisect_right(starts, a) - 1
    if i < 0:
        i = 0
    j = i
    while j + 1 < len(sentences) and sentences[j + 1][0] < b:
        j += 1
    return (min(sentences[i][0], a), max(sentences[j][1], b))


__all__ = [
    "ATTRIBUTES", "CATEGORIES", "CATEGORY_ATTRIBUTE", "CATEGORY_FAMILY", "DIRECTIONS",
    "ContextEngine", "ContextRule", "load_lexicon", "load_shipped_lexicon", "parse_lexicon_text",
    "parse_rules", "shipped_lexicon_path",
    "split_sentences",
]

