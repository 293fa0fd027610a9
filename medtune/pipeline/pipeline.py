"""``medtune.Pipeline``: sentence splitting, NER, assertion, linking and relations chained from YAML.

A pipeline file lists components in order; each reads and enriches the same documents::

    name: pharmacovigilance
    components:
      - kind: sentences
      - kind: ner
        model: ../models/ade-ner          # paths are relative to this YAML file
      - kind: assertion
        backend: rules                    # or: model (with model: DIR)
      - kind: linking
        model: ../models/linker-disease
        labels: [Disease]
      - kind: relation
        model: ../models/ade-re

A ``ner`` or ``relation`` component given a list of models (``model: [a, b]``) runs them as one ensemble
that averages their probabilities (same labels and tokenizer; see ``medtune.inference.load_ensemble``).

A ``classification`` component labels each sentence (``scope: sentence``, stored in
``metadata["sentence_labels"]``) or the whole document (``scope: document``, in ``labels``); a later
``relation`` component with ``require_label: ADE`` keeps only relations whose head lies in a sentence
(or document) given that label, e.g. an ADE-sentence classifier gating drug -> effect pairs.

Each kind is a registered class with its own config (``medtune.pipeline.components``); a new kind is
one new module (see ``docs/architecture.md``). Components are loaded lazily on first use, so a pipeline can be evaluated on one layer (e.g. only
its assertion component on gold concepts) without loading the others.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Iterator

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, ValidationError

from medtune.batching import buffered
from medtune.config import read_yaml_mapping
from medtune.document import Document
from medtune.errors import ConfigError
from medtune.inference.predictor import as_documents
from medtune.pipeline.components import COMPONENTS, Component, ComponentConfig


class PipelineConfig(BaseModel):
    """A pipeline file. Each entry of ``components`` is validated by the config class of its ``kind``."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    components: list[SerializeAsAny[ComponentConfig]]
    batch_size: int = Field(32, ge=1)

    @classmethod
    def parse(cls, raw: dict[str, Any], source: str) -> "PipelineConfig":
        """Validate a pipeline mapping; each component entry by the config class of its kind. Errors
        name the file and the key (``components.2.model``) and list the valid keys of that kind."""
        problems: list[str] = []
        entries = raw.get("components")
        components: list[Any] = []
        if isinstance(entries, list):
            for k, entry in enumerate(entries):
                kind = entry.get("kind") if isinstance(entry, dict) else None
                if kind not in COMPONENTS:
                    problems.append(f"'components.{k}.kind': unknown kind {kind!r}; registered kinds: "
                                    f"{', '.join(COMPONENTS)}")
                    continue
                config_class = COMPONENTS[kind].config_class
                try:
                    components.append(config_class.model_validate(entry))
                except ValidationError as err:
                    problems.append(_explain(err, f"components.{k}.", list(config_class.model_fields)))
            raw = {**raw, "components": components}
        if not problems:
            try:
                return cls.model_validate(raw)
            except ValidationError as err:
                problems.append(_explain(err, "", list(cls.model_fields)))
        raise ConfigError(f"{source}: invalid pipeline: " + "; ".join(problems))


class Pipeline:
    """Components applied in order. ``Pipeline.from_yaml(path)``; ``pipe(texts_or_docs)``; ``__call__``."""

    def __init__(self, config: PipelineConfig, base: Path, source: str = "pipeline") -> None:
        self.config = config
        self.source = source
        self.components: list[Component] = [COMPONENTS[c.kind](c, base) for c in config.components]
        for k, comp in enumerate(self.components):
            comp.check_order(self.components[:k], source)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "Pipeline":
        path = Path(path)
        raw = read_yaml_mapping(path, "pipeline file", "give the path of a pipeline YAML (see pipelines/)")
        config = PipelineConfig.parse(raw, str(path))
        return cls(config, path.resolve().parent, str(path))

    def component(self, kind: str, label: str | None = None) -> Component | None:
        """The first component of ``kind`` (covering entity ``label`` when given)."""
        for comp in self.components:
            if comp.kind == kind and (label is None or comp.wanted(label)):
                return comp
        return None

    def __call__(self, text: str | Document) -> Document:
        return next(self.pipe([text], batch_size=1))

    def pipe(self, items: Iterable[str | Document], batch_size: int | None = None,
             skip: Iterable[str] = ()) -> Iterator[Document]:
        """Annotate lazily, ``batch_size`` documents at a time; inputs are not modified."""
        size = batch_size or self.config.batch_size
        skipped = set(skip)
        for chunk in buffered(as_documents(items), size):
            docs = [doc.copy() for doc in chunk]
            for comp in self.components:
                if comp.kind not in skipped:
                    docs = comp.process(docs, batch_size=size)
            yield from docs


def _explain(err: ValidationError, prefix: str, valid: list[str]) -> str:
    parts = []
    for e in err.errors():
        where = prefix + ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            parts.append(f"unknown key '{where}'; valid keys: {', '.join(valid)}")
        else:
            parts.append(f"'{where}': {e['msg']}")
    return "; ".join(parts)


def is_pipeline_file(path: str | Path) -> bool:
    p = Path(path)
    return p.is_file() and p.suffix in (".yaml", ".yml")
