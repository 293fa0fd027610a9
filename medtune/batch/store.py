"""The output folder of a batch run: one file per input shard, a manifest, and nothing else.

* ``_medtune_batch.json`` (the manifest) is written first: the input, the model, the shard size, the
  columns and a digest of the shard plan (with the input files' sizes and times). ``--resume`` refuses
  to continue a run whose manifest differs, so outputs of two different runs never mix.
* ``NAME.jsonl`` / ``NAME.parquet``: one per input shard, written atomically
  (:mod:`medtune.fileutils`), so a shard file that exists is complete; that is how ``--resume`` knows
  what is done. A run killed outright leaves a hidden temporary (``.NAME.jsonl.HOST-PID.XXXX.tmp``),
  which may hold note text: every run first removes those of dead processes.

Parquet shards have the columns ``id``, ``text``, ``labels`` (list of strings), ``spans`` (list of
``{start, end, label, score}``, for queries) and ``annotations`` (the rest of the medtune document as
JSON, lossless: :func:`read_output_shard` rebuilds the same documents a JSONL shard holds).
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from medtune.batch.shards import Plan, pyarrow_parquet
from medtune.document import Document
from medtune.errors import ConfigError, MedtuneError, MissingExtraError
from medtune.fileutils import atomic_write, remove_stale_temporaries
from medtune.io.jsonl import JsonlWriter, read_jsonl

logger = logging.getLogger(__name__)

MANIFEST = "_medtune_batch.json"
MANIFEST_VERSION = 1
# what must be equal for --resume to continue a run (the rest, e.g. "finished", may change)
RESUME_KEYS = ("input", "model", "shard_size", "text_column", "id_column", "mode", "plan")
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.(?P<host>[A-Za-z0-9-]+)-(?P<pid>\d+)\.[A-Za-z0-9_]+\.tmp$")


class BatchError(MedtuneError):
    """A batch output folder cannot be used as asked (another run's outputs, a changed input), or a shard
    failed on a worker."""

    code = "E700"


class ShardFailed(MedtuneError):
    """A shard failed on a Ray worker: the worker's own coded error (its code kept), or an internal error."""

    def __init__(self, code: str, message: str, fix: str | None) -> None:
        self.code = code
        super().__init__(message, fix=fix)


def manifest_for(plan: Plan, *, model: str, shard_size: int, text_column: str | None, id_column: str | None,
                 mode: str | None) -> dict[str, Any]:
    return {"format": "medtune-batch", "version": MANIFEST_VERSION, "input": plan.input,
            "model": str(Path(model).resolve()), "shard_size": shard_size, "text_column": text_column,
            "id_column": id_column, "mode": mode, "plan": plan.digest(), "shards": len(plan.shards),
            "documents": plan.documents, "finished": False}


def remove_dead_temporaries(out: Path) -> int:
    """Remove the temporaries that dead processes of this host left in ``out`` (partial shards)."""
    removed = 0
    try:
        names = [entry.name for entry in os.scandir(out)]
    except OSError:
        return 0
    for name in names:
        match = _TEMPORARY.match(name)
        if match:
            removed += remove_stale_temporaries(out / match.group("name"))
    if removed:
        logger.info("removed %d partial shard file(s) of a run that was killed", removed)
    return removed


def read_manifest(out: Path) -> dict[str, Any] | None:
    path = out / MANIFEST
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = None
    if not isinstance(data, dict) or data.get("format") != "medtune-batch":
        raise BatchError(f"{path} is not a medtune batch manifest", fix="choose another --output folder")
    return data


def prepare_output(out: Path, manifest: dict[str, Any], *, resume: bool) -> None:
    """Refuse an output folder this run cannot use, tidy a killed run's temporaries, write the manifest."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--output {out} is a file, and a folder of shards is written there",
                          fix="give a folder path for --output (it is created when missing)")
    if out.is_dir():
        remove_dead_temporaries(out)
    previous = read_manifest(out) if out.is_dir() else None
    if previous is not None:
        if not resume:
            raise BatchError(f"{out} holds the outputs of a batch run", fix="pass --resume to finish it, or choose "
                                                                             "another --output folder")
        changed = [key for key in RESUME_KEYS if previous.get(key) != manifest.get(key)]
        if changed:
            what = ", ".join("the input files" if k == "plan" else k for k in changed)
            raise BatchError(f"--resume: {out} holds a run with another {what}",
                             fix="resume with the same model, input and options as the first run, or run "
                                 "again into a new --output folder")
    elif out.is_dir() and any(not name.startswith(".") for name in os.listdir(out)):
        raise BatchError(f"{out} is not empty and holds no batch run",
                         fix="give a new or empty folder for --output")
    elif resume:
        logger.warning("--resume: %s holds no batch run; starting from the first shard", out)
    write_manifest(out, manifest)


def write_manifest(out: Path, manifest: dict[str, Any]) -> None:
    with atomic_write(out / MANIFEST) as handle:
        json.dump(manifest, handle, indent=2)
        handle.write("\n")


def finish_manifest(out: Path, manifest: dict[str, Any]) -> None:
    write_manifest(out, {**manifest, "finished": True})


def shard_done(out: Path, output_name: str) -> bool:
    return (out / output_name).is_file()


# --------------------------------------------------------------------------------- writing
def write_shard(docs: Iterable[Document], path: Path, fmt: str, on_document: Callable[[], None] | None = None,
                *, expected: int | None = None) -> int:
    """Write ``docs`` to ``path`` atomically as ``fmt`` (jsonl or parquet); returns the count. With
    ``expected``, any other count is an error and nothing is written."""
    if fmt == "parquet":
        collected = []
        for doc in docs:
            doc.validate(source=path.name)
            collected.append(doc)
            if on_document is not None:
                on_document()
        _check_count(len(collected), expected, path)
        table = _parquet_table(collected)
        pq = pyarrow_parquet()
        with atomic_write(path, "wb") as handle:
            pq.write_table(table, handle)
        return len(collected)
    with JsonlWriter(path) as writer:
        for doc in docs:
            writer.write(doc)
            if on_document is not None:
                on_document()
        _check_count(writer.count, expected, path)
    return writer.count


def _check_count(count: int, expected: int | None, path: Path) -> None:
    if expected is not None and count != expected:
        raise BatchError(f"{count} documents came out for {path.name}, whose shard holds {expected}",
                         fix="a component dropped or added documents: report it")


def _pyarrow() -> Any:
    try:
        import pyarrow
    except ImportError:
        raise MissingExtraError("Parquet output", "parquet") from None
    return pyarrow


def _parquet_table(docs: list[Document]) -> Any:
    pa = _pyarrow()
    span_type = pa.struct([("start", pa.int64()), ("end", pa.int64()), ("label", pa.string()),
                           ("score", pa.float64())])
    schema = pa.schema([("id", pa.string()), ("text", pa.string()), ("labels", pa.list_(pa.string())),
                        ("spans", pa.list_(span_type)), ("annotations", pa.string())])
    columns: dict[str, list[Any]] = {name: [] for name in schema.names}
    for doc in docs:
        data = doc.to_dict()
        columns["id"].append(data.pop("id"))
        columns["text"].append(data.pop("text"))
        columns["labels"].append(list(doc.labels))
        columns["spans"].append([{"start": s.start, "end": s.end, "label": s.label, "score": s.score}
                                 for s in doc.spans])
        columns["annotations"].append(json.dumps(data, ensure_ascii=False))
    return pa.table(columns, schema=schema)


def read_output_shard(path: str | Path) -> Iterator[Document]:
    """The documents of an output shard (JSONL or Parquet), as they were written."""
    path = Path(path)
    if path.suffix == ".parquet":
        table = pyarrow_parquet().read_table(path, columns=["id", "text", "annotations"])
        for doc_id, text, rest in zip(*(table.column(c).to_pylist() for c in ("id", "text", "annotations"))):
            yield Document.from_dict({"id": doc_id, "text": text, **json.loads(rest)})
        return
    yield from read_jsonl(path)
