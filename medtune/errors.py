"""Errors users can act on.

Every error says where the problem is (file, line, field or document id), what is wrong and how to
fix it, as ``[E1xx] path:line, field 'spans[0].start': what is wrong. Fix: what to do``.

What an error may quote
-----------------------
Documents may hold PHI, and a malformed file may put note text in any column, so one rule holds for
every message, whatever produced it:

* Always allowed: file paths, line numbers, column indices, field names medtune defines
  (``spans[3].start``), lengths, counts, offsets that were parsed as integers, value *types*
  (:func:`describe`) and medtune's own option names and values.
* Allowed only after a strict check. A reader quotes a reference read from a file (``T12``,
  ``R3``, a BioC annotation id ``0``) only when :func:`quote_ref` accepts it (at most three letters,
  then digits), and names documents by their line or position, not by an id read from the file:
  an id-shaped token such as ``SMITH-4711`` may just as well be note text that slid into the id
  column. Ids of documents in memory (built by the caller's own code) and medtune's own names
  (schema fields, options) are quoted when :func:`quote_id` accepts them (one short token of
  letters, digits and ``_.:/+#-``). Anything else is described, never shown (both helpers do that).
* Never: cell contents, text lines, mention texts, attribute values, header cells of a file that may
  not have a header, or any other free-form value -- not even shortened.

Codes
-----
``DataFormatError`` takes ``code=``, so that one class carries the finer codes of the readers (all
listed in ``docs/errors.md``): E100 data file of the wrong shape (default), E101 unknown or invalid
reader option, E102 a JSONL line that is not strict JSON (NaN/Infinity, huge numbers, deep nesting,
duplicate keys), E103 a JSONL field of the wrong type or unknown, E104 text that cannot be encoded as
UTF-8 (lone surrogates), E105 an offset that is not a plain non-negative integer, E106 invalid
``metadata.tokens``, E107 a table column that is missing or ambiguous, E110 an inconsistent document.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/+#-]{0,63}")
_REF_RE = re.compile(r"[A-Za-z]{0,3}[0-9]{1,9}")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def describe(value: Any) -> str:
    """What ``value`` is, without showing it: ``"a string of 42 characters"``, ``"an integer"``, ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number with a fraction" if math.isfinite(value) else "a non-finite number"
    if isinstance(value, str):
        return f"a string of {_plural(len(value), 'character')}"
    if isinstance(value, (bytes, bytearray)):
        return f"{_plural(len(value), 'byte')} of binary data"
    if isinstance(value, (list, tuple)):
        return f"a list of {_plural(len(value), 'item')}"
    if isinstance(value, dict):
        return f"an object with {_plural(len(value), 'key')}"
    return f"a value of type {type(value).__name__}"


def is_id_token(value: Any) -> bool:
    """True when ``value`` may be quoted in an error: one short id-shaped token (see the module doc)."""
    return isinstance(value, str) and _ID_RE.fullmatch(value) is not None


def quote_id(value: Any) -> str:
    """``'T12'`` for an id-shaped token, else a description in angle brackets (the value not shown)."""
    if is_id_token(value):
        return f"'{value}'"
    return f"<{describe(value)}, not shown>"


def quote_ref(value: Any) -> str:
    """``'T12'`` for a reference read from a file (up to three letters, then digits), else described."""
    if isinstance(value, str) and _REF_RE.fullmatch(value):
        return f"'{value}'"
    return f"<{describe(value)}, not shown>"


def name_document(position: str, doc_id: Any = None) -> str:
    """How a reader names a document: ``"document 3 (0-based, id '20722491')"``.

    ``position`` ("line 7", "3 (0-based)") always; the id read from the file only when
    :func:`quote_ref` would show it (a PMID, ``d1``), never an id that could be note text.
    """
    if isinstance(doc_id, str) and _REF_RE.fullmatch(doc_id):
        return f"document {position} (id '{doc_id}')"
    return f"document {position}"


class MedtuneError(Exception):
    """Base class of every error medtune raises on purpose."""

    code = "E000"

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        self.message = message
        self.fix = fix
        full = f"[{self.code}] {message}"
        if fix:
            full += f" Fix: {fix}"
        super().__init__(full)


class DataFormatError(MedtuneError):
    """A data file (or a document in memory) does not have the shape its format requires."""

    code = "E100"

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
        fix: str | None = None,
        code: str | None = None,
    ) -> None:
        if code is not None:
            self.code = code
        self.detail = message
        self.path = str(path) if path is not None else None
        self.line = line
        self.field = field
        where = []
        if self.path is not None:
            where.append(self.path if line is None else f"{self.path}:{line}")
        elif line is not None:
            where.append(f"line {line}")
        if field is not None:
            where.append(f"field '{field}'")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message, fix=fix)


    def located(self, *, path: str | Path | None = None, line: int | None = None,
                field: str | None = None) -> "DataFormatError":
        """The same error (class, code, message, fix) with the location filled in where given."""
        return type(self)(self.detail, path=path if path is not None else self.path,
                          line=line if line is not None else self.line,
                          field=field if field is not None else self.field, fix=self.fix, code=self.code)


class DocumentError(DataFormatError):
    """A document is inconsistent (span outside the text, relation to an unknown span, ...)."""

    code = "E110"


class DatasetNotFoundError(MedtuneError):
    """A named corpus is neither in the data directory nor downloadable."""

    code = "E200"


class ConfigError(MedtuneError):
    """A configuration file or override is invalid."""

    code = "E300"


class ModelError(MedtuneError):
    """A model directory is missing, incomplete or made for another task."""

    code = "E400"


class MissingExtraError(MedtuneError):
    """An optional feature needs an extra that is not installed."""

    code = "E500"

    def __init__(self, feature: str, extra: str) -> None:
        super().__init__(
            f"{feature} needs the optional dependencies of medtune[{extra}], which are not installed.",
            fix=f"pip install 'medtune[{extra}]' -c constraints.txt",
        )


class CommandLineError(MedtuneError):
    """The command line cannot be parsed: an unknown option, a missing argument, a value of the wrong type."""

    code = "E010"


class Interrupted(MedtuneError):
    """The command was stopped by SIGINT or SIGTERM; nothing was written to its outputs."""

    code = "E020"


class InternalError(MedtuneError):
    """A bug: an exception medtune did not raise on purpose (its message is never shown)."""

    code = "E900"
