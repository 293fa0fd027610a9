"""medtune's own lossless format: one ``Document.to_dict()`` JSON object per line.

Reading validates every document and names the file and line of the first fault; writing is
atomic and streaming (documents are written one by one into a temporary file that replaces the
target only when everything was written).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Iterable, Iterator

from medtune.document import Document
from medtune.errors import DataFormatError
from medtune.fileutils import atomic_write
from medtune.io._common import iter_lines_universal
from medtune.io._jsonl_schema import check_tokens, parse_document, to_document

__all__ = ["read_jsonl", "write_jsonl", "JsonlWriter"]


def read_jsonl(path: str | Path) -> Iterator[Document]:
    """Stream the documents of a JSONL file; blank lines are skipped.

    Each line is parsed as strict JSON (no ``NaN``/``Infinity``, no duplicate keys, no numbers of
    more than 64 digits, at most 100 levels of nesting, no lone surrogates) and checked against a
    strict schema (:mod:`medtune.io._jsonl_schema`): ``"labels": "positive"``, ``"start": 1.5``,
    ``"start": true`` or ``"id": null`` are errors naming the file, the line and the field, never
    silently converted. ``metadata["tokens"]``, when present, must be sorted, non-overlapping
    ``[start, end]`` integer pairs inside the text. Lines end at LF, CRLF or CR.
    """
    path = Path(path)
    for number, line in iter_lines_universal(path):
        if not line.strip():
            continue
        yield parse_line(line, path, number)


def parse_line(line: str, path: Path, number: int) -> Document:
    try:
        data = parse_document(line)
    except DataFormatError as err:
        raise err.located(path=path, line=number) from None
    doc = to_document(data)
    try:
        check_tokens(doc.metadata.get("tokens", None), len(doc.text), "tokens" in doc.metadata)
        return doc.validate(source=str(path), name="the document")
    except DataFormatError as err:
        raise err.located(path=path, line=number) from None


_LINE_BREAKS = {"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def _encode(doc: Document) -> str:
    """One line of JSONL.

    ``json.dumps`` escapes ``\\n`` and control characters but not U+0085/U+2028/U+2029, which
    ``str.splitlines`` and many JSONL readers treat as line breaks; escaping them too keeps one
    document on exactly one line for every reader.
    """
    line = doc.to_json()
    for raw, escaped in _LINE_BREAKS.items():
        line = line.replace(raw, escaped)
    return line + "\n"


def write_jsonl(docs: Iterable[Document], path: str | Path, *, validate: bool = True) -> int:
    """Write documents (any iterable, consumed lazily) to ``path`` atomically; returns the count."""
    with JsonlWriter(path, validate=validate) as writer:
        for doc in docs:
            writer.write(doc)
    return writer.count


class JsonlWriter:
    """Context manager that streams documents into a JSONL file, committed atomically on exit.

    An exception inside the ``with`` block leaves the previous file (or none) in place::

        with JsonlWriter("out.jsonl") as out:
            for doc in docs:
                out.write(doc)
    """

    def __init__(self, path: str | Path, *, validate: bool = True) -> None:
        self.path = Path(path)
        self.validate = validate
        self.count = 0
        self._stack: contextlib.ExitStack | None = None
        self._handle: IO[Any] | None = None

    def __enter__(self) -> "JsonlWriter":
        stack = contextlib.ExitStack()
        self._handle = stack.enter_context(atomic_write(self.path))
        self._stack = stack
        return self

    def write(self, doc: Document) -> None:
        """Append one document (validated first, so that the file always reads back)."""
        if self._handle is None:
            raise RuntimeError("JsonlWriter.write() outside its 'with' block")
        if self.validate:
            doc.validate(source=str(self.path))
        line = _encode(doc)
        try:
            line.encode("utf-8")
        except UnicodeEncodeError:
            raise DataFormatError(
                f"the document at position {self.count} holds a lone surrogate, which is not text",
                path=self.path, code="E104",
                fix="decode the source text with errors='replace' (or fix it) before writing",
            ) from None
        self._handle.write(line)
        self.count += 1

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        stack, self._stack, self._handle = self._stack, None, None
        if stack is not None:
            return bool(stack.__exit__(exc_type, exc, tb))
        return False
