"""Building a linker from a strict YAML config: ``medtune link build CONFIG.yaml --output DIR``.

::

    vocabulary: mesh-disease          # mesh-disease | mesh-chemical | mesh-all | a TSV (id, name, synonyms)
    labels: [Disease]                 # span labels the linker normalises
    train: [bc5cdr-disease]           # mentions -> ids to learn from: named corpora's train splits, or files
    encoder: default                  # dense retrieval encoder (default: all-MiniLM-L6-v2)
    components: null                  # a subset of medtune.linking.COMPONENTS (null = all)
    settings: {}                      # Linker keyword arguments (prefer, dense_train_bonus, ...)
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from medtune.errors import ConfigError

VOCABULARIES = {"mesh-disease": "disease", "mesh-chemical": "chemical", "mesh-all": "all"}


class LinkerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vocabulary: str = Field(..., description="mesh-disease, mesh-chemical, mesh-all or a TSV file")
    labels: list[str] | None = None
    train: list[str] = Field(default_factory=list, description="named corpora (their train splits) or "
                             "files of documents with ids, to learn mention -> id pairs from")
    train_format: str | None = None
    encoder: str = "default"
    components: list[str] | None = None
    settings: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "LinkerConfig":
        from medtune.config import read_yaml_mapping

        path = Path(path)
        raw = read_yaml_mapping(path, "linker config", "see configs/linker-*.yaml")
        try:
            return cls.model_validate(raw)
        except ValidationError as err:
            parts = []
            for e in err.errors():
                where = ".".join(str(p) for p in e["loc"])
                if e["type"] == "extra_forbidden":
                    parts.append(f"unknown key '{where}'; valid keys: {', '.join(cls.model_fields)}")
                else:
                    parts.append(f"'{where}': {e['msg']}")
            raise ConfigError(f"{path}: invalid linker config: " + "; ".join(parts)) from None


def build_linker(config: LinkerConfig, output: str | Path, *, overwrite: bool = False) -> dict[str, Any]:
    """Build (vocabulary, training dictionary, dense index) and save the linker; returns a summary."""
    from medtune.linking import Linker, mesh_vocabulary
    from medtune.linking.vocab import Vocabulary

    output = Path(output)
    if output.exists() and any(output.iterdir()) and not overwrite:
        raise ConfigError(f"{output} exists and is not empty", fix="pass --overwrite or choose another --output")
    start = time.perf_counter()
    if config.vocabulary in VOCABULARIES:
        vocab = mesh_vocabulary(VOCABULARIES[config.vocabulary])
    else:
        vocab = Vocabulary.from_tsv(config.vocabulary)
    kwargs: dict[str, Any] = dict(config.settings)
    if config.components is not None:
        kwargs["components"] = config.components
    try:
        linker = Linker(vocab, labels=config.labels, encoder=config.encoder, **kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"linker settings: {err}", fix="see medtune.linking.Linker for the settings") from None
    if config.train:
        from medtune.data import resolve_documents

        docs = []
        for source in config.train:
            docs += resolve_documents(source, "train", config.train_format)[0]
        linker.fit(docs)
    linker.build_index()
    linker.save(output)
    return {"output": str(output), "vocabulary_ids": len(vocab), "train": config.train,
            "seconds": round(time.perf_counter() - start, 1)}
