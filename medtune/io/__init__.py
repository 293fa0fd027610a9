"""Readers and writers between corpus formats and :class:`~medtune.document.Document`.

Every reader is a generator (documents stream; errors name the file, the line and the field, never
the text). :func:`read_documents` / :func:`write_documents` dispatch on a format name or, when it is
unambiguous, on the file suffix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from medtune.document import Document
from medtune.errors import DataFormatError, quote_id
from medtune.io._common import E_OPTION, check_options
from medtune.io.bioc import read_bioc
from medtune.io.brat import read_brat, write_brat
from medtune.io.conll import read_conll, spans_from_tags, tags_from_spans, tokenize, write_conll
from medtune.io.jsonl import JsonlWriter, read_jsonl, write_jsonl
from medtune.io.pubtator import read_pubtator, write_pubtator
from medtune.io.squad import read_squad, write_squad, write_squad_predictions
from medtune.io.tabular import read_table

__all__ = [
    "READ_FORMATS", "WRITE_FORMATS", "read_documents", "write_documents", "guess_format",
    "known_input_suffix",
    "read_conll", "write_conll", "spans_from_tags", "tags_from_spans", "tokenize",
    "read_pubtator", "write_pubtator", "read_brat", "write_brat", "read_bioc",
    "read_jsonl", "write_jsonl", "JsonlWriter", "read_table", "read_squad", "write_squad",
    "write_squad_predictions",
]


def _read_csv(path: Path, **options: Any) -> Iterator[Document]:
    options.setdefault("delimiter", ",")
    return _read_table(path, **options)


def _read_tsv(path: Path, **options: Any) -> Iterator[Document]:
    options.setdefault("delimiter", "\t")
    return _read_table(path, **options)


def _read_table(path: Path, **options: Any) -> Iterator[Document]:
    if "text_column" not in options:
        raise DataFormatError("reading a table needs text_column=", path=path, field="text_column",
                              fix="pass text_column (a header name or a 0-based index), and label_column "
                                  "or labels_column for labelled data")
    return read_table(path, **options)


READ_FORMATS: dict[str, Callable[..., Iterator[Document]]] = {
    "conll": read_conll,
    "iob": read_conll,
    "pubtator": read_pubtator,
    "brat": read_brat,
    "bioc": read_bioc,
    "jsonl": read_jsonl,
    "csv": _read_csv,
    "tsv": _read_tsv,
    "table": _read_table,
    "squad": read_squad,
}

WRITE_FORMATS: dict[str, Callable[..., int]] = {
    "jsonl": write_jsonl,
    "brat": write_brat,
    "conll": write_conll,
    "iob": write_conll,
    "pubtator": write_pubtator,
    "squad": write_squad,
    "squad-predictions": write_squad_predictions,
}

_SUFFIXES = {
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".xml": "bioc", ".ann": "brat", ".csv": "csv",
    ".conll": "conll", ".iob": "conll", ".bio": "conll", ".pubtator": "pubtator",
}
# A .json file is read as SQuAD (the only JSON document a reader reads) but is not a known input
# suffix: a missing "x.json" on a command line stays literal text, as before the SQuAD reader.
_FILE_ONLY_SUFFIXES = {".json": "squad"}
# Suffixes some reader reads but whose format is ambiguous: .txt (brat text or PubTator), .tsv (CoNLL
# or a table), .tab (a table, see medtune.io.tabular).
_AMBIGUOUS_SUFFIXES = (".txt", ".tsv", ".tab")

# The keyword options of each format's reader (the csv/tsv/table wrappers take read_table's).
_OPTION_SOURCE: dict[str, Callable[..., Iterator[Document]]] = {
    "csv": read_table, "tsv": read_table, "table": read_table,
}


def known_input_suffix(path: str | Path) -> bool:
    """True when the suffix of ``path`` (any case) is one some reader reads.

    That is ``.jsonl .ndjson .xml .ann .csv .tsv .tab .txt .conll .iob .bio .pubtator``; ``.json``
    is not (an existing ``.json`` file is read as SQuAD). Unlike :func:`guess_format` it does not say
    which format nor look at the file system.
    """
    suffix = Path(str(path)).suffix.lower()
    return suffix in _SUFFIXES or suffix in _AMBIGUOUS_SUFFIXES


def guess_format(path: str | Path) -> str:
    """The format name for ``path`` when its suffix (or being a directory) says it unambiguously.

    ``.tsv`` (CoNLL tags or a table?) and ``.txt`` (PubTator or brat text?) are ambiguous and raise
    an error that lists the ``format=`` values. Suffixes are compared case-insensitively
    (``NOTES.JSONL``, ``X.PubTator.TXT``).
    """
    path = Path(path)
    if path.is_dir():
        return "brat"
    name = path.name.lower()
    if name.endswith(".pubtator.txt") or name.endswith(".pubtator"):
        return "pubtator"
    fmt = _SUFFIXES.get(path.suffix.lower()) or _FILE_ONLY_SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise DataFormatError(
            f"cannot tell the format from the suffix '{path.suffix}'", path=path,
            fix=f"pass format= one of {', '.join(sorted(READ_FORMATS))}",
        )
    return fmt


def read_documents(path: str | Path, format: str | None = None, **options: Any) -> Iterator[Document]:
    """Stream documents from ``path`` in ``format`` (guessed from the suffix when ``None``).

    ``options`` go to the format's reader (e.g. ``tag_column`` for CoNLL, ``text_column`` for tables).
    """
    path = Path(path)
    if format is not None and not isinstance(format, str):
        raise DataFormatError("format= must be a string", path=path, field="format", code=E_OPTION,
                              fix=f"use one of {', '.join(sorted(READ_FORMATS))}")
    fmt = (format or guess_format(path)).lower()
    reader = READ_FORMATS.get(fmt)
    if reader is None:
        raise DataFormatError(f"unknown format {quote_id(format)}", path=path, field="format",
                              code=E_OPTION, fix=f"use one of {', '.join(sorted(READ_FORMATS))}")
    check_options(_OPTION_SOURCE.get(fmt, reader), options, path, fmt)
    return reader(path, **options)


def write_documents(docs: Iterable[Document], path: str | Path, format: str | None = None,
                    **options: Any) -> int:
    """Write documents to ``path`` (a directory for brat) in ``format``; returns the count.

    ``format=None`` is allowed only for a ``.jsonl`` path: other formats lose information, so
    choosing one should be explicit.
    """
    path = Path(path)
    fmt = format.lower() if format is not None else ("jsonl" if path.suffix.lower() in (".jsonl", ".ndjson")
                                                     else None)
    writer = WRITE_FORMATS.get(fmt or "")
    if writer is None:
        raise DataFormatError(f"cannot write format {quote_id(format)}", path=path, field="format",
                              fix=f"use one of {', '.join(sorted(WRITE_FORMATS))}")
    return writer(docs, path, **options)
