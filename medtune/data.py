"""Resolve the documents a run needs: a named corpus split or files in a known format."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from medtune.document import Document
from medtune.errors import DataFormatError, DatasetNotFoundError

SPLIT_ALIASES = {"dev": "dev", "devel": "dev", "validation": "dev", "valid": "dev", "train": "train", "test": "test"}


def load_named(name: str, split: str) -> list[Document]:
    from medtune import datasets

    return datasets.load(name, split=SPLIT_ALIASES.get(split, split))


def read_path(path: str | Path, format: str | None = None, options: dict[str, Any] | None = None) -> Iterator[Document]:
    from medtune.io import read_documents

    path = Path(path)
    if not path.exists():
        raise DataFormatError("file or folder not found", path=path,
                              fix="check the path; relative paths are resolved from the current directory")
    return read_documents(path, format=format, **(options or {}))


def load_split(data: Any, split: str) -> list[Document] | None:
    """Documents of ``split`` for a ``DataConfig``; None when the config has no such split."""
    split = SPLIT_ALIASES.get(split, split)
    if data.name is not None:
        try:
            docs = load_named(data.name, split)
        except DatasetNotFoundError:
            raise
        except KeyError:
            return None
    else:
        path = getattr(data, split, None)
        if path is None:
            return None
        docs = list(read_path(path, data.format, data.options))
    fraction = {"train": data.empty_train_fraction, "dev": data.empty_dev_fraction}.get(split, 1.0)
    if fraction < 1.0:
        docs = [d for d in docs if not is_empty(d) or keep_by_hash(d.id, fraction)]
    limit = data.max_train_docs if split == "train" else data.max_eval_docs
    return docs[:limit] if limit else docs


def is_empty(doc: Document) -> bool:
    """A document with no annotation at all (no spans, relations or labels)."""
    return not (doc.spans or doc.relations or doc.labels)


def keep_by_hash(key: str, fraction: float) -> bool:
    """A deterministic coin: True for about ``fraction`` of keys, the same keys every run."""
    from medtune.datasets.splits import sha256_hex

    return int(sha256_hex(f"keep:{key}"), 16) % 1_000_000 < fraction * 1_000_000


def split_source(data: Any, split: str) -> str:
    """A human-readable name of where a split comes from (for error messages)."""
    split = SPLIT_ALIASES.get(split, split)
    if data.name is not None:
        return f"{data.name}:{split}"
    return str(getattr(data, split))


def resolve_documents(name_or_path: str, split: str = "test", format: str | None = None,
                      options: dict[str, Any] | None = None) -> tuple[list[Document], str]:
    """For ``medtune evaluate --data``: a named corpus, or a file of documents."""
    path = Path(name_or_path)
    if path.exists():
        return list(read_path(path, format, options)), str(path)
    from medtune import datasets

    names = [spec.name for spec in datasets.list_datasets()]
    if name_or_path in names:
        return load_named(name_or_path, split), f"{name_or_path}:{split}"
    raise DatasetNotFoundError(
        f"'{name_or_path}' is neither a file nor a named corpus",
        fix=f"give a path, or one of: {', '.join(names)}")
