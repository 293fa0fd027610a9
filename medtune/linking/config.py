"""Building a linker from a strict YAML config: ``medtune link build CONFIG.yaml --output DIR``.

::

    vocabulary: mesh-disease          # mesh-disease | mesh-chemical | mesh-all | a TSV (id, name, synonyms)
    labels: [Disease]                 # span labels the linker normalises
    train: [bc5cdr-disease]           # mentions -> ids to learn from: named corpora's train splits, or files
    encoder: default                  # dense retrieval encoder (default: all-MiniLM-L6-v2), or a mapping
                                      # of medtune.linking.EncoderSettings (name, pooling, max_length, ...)
    components: null                  # a subset of medtune.linking.COMPONENTS (null = all)
    settings: {}                      # medtune.linking.LinkerSettings (prefer, dense_train_bonus, ...)
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from medtune.config import read_yaml_mapping
from medtune.data import resolve_documents
from medtune.errors import ConfigError
from medtune.linking.cascade import COMPONENTS, Linker
from medtune.linking.settings import EncoderSettings, LinkerSettings
from medtune.linking.vocab import Vocabulary, mesh_vocabulary

VOCABULARIES = {"mesh-disease": "disease", "mesh-chemical": "chemical", "mesh-all": "all"}


_NESTED: dict[str, type[BaseModel]] = {"settings": LinkerSettings, "encoder": EncoderSettings}


class LinkerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vocabulary: str = Field(..., description="mesh-disease, mesh-chemical, mesh-all or a TSV file")
    labels: list[str] | None = None
    train: list[str] = Field(default_factory=list, description="named corpora (their train splits) or "
                             "files of documents with ids, to learn mention -> id pairs from")
    train_format: str | None = None
    encoder: str | EncoderSettings = "default"
    components: list[str] | None = None
    settings: LinkerSettings = Field(default_factory=LinkerSettings)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "LinkerConfig":
        path = Path(path)
        raw = read_yaml_mapping(path, "linker config", "see configs/linker-*.yaml")
        try:
            return cls.model_validate(raw)
        except ValidationError as err:
            parts = []
            for e in err.errors():
                loc = [str(p) for p in e["loc"] if p not in ("str", "EncoderSettings")]
                where = ".".join(loc)
                if e["type"] == "extra_forbidden":
                    fields = _NESTED.get(loc[0], cls).model_fields if len(loc) > 1 else cls.model_fields
                    parts.append(f"unknown key '{where}'; valid keys: {', '.join(fields)}")
                else:
                    parts.append(f"'{where}': {e['msg']}")
            raise ConfigError(f"{path}: invalid linker config: " + "; ".join(parts)) from None


def build_linker(config: LinkerConfig, output: str | Path, *, overwrite: bool = False) -> dict[str, Any]:
    """Build (vocabulary, training dictionary, dense index) and save the linker; returns a summary."""
    output = Path(output)
    if output.exists() and any(output.iterdir()) and not overwrite:
        raise ConfigError(f"{output} exists and is not empty", fix="pass --overwrite or choose another --output")
    start = time.perf_counter()
    if config.vocabulary in VOCABULARIES:
        vocab = mesh_vocabulary(VOCABULARIES[config.vocabulary])
    else:
        vocab = Vocabulary.from_tsv(config.vocabulary)
    components = config.components if config.components is not None else COMPONENTS
    try:
        linker = Linker(vocab, labels=config.labels, components=components, encoder=config.encoder,
                        settings=config.settings)
    except ValueError as err:
        raise ConfigError(f"linker config: {err}", fix="see medtune.linking.COMPONENTS") from None
    if config.train:
        docs = []
        for source in config.train:
            docs += resolve_documents(source, "train", config.train_format)[0]
        linker.fit(docs)
    linker.build_index()
    linker.save(output)
    return {"output": str(output), "vocabulary_ids": len(vocab), "train": config.train,
            "seconds": round(time.perf_counter() - start, 1)}
