"""Helpers shared by the readers and writers of :mod:`medtune.io`.

Kept private: the conventions they encode (identifier prefixes, duplicate-id renaming) are
documented on the public readers that use them.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any, Callable, Iterator, Literal

from medtune.errors import DataFormatError, describe, quote_id

DuplicatePolicy = Literal["rename", "skip", "error"]

_MESH_RE = re.compile(r"^[DC]\d+$")
_MESH_PREFIXED_RE = re.compile(r"^MESH:([DC]\d+)$")
_OFFSET_RE = re.compile(r"[0-9]{1,18}")
_LINE_END_RE = re.compile(rb"(\r\n|\r|\n)")
_UTF8_FIX = "re-encode the file as UTF-8, e.g. `iconv -f latin1 -t utf-8 IN > OUT`"
E_OPTION, E_OFFSET = "E101", "E105"


def parse_offset(value: str | None) -> int | None:
    """A character offset written as plain ASCII digits (surrounding whitespace allowed), else ``None``.

    Stricter than ``int()``, which would also take ``"1_000"``, ``"+5"``, ``"\u0661"`` and numbers
    with thousands of digits: none of those is an offset any corpus writes.
    """
    if value is None:
        return None
    value = value.strip()
    return int(value) if _OFFSET_RE.fullmatch(value) else None


def iter_lines_universal(path: str | Path, *, keepends: bool = False) -> Iterator[tuple[int, str]]:
    """Like :func:`medtune.fileutils.iter_lines` but a line ends at LF, CRLF or a lone CR (old Mac).

    Streams; line numbers count those lines; with ``keepends`` each line keeps its own ending (what
    the ``csv`` module needs). Non-UTF-8 bytes raise ``DataFormatError`` naming file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError("file not found" if not path.exists() else "not a file", path=path,
                              fix="check the path (relative paths are resolved from the current directory)")
    for number, line, _ in iter_lines_at(path, keepends=keepends):
        yield number, line


def iter_lines_at(path: str | Path, offset: int = 0, before: int = 0, *,
                  keepends: bool = False) -> Iterator[tuple[int, str, int]]:
    """``(line number, line, byte offset of the line)`` from byte ``offset`` on, where ``before`` lines
    precede it; lines split as :func:`iter_lines_universal` splits them, so a reader that starts at a
    line's offset (a shard of a large file) sees the same lines with the same numbers."""
    number, position = before, offset
    with open(path, "rb") as handle:
        handle.seek(offset)
        for raw in handle:  # ends after each LF, so a CRLF pair is never split across two reads
            pieces = _LINE_END_RE.split(raw)
            for k in range(0, len(pieces), 2):
                body = pieces[k]
                end = pieces[k + 1] if k + 1 < len(pieces) else b""
                if not body and not end:
                    continue
                number += 1
                try:
                    line = (body + end if keepends else body).decode("utf-8")
                except UnicodeDecodeError as err:
                    raise DataFormatError(f"not valid UTF-8 (byte {err.start} of the line)", path=path,
                                          line=number, fix=_UTF8_FIX) from None
                if number == 1 and line.startswith("\ufeff"):
                    line = line[1:]
                yield number, line, position
                position += len(body) + len(end)


def check_options(reader: Callable[..., Any], options: dict[str, Any], path: str | Path,
                  fmt: str) -> None:
    """Refuse options ``reader`` does not take, listing those it does (instead of a ``TypeError``)."""
    params = inspect.signature(reader).parameters
    valid = sorted(name for name, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY)
    unknown = [name for name in options if name not in valid]
    if unknown:
        shown = ", ".join(quote_id(name) for name in sorted(unknown))
        raise DataFormatError(
            f"the {fmt} reader has no option {shown}", path=path, field="options", code=E_OPTION,
            fix=f"use only {', '.join(valid) or 'no options'} for format={fmt}",
        )


def check_choice(value: Any, choices: tuple[str, ...], option: str, path: str | Path | None) -> None:
    """A reader option with a fixed set of values gets a coded error, not a ``ValueError``."""
    if not isinstance(value, str) or value not in choices:
        raise DataFormatError(f"{option} must be one of {', '.join(choices)}", path=path, field=option,
                              code=E_OPTION, fix=f"pass {option}=" + " or ".join(f"'{c}'" for c in choices))


def check_int_option(value: Any, option: str, path: str | Path | None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise DataFormatError(f"{option} must be an integer, not {describe(value)}", path=path, field=option,
                              code=E_OPTION, fix=f"pass {option} as a 0-based column index (an int)")


def normalize_id(raw: str) -> str | None:
    """Turn one corpus identifier into medtune's ``PREFIX:ID`` form, or ``None`` for "no id".

    PubTator and BioC files write bare MeSH ids (``D003920``); prefixing them keeps ids from
    different vocabularies (``OMIM:...``) distinguishable. A composite id (``D1+D2``, several
    concepts expressed by one mention) stays one string, each part prefixed.
    """
    value = raw.strip()
    if not value or value == "-1":
        return None
    parts = []
    for part in value.split("+"):
        part = part.strip()
        parts.append(f"MESH:{part}" if _MESH_RE.match(part) else part)
    return "+".join(parts)


def denormalize_id(value: str) -> str:
    """Inverse of :func:`normalize_id` for the formats that write bare MeSH ids."""
    parts = []
    for part in value.split("+"):
        match = _MESH_PREFIXED_RE.match(part)
        parts.append(match.group(1) if match else part)
    return "+".join(parts)


def split_ids(raw: str) -> list[str]:
    """Split a ``|``-separated id field and normalise each entry (``-1`` entries are dropped)."""
    out = []
    for piece in raw.split("|"):
        norm = normalize_id(piece)
        if norm is not None:
            out.append(norm)
    return out


class DuplicateIds:
    """Apply one explicit policy to documents whose id was already seen in the same file.

    ``rename`` (the default of the readers) keeps every document and gives the k-th occurrence
    (k >= 2) the id ``f"{id}-{k}"``, so that ids stay unique and the original id is still visible.
    """

    def __init__(self, policy: DuplicatePolicy, path: str | Path) -> None:
        check_choice(policy, ("rename", "skip", "error"), "duplicates", path)
        self.policy = policy
        self.path = path
        self.seen: dict[str, int] = {}
        self.first: dict[str, str] = {}

    def resolve(self, doc_id: str, line: int | None = None, where: str | None = None) -> str | None:
        """The id to give the document, or ``None`` when it is to be skipped.

        ``where`` names the document in an error ("document 3 (0-based)"); the id is not shown.
        """
        count = self.seen.get(doc_id, 0) + 1
        self.seen[doc_id] = count
        here = where or (f"line {line}" if line is not None else "this document")
        self.first.setdefault(doc_id, here)
        if count == 1:
            return doc_id
        if self.policy == "skip":
            return None
        if self.policy == "error":
            raise DataFormatError(
                f"the id of the document at {here} was already used by the document at "
                f"{self.first[doc_id]}", path=self.path, line=line,
                fix="remove the duplicate, or read with duplicates='rename' or 'skip'",
            )
        return f"{doc_id}-{count}"


def check_one_line(value: str, *, what: str, doc_id: str, path: str | Path) -> None:
    """Line-based formats cannot hold tabs or newlines inside a field; say so instead of corrupting."""
    if any(ch in value for ch in "\t\n\r"):
        raise DataFormatError(
            f"document {quote_id(doc_id)}: {what} contains a tab or a line break, which this line-based "
            "format cannot store", path=path,
            fix="replace tabs and line breaks (e.g. by spaces) before writing, or write JSONL",
        )
