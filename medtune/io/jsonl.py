"""medtune's own lossless format: one ``Document.to_dict()`` JSON object per line.

Reading validates every document and names the file and line of the first fault; writing is
atomic and streaming (documents are written one by one into a temporary file that replaces the
target only when everything was written).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Iterable, Iterator

from medtune.document import Document
from medtune.errors import DataFormatError, DocumentError
from medtune.fileutils import atomic_write, iter_lines

__all__ = ["read_jsonl", "write_jsonl", "JsonlWriter"]


def read_jsonl(path: str | Path) -> Iterator[Document]:
    """Stream the documents of a JSONL file; blank lines are skipped."""
    path = Path(path)
    for number, line in iter_lines(path):
        if not line.strip():
            continue
        yield _parse_line(line, path, number)


def _parse_line(line: str, path: Path, number: int) -> Document:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as err:
        raise DataFormatError(
            f"not valid JSON ({err.msg} at column {err.colno})", path=path, line=number,
            fix="write one JSON object per line (a pretty-printed file is not JSONL)",
        ) from None
    if not isinstance(data, dict):
        raise DataFormatError(f"the line holds a JSON {type(data).__name__}, not an object", path=path,
                              line=number, fix="write one document object per line")
    try:
        doc = Document.from_dict(data)
    except KeyError as err:
        raise DataFormatError(f"missing required field {err.args[0]!r}", path=path, line=number,
                              field=str(err.args[0]),
                              fix="every document needs 'id' and 'text'; every span 'start', 'end', "
                                  "'label'; every relation 'label', 'head', 'tail'") from None
    except (TypeError, ValueError, AttributeError) as err:
        raise DataFormatError(f"a field has the wrong type ({type(err).__name__})", path=path, line=number,
                              fix="compare the line with Document.to_dict(): offsets are integers, "
                                  "lists are JSON arrays, attributes and metadata are objects") from None
    try:
        return doc.validate(source=str(path))
    except DocumentError as err:
        raise DocumentError(err.message, path=path, line=number, field=err.field, fix=err.fix) from None


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
        self._handle.write(_encode(doc))
        self.count += 1

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        stack, self._stack, self._handle = self._stack, None, None
        if stack is not None:
            return bool(stack.__exit__(exc_type, exc, tb))
        return False
