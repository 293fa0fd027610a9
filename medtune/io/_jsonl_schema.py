"""Strict parsing of one medtune JSONL line: JSON without surprises, then a strict pydantic schema.

``json.loads`` alone accepts ``NaN``/``Infinity``, keeps the last of duplicate keys, raises a bare
``ValueError`` for integers of thousands of digits and ``RecursionError`` for deep nesting, and
returns lone surrogates that break UTF-8 encoding and tokenisers later. ``Document.from_dict`` would
then turn ``"labels": "pos"`` into three labels, ``"start": 1.5`` into 1 and ``"id": null`` into
``"None"``. Here each of those is a ``DataFormatError`` (codes E102/E103/E104) that names the field,
never its value; the caller adds file and line.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from medtune.document import Document, Relation, Span
from medtune.errors import DataFormatError, describe

MAX_DIGITS = 64
MAX_DEPTH = 100
E_JSON, E_SCHEMA, E_ENCODING, E_TOKENS = "E102", "E103", "E104", "E106"

_SHAPE_FIX = ("compare the line with Document.to_dict(): id and text are strings, offsets integers, "
              "labels and ids lists of strings, attributes and metadata objects")

Pair = Annotated[list[int], Field(min_length=2, max_length=2)]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class SpanModel(_Strict):
    start: int
    end: int
    label: str
    text: str | None = None
    score: float | None = None
    ids: list[str] = []
    attributes: dict[str, Any] = {}
    id: str | None = None
    fragments: list[Pair] | None = None


class RelationModel(_Strict):
    label: str
    head: str
    tail: str
    score: float | None = None
    id: str | None = None
    attributes: dict[str, Any] = {}


class DocumentModel(_Strict):
    id: str
    text: str
    text_pair: str | None = None
    spans: list[SpanModel] = []
    relations: list[RelationModel] = []
    labels: list[str] = []
    label_scores: dict[str, float] = {}
    metadata: dict[str, Any] = {}


class _Bad:
    """Stands in for a JSON value strict JSON refuses, so that the walk can name its field."""

    def __init__(self, what: str) -> None:
        self.what = what


class _DuplicateKeys(dict):  # type: ignore[type-arg]
    """An object in which a key occurred more than once (json.loads would keep the last silently)."""


def _parse_int(raw: str) -> Any:
    digits = len(raw.lstrip("-"))
    return _Bad(f"an integer of {digits} digits") if digits > MAX_DIGITS else int(raw)


def _parse_float(raw: str) -> Any:
    value = float(raw)
    return value if math.isfinite(value) else _Bad("a number too large for a float")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    return _DuplicateKeys(out) if len(out) != len(pairs) else out


_FIELD_NAMES = frozenset(DocumentModel.model_fields) | frozenset(SpanModel.model_fields) \
    | frozenset(RelationModel.model_fields) | {"tokens", "pmid", "title_end"}


def field_path(parts: tuple[Any, ...] | list[Any]) -> str:
    """``spans[0].start``; a key that is not a field medtune defines (it may be note text) is ``<key>``."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            name = part if part in _FIELD_NAMES else "<key>"
            out += f".{name}" if out else name
    return out


def _error(message: str, field: str | None, code: str, fix: str) -> DataFormatError:
    return DataFormatError(message, field=field or None, code=code, fix=fix)


def _loads(line: str) -> Any:
    try:
        return json.loads(line, parse_constant=lambda name: _Bad(f"the constant {name}"),
                          parse_int=_parse_int, parse_float=_parse_float, object_pairs_hook=_object)
    except json.JSONDecodeError as err:
        raise _error(f"not valid JSON ({err.msg} at column {err.colno})", None, E_JSON,
                     "write one JSON object per line (a pretty-printed file is not JSONL)") from None
    except RecursionError:
        raise _error(f"the JSON is nested more than {MAX_DEPTH} levels deep", None, E_JSON,
                     "flatten the metadata or attributes") from None


def _walk(data: Any) -> None:
    """Refuse what strict JSON forbids, naming the field of the first offence."""
    stack: list[tuple[Any, tuple[Any, ...]]] = [(data, ())]
    while stack:
        value, where = stack.pop()
        if len(where) > MAX_DEPTH:
            raise _error(f"the JSON is nested more than {MAX_DEPTH} levels deep", field_path(where[:3]),
                         E_JSON, "flatten the metadata or attributes")
        if isinstance(value, _Bad):
            raise _error(f"holds {value.what}, which medtune's JSONL does not allow", field_path(where),
                         E_JSON, f"write finite numbers, integers of at most {MAX_DIGITS} digits "
                                 "(NaN and Infinity are not JSON)")
        if isinstance(value, str):
            _check_encodable(value, where)
        elif isinstance(value, dict):
            if isinstance(value, _DuplicateKeys):
                raise _error("an object has the same key twice", field_path(where), E_JSON,
                             "give every key once (JSON readers disagree on which value wins)")
            for key, item in value.items():
                _check_encodable(key, where + ("<key>",))
                stack.append((item, where + (key,)))
        elif isinstance(value, list):
            stack.extend((item, where + (k,)) for k, item in enumerate(value))


def _check_encodable(value: str, where: tuple[Any, ...]) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise _error(f"a string holds a lone surrogate (character {err.start} of {len(value)}), which "
                     "is not text and cannot be encoded as UTF-8", field_path(where), E_ENCODING,
                     "escape only whole characters (a surrogate pair, or the character itself)") from None


_EXPECTED = {
    "int_type": "an integer", "string_type": "a string", "float_type": "a number",
    "list_type": "a list", "dict_type": "an object", "model_type": "an object",
    "too_short": "a [start, end] pair", "too_long": "a [start, end] pair",
}


def parse_document(line: str) -> DocumentModel:
    """The validated document of one JSONL line, or ``DataFormatError`` without file and line."""
    data = _loads(line)
    if not isinstance(data, dict):
        raise _error(f"the line holds {describe(data)}, not a JSON object", None, E_SCHEMA,
                     "write one document object per line")
    _walk(data)
    try:
        return DocumentModel.model_validate(data)
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        where = field_path(first["loc"])
        kind = first["type"]
        if kind == "missing":
            raise _error("a required field is missing", where, E_SCHEMA,
                         "every document needs 'id' and 'text'; every span 'start', 'end', 'label'; "
                         "every relation 'label', 'head', 'tail'") from None
        if kind == "extra_forbidden":
            raise _error("not a field of a medtune document", where, E_SCHEMA,
                         "keep extra information under 'metadata' (documents) or 'attributes' "
                         "(spans, relations)") from None
        expected = _EXPECTED.get(kind, "of another type")
        raise _error(f"must be {expected}, not {describe(first.get('input'))}", where, E_SCHEMA,
                     _SHAPE_FIX) from None


def check_tokens(tokens: Any, n_text: int, present: bool) -> None:
    """``metadata.tokens``: sorted, non-empty, non-overlapping ``[start, end]`` int pairs in the text."""
    if not present:
        return
    fix = ("metadata.tokens holds [start, end] character offsets of the tokens, sorted and "
           "non-overlapping; remove it to let medtune tokenise")
    if not isinstance(tokens, list):
        raise _error(f"must be a list of [start, end] pairs, not {describe(tokens)}", "metadata.tokens",
                     E_TOKENS, fix)
    prev_end = 0
    for k, pair in enumerate(tokens):
        if not (isinstance(pair, list) and len(pair) == 2
                and all(isinstance(x, int) and not isinstance(x, bool) for x in pair)):
            raise _error(f"token {k} is {describe(pair)}, not a [start, end] pair of integers",
                         f"metadata.tokens[{k}]", E_TOKENS, fix)
        start, end = pair
        if not prev_end <= start < end <= n_text:
            raise _error(f"token {k} [{start}, {end}) is empty, overlaps or precedes the previous token, "
                         f"or leaves the text of length {n_text}", f"metadata.tokens[{k}]", E_TOKENS, fix)
        prev_end = end


def to_document(model: "DocumentModel") -> Document:
    """The :class:`Document` a validated ``DocumentModel`` describes (fresh lists and dicts; not yet
    checked for offsets: call ``validate``)."""
    return Document(
        id=model.id, text=model.text, text_pair=model.text_pair, labels=list(model.labels),
        label_scores=dict(model.label_scores), metadata=dict(model.metadata),
        spans=[Span(start=s.start, end=s.end, label=s.label, text=s.text, score=s.score, ids=list(s.ids),
                    attributes=dict(s.attributes), id=s.id,
                    fragments=[(a, b) for a, b in s.fragments] if s.fragments is not None else None)
               for s in model.spans],
        relations=[Relation(label=r.label, head=r.head, tail=r.tail, score=r.score, id=r.id,
                            attributes=dict(r.attributes)) for r in model.relations],
    )
