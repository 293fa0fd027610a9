"""CSV / TSV files for classification: one document per row.

Columns are named by header (``text_column="sentence"``) or by 0-based index (``text_column=0``, the
only way for header-less files). Quoting follows the ``csv`` module (``"a ""quoted"" field"``), which
is what pandas and most tools write; pass ``quoting=False`` for TSV files whose fields start with
a lone quote character.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterator, Sequence

from medtune.document import Document
from medtune.errors import DataFormatError
from medtune.fileutils import iter_lines

__all__ = ["read_table"]

Column = str | int


def _guess_delimiter(path: Path, delimiter: str | None) -> str:
    if delimiter is not None:
        return delimiter
    suffix = path.suffix.lower()
    if suffix in (".tsv", ".tab"):
        return "\t"
    if suffix == ".csv":
        return ","
    raise DataFormatError("cannot tell the delimiter from the file suffix", path=path,
                          fix="pass delimiter=',' or delimiter='\\t' (or name the file .csv/.tsv)")


class _Columns:
    """Resolves column names or indices against the header, with errors that list what exists."""

    def __init__(self, path: Path, header: Sequence[str] | None) -> None:
        self.path = path
        self.header = list(header) if header is not None else None

    def index(self, column: Column, option: str) -> int:
        if isinstance(column, int) and not isinstance(column, bool):
            if self.header is not None and not -len(self.header) <= column < len(self.header):
                self._missing(column, option)
            return column
        if self.header is None:
            raise DataFormatError(
                f"{option}={column!r} is a name, but the file is read without a header", path=self.path,
                field=option, fix="give columns as 0-based integers, or read with has_header=True",
            )
        try:
            return self.header.index(str(column))
        except ValueError:
            self._missing(column, option)
            raise  # unreachable: _missing raises

    def _missing(self, column: Column, option: str) -> None:
        available = ", ".join(f"{i}:{_short(name)}" for i, name in enumerate(self.header or []))
        raise DataFormatError(
            f"column {column!r} ({option}) not found; the columns are: {available}", path=self.path,
            field=option, fix=f"pass {option} as one of the column names (or 0-based indices) listed; "
                              "if the first row is data, not a header, read with has_header=False",
        )


def _short(name: str) -> str:
    """A header cell for an error message; a long one is probably a data row, so it is not shown."""
    if len(name) > 40:
        return f"<{len(name)} characters, not shown>"
    return repr(name)


def read_table(path: str | Path, *, text_column: Column, text_pair_column: Column | None = None,
               label_column: Column | None = None, labels_column: Column | None = None,
               label_separator: str = ",", id_column: Column | None = None, delimiter: str | None = None,
               has_header: bool = True, quoting: bool = True) -> Iterator[Document]:
    """Stream one document per row of a CSV/TSV file.

    ``label_column`` gives one label per row (it may not be empty); ``labels_column`` a multi-label
    list split on ``label_separator`` (empty means no label). Ids come from ``id_column`` or are
    ``f"{stem}-{n}"``, ``n`` the 0-based data row. The delimiter follows the suffix (``.tsv`` -> tab,
    ``.csv`` -> comma) unless given. Blank lines are skipped.
    """
    path = Path(path)
    if not path.exists():
        raise DataFormatError("file not found", path=path, fix="check the path")
    sep = _guess_delimiter(path, delimiter)
    reader = csv.reader((line for _, line in iter_lines(path, keepends=True)), delimiter=sep, quoting=csv.QUOTE_MINIMAL if quoting else csv.QUOTE_NONE)
    header = next(reader, None) if has_header else None
    if has_header and header is None:
        return
    columns = _Columns(path, header)
    wanted = {"text_column": text_column, "text_pair_column": text_pair_column, "label_column": label_column,
              "labels_column": labels_column, "id_column": id_column}
    index = {name: columns.index(col, name) for name, col in wanted.items() if col is not None}
    row_number = 0
    last_line = reader.line_num
    for row in _rows(reader, path):
        first_line, last_line = last_line + 1, reader.line_num
        if not row:
            continue
        yield _document(row, index, path, first_line, row_number, label_separator)
        row_number += 1


def _rows(reader: Iterator[list[str]], path: Path) -> Iterator[list[str]]:
    try:
        yield from reader
    except csv.Error as err:
        line = getattr(reader, "line_num", None)
        raise DataFormatError(f"malformed CSV ({type(err).__name__})", path=path, line=line,
                              fix="check the quoting of this row, or read with quoting=False") from None


def _document(row: list[str], index: dict[str, int], path: Path, line: int, n: int,
              label_separator: str) -> Document:
    def cell(name: str) -> str:
        i = index[name]
        if not -len(row) <= i < len(row):
            raise DataFormatError(
                f"the row has {len(row)} column(s); {name} is column {i}", path=path, line=line,
                field=name, fix="give every row the same columns (check the delimiter and quoting)",
            )
        return row[i]

    doc = Document(id=cell("id_column").strip() if "id_column" in index else f"{path.stem}-{n}",
                   text=cell("text_column"))
    if "text_pair_column" in index:
        doc.text_pair = cell("text_pair_column")
    if "label_column" in index:
        label = cell("label_column").strip()
        if not label:
            raise DataFormatError("empty label", path=path, line=line, field="label_column",
                                  fix="give every row a label, or read without label_column")
        doc.labels.append(label)
    if "labels_column" in index:
        doc.labels += [x.strip() for x in cell("labels_column").split(label_separator) if x.strip()]
    return doc
