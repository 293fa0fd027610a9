"""SQuAD-format question answering files (v1.1 and v2.0) to documents, and back.

One document per question: ``text`` = the paragraph's context, ``text_pair`` = the question, ``id`` =
the question id (as a string), one span labelled ``answer`` per gold answer (character offsets into
the context; several allowed, a question without any has none) and ``metadata["squad"]`` = where it
came from: ``article`` and ``paragraph`` (0-based positions), the original ``id`` (an integer stays one
on writing), and ``title``, ``document_id``, ``is_impossible``, ``version`` when the file has them.

Reading is strict: the file must be strict JSON (no NaN/Infinity, no duplicate keys, no integers of
more than 64 digits, no deep nesting; E102), every field medtune uses must have its SQuAD type
(E100), ``answer_start`` a non-negative integer (E105), strings encodable as UTF-8 (E104). Errors
name the file and the field (``data[3].paragraphs[0].qas[5].answers[0].answer_start``), never a value
from the file. An ``answer_start`` that does not point at its answer text is an error unless
``misaligned`` says otherwise: ``relocate`` moves the answer to the occurrence of its text nearest
to ``answer_start`` (an answer whose text is nowhere in the context is dropped), ``drop`` drops it;
either way a question left without its answers is dropped, every change is counted, one warning
gives the counts, and a relocated span keeps ``attributes["answer_start"]`` (the file's value).

Writers: :func:`write_squad` (a SQuAD file that reads back to the same documents) and
:func:`write_squad_predictions`, the official predictions format ``{question id: answer text}``
(``""`` for a question answered "no answer").
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Iterator

from medtune.document import Document, Span
from medtune.errors import DataFormatError, describe
from medtune.fileutils import atomic_write, read_text
from medtune.io._common import E_OFFSET, DuplicateIds, check_choice
from medtune.io._jsonl_schema import MAX_DEPTH, _Bad, _DuplicateKeys, _object, _parse_float, _parse_int

__all__ = ["read_squad", "iter_squad", "write_squad", "write_squad_predictions", "predicted_answer",
           "ANSWER", "NO_ANSWER", "MISALIGNED"]

logger = logging.getLogger(__name__)

ANSWER = "answer"
NO_ANSWER = "no_answer"
MISALIGNED = ("error", "relocate", "drop")
E_JSON, E_ENCODING = "E102", "E104"
_SHAPE_FIX = ("a SQuAD file is {\"data\": [{\"paragraphs\": [{\"context\": str, \"qas\": [{\"id\", \"question\": "
              "str, \"answers\": [{\"text\": str, \"answer_start\": int}]}]}]}]}")


def read_squad(path: str | Path, *, misaligned: str = "error", duplicates: str = "rename") -> Iterator[Document]:
    """Stream the questions of a SQuAD file as documents (see the module docstring).

    ``misaligned``: ``error`` (default), ``relocate`` or ``drop``; ``duplicates``: what to do with a
    question id seen before (``rename``, ``skip`` or ``error``, as the other readers).
    """
    counts: Counter = Counter()
    yield from iter_squad(path, misaligned=misaligned, duplicates=duplicates, counts=counts)
    changed = {k: v for k, v in counts.items() if k not in ("questions", "answers") and v}
    if changed:
        logger.warning("%s: %s", path, ", ".join(f"{k} {v}" for k, v in sorted(changed.items())))


def iter_squad(path: str | Path, *, misaligned: str = "error", duplicates: str = "rename",
               counts: Counter | None = None) -> Iterator[Document]:
    """:func:`read_squad` with the counts (questions, answers, answers_relocated, ...) added to
    ``counts`` and no warning: for loaders that report the counts themselves."""
    path = Path(path)
    check_choice(misaligned, MISALIGNED, "misaligned", path)
    counts = Counter() if counts is None else counts
    ids = DuplicateIds(duplicates, path)  # type: ignore[arg-type]
    data = _load(path)
    top = _object_at(data, "", path, "the top level")
    version = top.get("version")
    articles = _field(top, "data", list, "", path)
    for i, article in enumerate(articles):
        where = f"data[{i}]"
        article = _object_at(article, where, path)
        title = _optional(article, "title", (str,), where, path)
        for j, para in enumerate(_field(article, "paragraphs", list, where, path)):
            pw = f"{where}.paragraphs[{j}]"
            para = _object_at(para, pw, path)
            context = _string(para, "context", pw, path)
            document_id = _optional(para, "document_id", (str, int), pw, path)
            for k, qa in enumerate(_field(para, "qas", list, pw, path)):
                qw = f"{pw}.qas[{k}]"
                qa = _object_at(qa, qw, path)
                source = {"article": i, "paragraph": j}
                for key, value in (("title", title), ("document_id", document_id)):
                    if value is not None:
                        source[key] = value
                if isinstance(version, str):
                    source["version"] = version
                doc = _question(qa, qw, context, path, misaligned, counts, source)
                if doc is None:
                    continue
                doc_id = ids.resolve(doc.id, where=f"the question at {qw}")
                if doc_id is None:
                    continue
                doc.id = doc_id
                counts["questions"] += 1
                counts["answers"] += len(doc.spans)
                yield doc.validate(source=str(path), name=f"the question at {qw}")


def _question(qa: dict[str, Any], qw: str, context: str, path: Path, misaligned: str, counts: Counter,
              source: dict[str, Any]) -> Document | None:
    question = _string(qa, "question", qw, path)
    if "id" not in qa:
        raise DataFormatError("a question has no id", path=path, field=f"{qw}.id", fix=_SHAPE_FIX)
    qid = _optional(qa, "id", (str, int), qw, path)
    impossible = _optional(qa, "is_impossible", (bool,), qw, path)
    answers = _optional(qa, "answers", (list,), qw, path) or []
    if impossible and answers:
        raise DataFormatError("a question marked is_impossible has answers", path=path, field=f"{qw}.answers",
                              fix="give an impossible question an empty answers list (SQuAD 2.0)")
    spans = []
    for a, answer in enumerate(answers):
        aw = f"{qw}.answers[{a}]"
        answer = _object_at(answer, aw, path)
        text = _string(answer, "text", aw, path)
        start = _offset(answer, aw, path)
        if not text:
            raise DataFormatError("an answer text is empty", path=path, field=f"{aw}.text",
                                  fix="remove empty answers (a question without an answer has an empty list)")
        span = _place(context, text, start, aw, path, misaligned, counts)
        if span is not None:
            spans.append(span)
    if answers and not spans:
        counts["questions_dropped"] += 1
        return None
    source["id"] = qid
    if impossible is not None:
        source["is_impossible"] = impossible
    return Document(id=str(qid), text=context, text_pair=question, spans=spans, metadata={"squad": source})


def _place(context: str, text: str, start: int, aw: str, path: Path, misaligned: str,
           counts: Counter) -> Span | None:
    if context[start:start + len(text)] == text:
        return Span(start=start, end=start + len(text), label=ANSWER, text=text)
    if misaligned == "error":
        raise DataFormatError(
            f"the answer text is not at answer_start ({start}) of the context (of {len(context)} characters)",
            path=path, field=f"{aw}.answer_start",
            fix="correct answer_start, or read with misaligned='relocate' (the nearest occurrence of the text) "
                "or 'drop' (--reader.misaligned relocate)")
    if misaligned == "drop":
        counts["answers_dropped_misaligned"] += 1
        return None
    found, at = [], context.find(text)
    while at >= 0:
        found.append(at)
        at = context.find(text, at + 1)
    if not found:
        counts["answers_dropped_not_in_context"] += 1
        return None
    best = min(found, key=lambda x: (abs(x - start), x))
    counts["answers_relocated"] += 1
    counts["answers_relocated_ambiguous"] += int(len(found) > 1)
    counts["answers_relocated_max_shift"] = max(counts["answers_relocated_max_shift"], abs(best - start))
    return Span(start=best, end=best + len(text), label=ANSWER, text=text, attributes={"answer_start": start})


# ----------------------------------------------------------------------------- strict JSON, typed fields
def _load(path: Path) -> Any:
    text = read_text(path)
    try:
        return json.loads(text, parse_constant=lambda name: _Bad(f"the constant {name}"), parse_int=_parse_int,
                          parse_float=_parse_float, object_pairs_hook=_object)
    except json.JSONDecodeError as err:
        raise DataFormatError(f"not valid JSON ({err.msg} at column {err.colno})", path=path, line=err.lineno,
                              code=E_JSON, fix="a SQuAD file is one JSON object (check how it was written)") from None
    except RecursionError:
        raise DataFormatError(f"the JSON is nested more than {MAX_DEPTH} levels deep", path=path, code=E_JSON,
                              fix=_SHAPE_FIX) from None


def _name(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _object_at(value: Any, where: str, path: Path, what: str = "") -> dict[str, Any]:
    if isinstance(value, _Bad):
        _bad(value, where, path)
    if not isinstance(value, dict):
        raise DataFormatError(f"{what or 'this'} must be an object, not {describe(value)}", path=path,
                              field=where or None, fix=_SHAPE_FIX)
    if isinstance(value, _DuplicateKeys):
        raise DataFormatError("an object has the same key twice", path=path, field=where or None, code=E_JSON,
                              fix="give every key once (JSON readers disagree on which value wins)")
    return value


def _bad(value: _Bad, where: str, path: Path) -> None:
    raise DataFormatError(f"holds {value.what}, which strict JSON does not allow", path=path, field=where or None,
                          code=E_JSON, fix="write finite numbers and integers of at most 64 digits")


def _field(obj: dict[str, Any], key: str, kind: type, where: str, path: Path) -> Any:
    if key not in obj:
        raise DataFormatError(f"the field {key} is missing", path=path, field=_name(where, key), fix=_SHAPE_FIX)
    value = obj[key]
    if isinstance(value, _Bad):
        _bad(value, _name(where, key), path)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise DataFormatError(f"must be {_KINDS[kind]}, not {describe(value)}", path=path, field=_name(where, key),
                              fix=_SHAPE_FIX)
    return value


_KINDS = {list: "a list", str: "a string", int: "an integer", bool: "a boolean", dict: "an object"}


def _optional(obj: dict[str, Any], key: str, kinds: tuple[type, ...], where: str, path: Path) -> Any:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, _Bad):
        _bad(value, _name(where, key), path)
    ok = any(isinstance(value, k) and (k is bool or not isinstance(value, bool)) for k in kinds)
    if not ok:
        expected = " or ".join(_KINDS[k] for k in kinds)
        raise DataFormatError(f"must be {expected}, not {describe(value)}", path=path, field=_name(where, key),
                              fix=_SHAPE_FIX)
    if isinstance(value, str):
        _encodable(value, _name(where, key), path)
    return value


def _string(obj: dict[str, Any], key: str, where: str, path: Path) -> str:
    value = _field(obj, key, str, where, path)
    _encodable(value, _name(where, key), path)
    return value


def _encodable(value: str, field: str, path: Path) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise DataFormatError(f"a string holds a lone surrogate (character {err.start} of {len(value)})", path=path,
                              field=field, code=E_ENCODING,
                              fix="escape only whole characters (a surrogate pair, or the character itself)") from None


def _offset(answer: dict[str, Any], aw: str, path: Path) -> int:
    value = answer.get("answer_start")
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    what = "missing" if "answer_start" not in answer else (
        value.what if isinstance(value, _Bad) else describe(value))
    raise DataFormatError(f"answer_start must be a non-negative integer, not {what}", path=path,
                          field=f"{aw}.answer_start", code=E_OFFSET,
                          fix="answer_start is the 0-based character offset of the answer in the context")


# ----------------------------------------------------------------------------- writers
def predicted_answer(doc: Document) -> str:
    """The answer of a predicted document: its rank-1 ``answer`` span, or ``""`` when it is labelled
    ``no_answer`` or has no answer span (what the SQuAD predictions format writes)."""
    if NO_ANSWER in doc.labels:
        return ""
    spans = [s for s in doc.spans if s.label == ANSWER]
    if not spans:
        return ""
    best = min(spans, key=lambda s: s.attributes.get("rank", 1))
    return doc.text[best.start:best.end]


def write_squad(docs: Iterable[Document], path: str | Path) -> int:
    """Write documents as a SQuAD file (atomically); returns the number of questions.

    Questions are grouped into articles and paragraphs by ``metadata["squad"]`` (as the reader left
    it), else each document is its own article; answers are the spans labelled ``answer``. A
    question without an answer is written with ``is_impossible: true``.
    """
    path = Path(path)
    articles: dict[Any, dict[str, Any]] = {}
    paragraphs: dict[Any, dict[str, Any]] = {}
    version = None
    n = 0
    for position, doc in enumerate(docs):
        doc.validate(source=str(path), name=f"the document at position {position}")
        if doc.text_pair is None:
            raise DataFormatError(f"the document at position {position} has no question (text_pair)", path=path,
                                  field="text_pair", fix="a SQuAD file holds questions: put them in text_pair")
        source = doc.metadata.get("squad") if isinstance(doc.metadata.get("squad"), dict) else {}
        version = version or source.get("version")
        akey = ("article", source["article"]) if isinstance(source.get("article"), int) else ("document", position)
        article = articles.get(akey)
        if article is None:
            article = articles[akey] = {"title": source["title"]} if isinstance(source.get("title"), str) else {}
            article["paragraphs"] = []
        pkey = (akey, source.get("paragraph", position), doc.text)
        para = paragraphs.get(pkey)
        if para is None:
            para = paragraphs[pkey] = {"context": doc.text}
            if source.get("document_id") is not None:
                para["document_id"] = source["document_id"]
            para["qas"] = []
            article["paragraphs"].append(para)
        qid = source.get("id")
        qa: dict[str, Any] = {"id": qid if qid is not None and str(qid) == doc.id else doc.id,
                              "question": doc.text_pair,
                              "answers": [{"text": doc.text[s.start:s.end], "answer_start": s.start}
                                          for s in doc.spans if s.label == ANSWER]}
        if "is_impossible" in source or not qa["answers"]:
            qa["is_impossible"] = not qa["answers"]
        para["qas"].append(qa)
        n += 1
    out: dict[str, Any] = {"version": version} if version else {}
    out["data"] = list(articles.values())
    _dump(out, path)
    return n


def write_squad_predictions(docs: Iterable[Document], path: str | Path) -> int:
    """Write ``{question id: answer text}`` (the official SQuAD predictions format) atomically."""
    path = Path(path)
    answers: dict[str, str] = {}
    for doc in docs:
        answers[doc.id] = predicted_answer(doc)
    _dump(answers, path)
    return len(answers)


def _dump(value: Any, path: Path) -> None:
    text = json.dumps(value, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise DataFormatError("a document holds a lone surrogate, which is not text", path=path, code=E_ENCODING,
                              fix="decode the source text with errors='replace' (or fix it) before writing") from None
    with atomic_write(path) as handle:
        handle.write(text)
        handle.write("\n")
