"""Helpers shared by the readers and writers of :mod:`medtune.io`.

Kept private: the conventions they encode (identifier prefixes, duplicate-id renaming) are
documented on the public readers that use them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from medtune.errors import DataFormatError

DuplicatePolicy = Literal["rename", "skip", "error"]

_MESH_RE = re.compile(r"^[DC]\d+$")
_MESH_PREFIXED_RE = re.compile(r"^MESH:([DC]\d+)$")


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
        if policy not in ("rename", "skip", "error"):
            raise ValueError(f"duplicates must be 'rename', 'skip' or 'error', not {policy!r}")
        self.policy = policy
        self.path = path
        self.seen: dict[str, int] = {}

    def resolve(self, doc_id: str, line: int | None = None) -> str | None:
        """The id to give the document, or ``None`` when it is to be skipped."""
        count = self.seen.get(doc_id, 0) + 1
        self.seen[doc_id] = count
        if count == 1:
            return doc_id
        if self.policy == "skip":
            return None
        if self.policy == "error":
            raise DataFormatError(
                f"document id '{doc_id}' occurs more than once", path=self.path, line=line,
                fix="remove the duplicate, or read with duplicates='rename' or 'skip'",
            )
        return f"{doc_id}-{count}"


def check_one_line(value: str, *, what: str, doc_id: str, path: str | Path) -> None:
    """Line-based formats cannot hold tabs or newlines inside a field; say so instead of corrupting."""
    if any(ch in value for ch in "\t\n\r"):
        raise DataFormatError(
            f"document '{doc_id}': {what} contains a tab or a line break, which this line-based "
            "format cannot store", path=path,
            fix="replace tabs and line breaks (e.g. by spaces) before writing, or write JSONL",
        )
