"""The input of a batch run cut into shards: planned once by the driver, read by any worker.

Inputs
------
* a JSONL file (``.jsonl`` / ``.ndjson``): medtune documents, one per line (read as strictly as
  ``medtune predict`` reads them), or -- when ``text_column`` or ``id_column`` is given -- flat JSON
  records from which only those two fields are taken;
* a Parquet file (``.parquet``, needs pyarrow): the ``text_column`` (default ``text``) and
  ``id_column`` (default ``id``; strings or integers) of each row;
* a ``.txt`` file: one document (its id is the file's stem);
* a directory: its ``.jsonl`` / ``.ndjson`` / ``.parquet`` files as above, each cut into its own shards,
  and its ``.txt`` files (one document each, sorted by name) in shards of their own (``txt-NNNNN``).
  Hidden files, sub-directories and other suffixes are skipped.

A shard is ``shard_size`` consecutive documents of one source. Its name (``notes-00003``) is the output
file's stem, and its :class:`Shard` record says everything needed to read it without reading what comes
before: a byte offset into a JSONL file, a row range of a Parquet file, a list of ``.txt`` files. The
plan is deterministic (same input, same ``shard_size``: same shards), which is what ``--resume`` needs.

Errors name the file, the line or row and the column; never a value read from the file.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from medtune.document import Document
from medtune.errors import DataFormatError, MissingExtraError, describe, quote_id
from medtune.fileutils import read_text
from medtune.io._common import iter_lines_at
from medtune.io.jsonl import parse_line as parse_jsonl_line

JSONL_SUFFIXES = (".jsonl", ".ndjson")
PARQUET_SUFFIXES = (".parquet",)
TXT_SUFFIXES = (".txt",)
TXT_GROUP = "txt"
E_COLUMN = "E107"  # the readers' code for a missing or unusable column
_INPUT_FIX = ("give a .jsonl, .ndjson, .parquet or .txt file, or a directory of them")


@dataclass(frozen=True)
class Shard:
    """``count`` documents of ``source`` from document ``start`` on, written to ``name`` + suffix."""

    name: str
    kind: str  # "jsonl" (medtune documents), "records" (flat JSON), "parquet", "txt"
    source: str  # the file (the directory for "txt")
    index: int  # 0-based number of this shard within its source
    start: int  # 0-based number of the first document within its source
    count: int
    offset: int = 0  # jsonl/records: byte offset of the first line of the shard
    line: int = 0  # jsonl/records: the number of lines before that line
    files: tuple[str, ...] = ()  # txt: the files' names, in order
    text_column: str = "text"
    id_column: str = "id"

    @property
    def output_format(self) -> str:
        return "parquet" if self.kind == "parquet" else "jsonl"

    @property
    def output_name(self) -> str:
        return f"{self.name}.{self.output_format}"

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Shard":
        data = json.loads(text)
        data["files"] = tuple(data.get("files") or ())
        return cls(**data)


@dataclass
class Plan:
    """Every shard of an input, the input files' sizes and times (to notice a changed input on resume)."""

    input: str
    shards: list[Shard]
    fingerprints: list[tuple[str, int, int]] = field(default_factory=list)
    skipped_files: int = 0

    @property
    def documents(self) -> int:
        return sum(s.count for s in self.shards)

    def digest(self) -> str:
        """A hash of the shards and the input files' sizes and times: equal plans, equal digests."""
        h = hashlib.sha256()
        for shard in self.shards:
            h.update(shard.to_json().encode("utf-8") + b"\n")
        for name, size, mtime in self.fingerprints:
            h.update(json.dumps([name, size, mtime]).encode("utf-8") + b"\n")
        return h.hexdigest()


def plan_shards(path: str | Path, shard_size: int, *, text_column: str | None = None,
                id_column: str | None = None) -> Plan:
    """Cut ``path`` (a file or a directory, see the module docstring) into shards of ``shard_size``."""
    path = Path(path)
    if not path.exists():
        raise DataFormatError("input file or folder not found", path=path, fix="check the --input path")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if not p.name.startswith(".") and p.is_file())
        usable = [p for p in files if _suffix(p) in JSONL_SUFFIXES + PARQUET_SUFFIXES + TXT_SUFFIXES]
        skipped = len(files) - len(usable)
        texts = [p for p in usable if _suffix(p) in TXT_SUFFIXES]
        shards: list[Shard] = []
        for p in usable:
            if _suffix(p) not in TXT_SUFFIXES:
                shards.extend(_plan_file(p, shard_size, text_column, id_column))
        shards.extend(_plan_texts(path, texts, shard_size, TXT_GROUP))
        plan = Plan(str(path.resolve()), shards, _fingerprints(usable, path), skipped)
    else:
        if _suffix(path) in TXT_SUFFIXES:
            shards = _plan_texts(path.parent, [path], shard_size, path.stem)
        else:
            shards = _plan_file(path, shard_size, text_column, id_column)
        plan = Plan(str(path.resolve()), shards, _fingerprints([path], path.parent))
    if not plan.shards:
        raise DataFormatError("no documents in the input", path=path,
                              fix=_INPUT_FIX + " that holds documents")
    names = [s.output_name for s in plan.shards]
    if len(set(names)) != len(names):
        raise DataFormatError("two inputs would write the same output shards (e.g. notes.jsonl and "
                              "notes.ndjson, or a file named txt.jsonl beside .txt notes)", path=path,
                              fix="rename one of the files, or run them one by one into separate --output "
                                  "folders")
    return plan


def _suffix(path: Path) -> str:
    return path.suffix.lower()


def _fingerprints(files: list[Path], base: Path) -> list[tuple[str, int, int]]:
    out = []
    for p in files:
        st = p.stat()
        out.append((p.relative_to(base).as_posix() if p.is_relative_to(base) else p.name, st.st_size,
                    st.st_mtime_ns))
    return out


def _plan_file(path: Path, size: int, text_column: str | None, id_column: str | None) -> list[Shard]:
    suffix = _suffix(path)
    if suffix in JSONL_SUFFIXES:
        flat = text_column is not None or id_column is not None
        return _plan_jsonl(path, size, "records" if flat else "jsonl", text_column or "text", id_column or "id")
    if suffix in PARQUET_SUFFIXES:
        return _plan_parquet(path, size, text_column or "text", id_column or "id")
    raise DataFormatError(f"cannot read a batch input with the suffix {quote_id(path.suffix) if path.suffix else 'none'}",
                          path=path, fix=_INPUT_FIX)


def _name(stem: str, index: int) -> str:
    return f"{stem}-{index:05d}"


# --------------------------------------------------------------------------------------- JSONL
def _lines(path: Path, offset: int = 0, before: int = 0) -> Iterator[tuple[int, str, int]]:
    """``(line_number, line, byte_offset)`` from ``offset`` on, split as ``read_jsonl`` splits them."""
    return iter_lines_at(path, offset, before)


def _plan_jsonl(path: Path, size: int, kind: str, text_column: str, id_column: str) -> list[Shard]:
    shards: list[Shard] = []
    begin: tuple[int, int] | None = None  # (byte offset, lines before) of the current shard
    count = total = 0
    for number, line, position in _lines(path):
        if not line.strip():
            continue
        if begin is None:
            begin = (position, number - 1)
        count += 1
        total += 1
        if count == size:
            shards.append(_jsonl_shard(path, kind, len(shards), total - count, count, begin, text_column, id_column))
            begin, count = None, 0
    if count:
        shards.append(_jsonl_shard(path, kind, len(shards), total - count, count, begin, text_column, id_column))
    return shards


def _jsonl_shard(path: Path, kind: str, index: int, start: int, count: int, begin: Any, text_column: str,
                 id_column: str) -> Shard:
    return Shard(name=_name(path.stem, index), kind=kind, source=str(path.resolve()), index=index, start=start,
                 count=count, offset=begin[0], line=begin[1], text_column=text_column, id_column=id_column)


def _read_jsonl(shard: Shard) -> Iterator[Document]:
    path = Path(shard.source)
    left = shard.count
    for number, line, _ in _lines(path, shard.offset, shard.line):
        if left == 0:
            return
        if not line.strip():
            continue
        left -= 1
        yield parse_jsonl_line(line, path, number) if shard.kind == "jsonl" else _record(shard, path, line, number)
    if left:
        raise DataFormatError(f"the file ended {left} documents before the end of shard {shard.name}", path=path,
                              fix="the input changed since the run started: run it again without --resume "
                                  "into a new --output")


class _NonFinite(ValueError):
    pass


def _non_finite(name: str) -> Any:
    raise _NonFinite(name)


def _strict_json(line: str, path: Path, number: int) -> Any:
    """A JSON value; NaN/Infinity, bad JSON and absurd nesting are E102 errors naming the line only."""
    try:
        return json.loads(line, parse_constant=_non_finite)
    except _NonFinite:
        what = "a non-finite number (NaN or Infinity)"
    except json.JSONDecodeError as err:
        what = f"not valid JSON ({err.msg} at column {err.colno})"
    except ValueError:
        what = "a number too long to read"
    except RecursionError:
        what = "JSON nested too deeply"
    raise DataFormatError(what, path=path, line=number, code="E102",
                          fix="write one strict JSON object per line (a pretty-printed file is not JSONL)")


def _record(shard: Shard, path: Path, line: str, number: int) -> Document:
    data = _strict_json(line, path, number)
    if not isinstance(data, dict):
        raise DataFormatError(f"a JSONL record must be an object, not {describe(data)}", path=path, line=number,
                              code="E103", fix="write one JSON object per line")
    return Document(id=_id_value(data.get(shard.id_column, _MISSING), shard.id_column, path, line=number),
                    text=_text_value(data.get(shard.text_column, _MISSING), shard.text_column, path, line=number))


# ------------------------------------------------------------------------------------- values
_MISSING = object()


def _column_error(message: str, path: Path, *, line: int | None = None, row: int | None = None,
                  fix: str) -> DataFormatError:
    at = f"row {row} (0-based): " if row is not None else ""
    return DataFormatError(at + message, path=path, line=line, code=E_COLUMN, fix=fix)


def _id_value(value: Any, column: str, path: Path, *, line: int | None = None, row: int | None = None) -> str:
    if value is _MISSING:
        raise _column_error(f"no id column {quote_id(column)}", path, line=line, row=row,
                            fix="name the id column with --id-column")
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise _column_error(f"the id column {quote_id(column)} holds {describe(value)}", path, line=line,
                            row=row, fix="ids are strings or integers; give another --id-column")
    return str(value)


def _text_value(value: Any, column: str, path: Path, *, line: int | None = None, row: int | None = None) -> str:
    if value is _MISSING:
        raise _column_error(f"no text column {quote_id(column)}", path, line=line, row=row,
                            fix="name the text column with --text-column")
    if not isinstance(value, str):
        raise _column_error(f"the text column {quote_id(column)} holds {describe(value)}", path,
                            line=line, row=row, fix="every row needs a text string (filter out empty notes, e.g. "
                                                    "WHERE text IS NOT NULL, or give another --text-column)")
    return value


# ------------------------------------------------------------------------------------- Parquet
def pyarrow_parquet() -> Any:
    """``pyarrow.parquet``, or a ``MissingExtraError`` naming the extra to install."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise MissingExtraError("Parquet input and output", "parquet") from None
    return pq


def _plan_parquet(path: Path, size: int, text_column: str, id_column: str) -> list[Shard]:
    pq = pyarrow_parquet()
    try:
        meta = pq.ParquetFile(path).metadata
    except Exception as err:  # pyarrow's errors are ArrowInvalid, OSError, ...: the file is not Parquet
        raise DataFormatError(f"not a readable Parquet file ({type(err).__name__})", path=path,
                              fix="check the file (pyarrow.parquet.read_schema(PATH) should read it)") from None
    names = set(meta.schema.to_arrow_schema().names)
    for column, option in ((text_column, "--text-column"), (id_column, "--id-column")):
        if column not in names:
            raise _column_error(f"no column {quote_id(column)} (the file has {len(names)} columns)", path,
                                fix=f"name the column with {option} (pyarrow.parquet.read_schema(PATH).names "
                                    "lists them)")
    rows = meta.num_rows
    return [Shard(name=_name(path.stem, k), kind="parquet", source=str(path.resolve()), index=k, start=k * size,
                  count=min(size, rows - k * size), text_column=text_column, id_column=id_column)
            for k in range(math.ceil(rows / size))]


def _read_parquet(shard: Shard) -> Iterator[Document]:
    pq = pyarrow_parquet()
    path = Path(shard.source)
    handle = pq.ParquetFile(path)
    meta = handle.metadata
    first, row0 = 0, 0  # the row group holding the shard's first row, and that group's first row
    while first < meta.num_row_groups and row0 + meta.row_group(first).num_rows <= shard.start:
        row0 += meta.row_group(first).num_rows
        first += 1
    groups = list(range(first, meta.num_row_groups))
    row, left = row0, shard.count
    columns = [shard.id_column, shard.text_column] if shard.id_column != shard.text_column else [shard.text_column]
    for batch in handle.iter_batches(batch_size=max(1, min(shard.count, 4096)), row_groups=groups, columns=columns,
                                     use_threads=False):
        data = batch.to_pydict()
        ids, texts = data[shard.id_column], data[shard.text_column]
        for k in range(batch.num_rows):
            if row >= shard.start:
                yield Document(id=_id_value(ids[k], shard.id_column, path, row=row),
                               text=_text_value(texts[k], shard.text_column, path, row=row))
                left -= 1
                if left == 0:
                    return
            row += 1
    if left:
        raise DataFormatError(f"the file ended {left} rows before the end of shard {shard.name}", path=path,
                              fix="the input changed since the run started: run it again into a new --output")


# ---------------------------------------------------------------------------------------- .txt
def _plan_texts(base: Path, files: list[Path], size: int, stem: str) -> list[Shard]:
    return [Shard(name=_name(stem, k), kind="txt", source=str(base.resolve()), index=k, start=k * size,
                  count=len(chunk), files=tuple(p.name for p in chunk))
            for k, chunk in enumerate(files[i:i + size] for i in range(0, len(files), size))]


def _read_texts(shard: Shard) -> Iterator[Document]:
    base = Path(shard.source)
    for name in shard.files:
        yield Document(id=Path(name).stem, text=read_text(base / name))


_READERS = {"jsonl": _read_jsonl, "records": _read_jsonl, "parquet": _read_parquet, "txt": _read_texts}


def read_shard(shard: Shard) -> Iterator[Document]:
    """The documents of ``shard``, streamed, in input order."""
    return _READERS[shard.kind](shard)
