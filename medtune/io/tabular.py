"""CSV / TSV files for classification: one document per row.

Columns are named by header (``text_column="sentence"``) or by 0-based index (``text_column=0``, the
only way for header-less files). Quoting follows the ``csv`` module (``"a ""quoted"" field"``), which
is what pandas and most tools write; pass ``quoting=False`` for TSV files whose fields start with
a lone quote character.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Iterator, Sequence

from medtune.document import Document
from medtune.errors import DataFormatError, describe, quote_id
from medtune.io._common import E_OPTION, iter_lines_universal

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


E_COLUMN = "E107"
_HEADER_FIX = "look at the first line (e.g. `head -n 1 FILE`); "


class _Columns:
    """Resolves column names or indices against the header.

    Errors give the number of columns and their indices, never the header cells: with
    ``has_header=True`` on a file without a header, the "header" is the first row of note text.
    """

    def __init__(self, path: Path, header: Sequence[str] | None) -> None:
        self.path = path
        self.header = list(header) if header is not None else None

    def index(self, column: Column, option: str) -> int:
        if isinstance(column, int) and not isinstance(column, bool):
            if self.header is not None and not -len(self.header) <= column < len(self.header):
                self._missing(column, option)
            return column
        if not isinstance(column, str):
            raise DataFormatError(f"{option} must be a column name or a 0-based index, not "
                                  f"{describe(column)}", path=self.path, field=option, code=E_OPTION,
                                  fix=f"pass {option} as a string (header name) or an int")
        if self.header is None:
            raise DataFormatError(
                f"{option}={quote_id(column)} is a name, but the file is read without a header",
                path=self.path, field=option, code=E_COLUMN,
                fix="give columns as 0-based integers, or read with has_header=True",
            )
        found = [i for i, name in enumerate(self.header) if name == column]
        if not found:
            self._missing(column, option)
        if len(found) > 1:
            raise DataFormatError(
                f"{len(found)} header columns (indices {', '.join(map(str, found))}) are named like {option}",
                path=self.path, line=1, field=option, code=E_COLUMN,
                fix="rename the duplicate header cells, or pass the column as a 0-based index",
            )
        return found[0]

    def _missing(self, column: Column, option: str) -> None:
        n = len(self.header or [])
        shown = column if isinstance(column, int) else quote_id(column)
        raise DataFormatError(
            f"column {shown} ({option}) not found; the header row has {n} column(s), indices 0 to {n - 1}",
            path=self.path, line=1, field=option, code=E_COLUMN,
            fix=_HEADER_FIX + f"pass {option} as one of its names or a 0-based index; if the first row "
                              "is data, not a header, read with has_header=False",
        )


def read_table(path: str | Path, *, text_column: Column, text_pair_column: Column | None = None,
               label_column: Column | None = None, labels_column: Column | None = None,
               label_separator: str = ",", id_column: Column | None = None, delimiter: str | None = None,
               has_header: bool = True, quoting: bool = True) -> Iterator[Document]:
    """Stream one document per row of a CSV/TSV file.

    ``label_column`` gives one label per row (it may not be empty); ``labels_column`` a multi-label
    list split on ``label_separator`` (empty means no label). Ids come from ``id_column`` or are
    ``f"{stem}-{n}"``, ``n`` the 0-based data row. The delimiter follows the suffix (``.tsv`` -> tab,
    ``.csv`` -> comma) unless given. Blank lines are skipped; lines end at LF, CRLF or CR. Quoting is
    strict: a quote that is never closed (which would swallow every following row into one cell) or
    text after a closing quote is an error naming the line where the row starts.
    """
    path = Path(path)
    if not path.exists():
        raise DataFormatError("file not found", path=path, fix="check the path")
    sep = _guess_delimiter(path, delimiter)
    _check_options(path, sep, label_separator)
    lines = (line for _, line in iter_lines_universal(path, keepends=True))
    reader = csv.reader(lines, delimiter=sep, strict=True,
                        quoting=csv.QUOTE_MINIMAL if quoting else csv.QUOTE_NONE)
    header = next(_rows(reader, path), None) if has_header else None
    if has_header and header is None:
        return
    columns = _Columns(path, header)
    wanted = {"text_column": text_column, "text_pair_column": text_pair_column, "label_column": label_column,
              "labels_column": labels_column, "id_column": id_column}
    index = {name: columns.index(col, name) for name, col in wanted.items() if col is not None}
    row_number = 0
    last_line = reader.line_num
    width = len(header) if header is not None else None
    for row in _rows(reader, path):
        first_line, last_line = last_line + 1, reader.line_num
        if not row:
            continue
        if width is None:
            width = len(row)
        elif len(row) != width:  # an unquoted delimiter inside a cell shifts every column after it
            raise DataFormatError(
                f"the row has {len(row)} column(s), but the {'header' if header is not None else 'first row'} "
                f"has {width}", path=path, line=first_line,
                fix="quote cells that contain the delimiter (or a line break), or check the delimiter")
        yield _document(row, index, path, first_line, row_number, label_separator)
        row_number += 1


def _check_options(path: Path, sep: object, label_separator: object) -> None:
    if not isinstance(sep, str) or len(sep) != 1 or sep in "\r\n\"":
        raise DataFormatError("delimiter must be one character (not a quote or a line break)", path=path,
                              field="delimiter", code=E_OPTION, fix="pass delimiter=',' or delimiter='\\t'")
    if not isinstance(label_separator, str) or not label_separator:
        raise DataFormatError("label_separator must be a non-empty string", path=path,
                              field="label_separator", code=E_OPTION, fix="pass label_separator=','")


def _rows(reader: Any, path: Path) -> Iterator[list[str]]:
    """The rows of ``reader``; a csv error names the line where the broken row starts."""
    while True:
        first = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            text = str(err)
            if "field larger than field limit" in text:
                what, fix = (f"a cell longer than {csv.field_size_limit()} characters (the csv module's "
                             "limit)", "split or shorten the cell")
            elif "unexpected end of data" in text:
                what, fix = ("a quoted cell is not closed before the end of the file",
                             "close the quote (a quote inside a quoted cell is written twice: \"\"), or "
                             "read with quoting=False")
            else:
                what, fix = ("malformed CSV (a quote inside a quoted cell that is not doubled, or text "
                             "after a closing quote)", "write a quote inside a quoted cell twice (\"\"), or "
                                                       "read with quoting=False")
            raise DataFormatError(what, path=path, line=first, fix=fix) from None
        yield row


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
