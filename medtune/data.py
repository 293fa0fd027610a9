"""Resolve the documents a run needs: a named corpus split or files in a known format."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from medtune import datasets
from medtune.config import DataConfig, read_yaml_mapping
from medtune.datasets.splits import sha256_hex
from medtune.document import Document
from medtune.errors import ConfigError, DataFormatError, DatasetNotFoundError, quote_id
from medtune.io import known_input_suffix, read_documents

SPLIT_ALIASES = {"dev": "dev", "devel": "dev", "validation": "dev", "valid": "dev", "train": "train", "test": "test"}


def load_named(name: str, split: str) -> list[Document]:

    return datasets.load(name, split=SPLIT_ALIASES.get(split, split))


def read_path(path: str | Path, format: str | None = None, options: dict[str, Any] | None = None) -> Iterator[Document]:

    path = Path(path)
    if not path.exists():
        raise DataFormatError("file or folder not found", path=path,
                              fix="check the path; relative paths are resolved from the current directory")
    return read_documents(path, format=format, **(options or {}))


def load_split(data: Any, split: str) -> list[Document] | None:
    """Documents of ``split`` for a ``DataConfig``; None when the config has no such split."""
    split = SPLIT_ALIASES.get(split, split)
    if data.name is not None:
        if split not in datasets.get_spec(data.name).splits:  # e.g. a corpus for intermediate training has no test split
            return None
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

    return int(sha256_hex(f"keep:{key}"), 16) % 1_000_000 < fraction * 1_000_000


def split_source(data: Any, split: str) -> str:
    """A human-readable name of where a split comes from (for error messages)."""
    split = SPLIT_ALIASES.get(split, split)
    if data.name is not None:
        return f"{data.name}:{split}"
    return str(getattr(data, split))


def _looks_like_path(name: str) -> bool:

    return known_input_suffix(name) or "/" in name or "\\" in name or name.startswith(("~", "."))


def resolve_documents(name_or_path: str, split: str = "test", format: str | None = None,
                      options: dict[str, Any] | None = None) -> tuple[list[Document], str]:
    """For ``medtune evaluate --data``: a named corpus, or a file of documents.

    ``options`` go to the file's reader (``text_column``, ``tag_column``, ``delimiter``, ...). No
    documents at all is an error: a metric over nothing is not a result.
    """
    path = Path(name_or_path)
    if path.exists():
        docs = list(read_path(path, format, options))
        source = str(path)
    else:

        names = [spec.name for spec in datasets.list_datasets()]
        if name_or_path in names:
            docs, source = load_named(name_or_path, split), f"{name_or_path}:{split}"
        elif _looks_like_path(name_or_path):
            raise DataFormatError("file or folder not found", path=path,
                                  fix="check the path; relative paths are resolved from the current directory")
        else:
            raise DatasetNotFoundError(
                f"'{name_or_path}' is neither a file nor a named corpus",
                fix=f"give a path, or one of: {', '.join(names)}")
    if not docs:
        raise DataFormatError(f"no documents in {source}",
                              fix="check the file and its format (--format, reader options); an empty file "
                                  "cannot be evaluated or learnt from")
    return docs, source


_DATA_SECTION_FIX = ("write a YAML file with a `data:` mapping, e.g. `data: {format: tsv, options: "
                     "{text_column: text, label_column: label}}` (a training config works too)")


def read_data_section(path: str | Path) -> dict[str, Any]:
    """The ``data:`` section of a YAML file (a data config, or a whole training config), checked.

    Returns the keys of :class:`medtune.config.DataConfig` that are set; only their types are
    checked here (which ones a command needs is up to it).
    """

    raw = read_yaml_mapping(path, "data config", _DATA_SECTION_FIX)
    section = raw.get("data")
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: no `data:` mapping" if section is None
                          else f"{path}: `data:` must be a mapping, not a {type(section).__name__}",
                          fix=_DATA_SECTION_FIX)
    valid = list(DataConfig.model_fields)
    unknown = sorted(str(k) for k in section if k not in valid)
    if unknown:

        raise ConfigError(f"{path}: unknown key(s) in data: {', '.join(quote_id(k) for k in unknown)}",
                          fix=f"valid keys of data: {', '.join(valid)}")
    for key in ("name", "train", "dev", "test", "format"):
        value = section.get(key)
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"{path}: data.{key} must be a string, not a {type(value).__name__}",
                              fix=_DATA_SECTION_FIX)
    options = section.get("options")
    if options is not None and not isinstance(options, dict):
        raise ConfigError(f"{path}: data.options must be a mapping, not a {type(options).__name__}",
                          fix=_DATA_SECTION_FIX)
    return {k: v for k, v in section.items() if v is not None}
