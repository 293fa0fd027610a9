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

Components are loaded lazily on first use, so a pipeline can be evaluated on one layer (e.g. only
its assertion component on gold concepts) without loading the others.
"""

from __future__ import annotations

from itertools import islice
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from medtune.document import Document
from medtune.errors import ConfigError, ModelError

KINDS = ("sentences", "ner", "assertion", "linking", "relation")


class ComponentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["sentences", "ner", "assertion", "linking", "relation"]
    model: str | None = Field(None, description="model directory (ner, relation, assertion backend=model, linking)")
    backend: Literal["rules", "model"] | None = Field(None, description="assertion: rules (ConText) or model")
    lexicon: list[str] = Field(default_factory=list, description="assertion rules: extra YAML lexicons")
    labels: list[str] | None = Field(None, description="entity labels this component reads or writes (None = all)")
    mode: str = Field("auto", description="ner/relation/assertion model: inference mode (auto, fp32, bf16)")
    name: str | None = None


class PipelineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    components: list[ComponentConfig]
    batch_size: int = Field(32, ge=1)


class Component:
    """A loaded component: ``process(docs)`` annotates a list of documents in place."""

    def __init__(self, config: ComponentConfig, base: Path) -> None:
        self.config = config
        self.kind = config.kind
        self.name = config.name or config.kind
        self.model_path = _resolve(config.model, base) if config.model else None
        self._impl: Any = None
        if self.kind in ("ner", "relation", "linking") and self.model_path is None:
            raise ConfigError(f"component '{self.name}' ({self.kind}) needs a model: directory",
                              fix="add model: PATH (relative to the pipeline file)")
        if self.kind == "assertion" and (config.backend or "rules") == "model" and self.model_path is None:
            raise ConfigError(f"component '{self.name}': assertion backend 'model' needs model: PATH")

    # ------------------------------------------------------------ loading
    def load(self) -> Any:
        if self._impl is not None:
            return self._impl
        if self.model_path is not None and not self.model_path.exists():
            raise ModelError(f"component '{self.name}': model {self.model_path} does not exist",
                             fix="train the pipeline's models with `make models`, or fix the path")
        if self.kind in ("ner", "relation") or (self.kind == "assertion" and self.config.backend == "model"):
            import medtune
            from medtune.model_io import read_meta

            task = read_meta(self.model_path).get("task")
            expected = "assertion" if self.kind == "assertion" else self.kind
            if task != expected:
                raise ModelError(f"component '{self.name}' expects a {expected} model, but {self.model_path} "
                                 f"is a '{task}' model", fix="point the component at the right model directory")
            self._impl = medtune.load(self.model_path, mode=self.config.mode)
        elif self.kind == "assertion":
            from medtune.assertion import ContextEngine

            self._impl = ContextEngine.from_yaml(self.config.lexicon or None)
        elif self.kind == "linking":
            from medtune.linking import Linker

            self._impl = Linker.load(self.model_path)
            if self.config.labels:  # the component's labels override those the linker was built with
                self._impl.labels = tuple(self.config.labels)
        return self._impl

    # ---------------------------------------------------------- applying
    def process(self, docs: list[Document], batch_size: int = 32) -> None:
        if self.kind == "sentences":
            from medtune.sentences import split_sentences

            for doc in docs:
                if not doc.metadata.get("sentences"):
                    doc.metadata["sentences"] = [list(s) for s in split_sentences(doc.text)]
            return
        impl = self.load()
        labels = set(self.config.labels) if self.config.labels else None
        if self.kind == "ner":
            for doc, pred in zip(docs, impl.pipe([_bare(d) for d in docs], batch_size=batch_size)):
                new = [s for s in pred.spans if labels is None or s.label in labels]
                for span in new:
                    span.id = None
                    span.attributes.setdefault("source", self.name)
                doc.spans.extend(new)
                doc.spans.sort(key=lambda s: (s.start, s.end, s.label))
                doc.ensure_span_ids()
        elif self.kind == "relation":
            for doc in docs:
                doc.ensure_span_ids()
            for doc, pred in zip(docs, impl.pipe(docs, batch_size=batch_size)):
                doc.relations.extend(pred.relations)
                if "id_relations" in pred.metadata:
                    doc.metadata["id_relations"] = pred.metadata["id_relations"]
        elif self.kind == "assertion" and self.config.backend == "model":
            for doc, pred in zip(docs, impl.pipe(docs, batch_size=batch_size)):
                by_key = {s.key(): s for s in pred.spans}
                for span in doc.spans:
                    if (labels is None or span.label in labels) and span.key() in by_key:
                        span.attributes.update(by_key[span.key()].attributes)
        elif self.kind == "assertion":
            for doc in docs:
                impl(doc, labels=labels)
        elif self.kind == "linking":
            impl.link_documents(docs)


def _bare(doc: Document) -> Document:
    return Document(id=doc.id, text=doc.text, text_pair=doc.text_pair, metadata=doc.metadata)


def _resolve(path: str, base: Path) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else (base / p).resolve()


class Pipeline:
    """Components applied in order. ``Pipeline.from_yaml(path)``; ``pipe(texts_or_docs)``; ``__call__``."""

    def __init__(self, config: PipelineConfig, base: Path, source: str = "pipeline") -> None:
        self.config = config
        self.source = source
        self.components = [Component(c, base) for c in config.components]

    @classmethod
    def from_yaml(cls, path: str | Path) -> "Pipeline":
        from medtune.config import read_yaml_mapping

        path = Path(path)
        raw = read_yaml_mapping(path, "pipeline file", "give the path of a pipeline YAML (see pipelines/)")
        try:
            config = PipelineConfig.model_validate(raw)
        except ValidationError as err:
            raise ConfigError(f"{path}: invalid pipeline: " + _explain(err)) from None
        return cls(config, path.resolve().parent, str(path))

    def component(self, kind: str, label: str | None = None) -> Component | None:
        """The first component of ``kind`` (covering entity ``label`` when given)."""
        for comp in self.components:
            if comp.kind == kind and (label is None or comp.config.labels is None or label in comp.config.labels):
                return comp
        return None

    def __call__(self, text: str | Document) -> Document:
        return next(self.pipe([text], batch_size=1))

    def pipe(self, items: Iterable[str | Document], batch_size: int | None = None,
             skip: Iterable[str] = ()) -> Iterator[Document]:
        """Annotate lazily, ``batch_size`` documents at a time; inputs are not modified."""
        size = batch_size or self.config.batch_size
        skipped = set(skip)
        counter = 0
        iterator = iter(items)
        while True:
            chunk = list(islice(iterator, size))
            if not chunk:
                return
            docs = []
            for item in chunk:
                if isinstance(item, str):
                    docs.append(Document(id=f"doc-{counter}", text=item))
                elif isinstance(item, Document):
                    docs.append(item.copy())
                else:
                    raise TypeError(f"pipe() takes strings or Documents, not {type(item).__name__}")
                counter += 1
            for comp in self.components:
                if comp.kind not in skipped:
                    comp.process(docs, batch_size=size)
            yield from docs


def _explain(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            valid = list(ComponentConfig.model_fields) if "components" in where else list(PipelineConfig.model_fields)
            parts.append(f"unknown key '{where}'; valid keys: {', '.join(valid)}")
        else:
            parts.append(f"'{where}': {e['msg']}")
    return "; ".join(parts)


def is_pipeline_file(path: str | Path) -> bool:
    p = Path(path)
    return p.is_file() and p.suffix in (".yaml", ".yml")
