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

Components are loaded lazily on first use, so a pipeline can be evaluated on one layer (e.g. only
its assertion component on gold concepts) without loading the others.
"""

from __future__ import annotations

from itertools import islice
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from medtune.document import Document
from medtune.errors import ConfigError, ModelError

KINDS = ("sentences", "ner", "classification", "assertion", "linking", "relation")


class ComponentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["sentences", "ner", "classification", "assertion", "linking", "relation"]
    model: str | list[str] | None = Field(
        None, description="model directory (ner, classification, relation, assertion backend=model, linking); "
        "ner and relation also take a list of directories, an ensemble that averages their probabilities")
    backend: Literal["rules", "model"] | None = Field(None, description="assertion: rules (ConText) or model")
    lexicon: list[str] = Field(default_factory=list, description="assertion rules: extra YAML lexicons")
    labels: list[str] | None = Field(None, description="entity labels this component reads or writes (None = all)")
    mode: str = Field("auto", description="ner/relation/assertion model: inference mode (auto, fp32, bf16)")
    scope: Literal["sentence", "document"] = Field(
        "sentence", description="classification: label each sentence (metadata.sentence_labels) or the document")
    require_label: str | None = Field(
        None, description="relation: keep only relations whose head is in a sentence (or document) that an "
        "earlier classification component gave this label")
    name: str | None = None

    @model_validator(mode="after")
    def _options_fit_kind(self) -> "ComponentConfig":
        if self.require_label is not None and self.kind != "relation":
            raise ValueError(f"require_label is a relation option, not one of '{self.kind}'")
        if self.scope != "sentence" and self.kind != "classification":
            raise ValueError(f"scope is a classification option, not one of '{self.kind}'")
        if isinstance(self.model, list) and (self.kind not in ("ner", "relation") or len(self.model) < 2):
            raise ValueError("a list of models (an ensemble) needs at least two directories"
                             if self.kind in ("ner", "relation") else f"model is one directory for '{self.kind}'; "
                             "only ner and relation take a list (an ensemble)")
        return self


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
        models = config.model if isinstance(config.model, list) else [config.model] if config.model else []
        self.model_paths = [_resolve(m, base) for m in models]
        self.model_path = self.model_paths[0] if self.model_paths else None
        self._impl: Any = None
        if self.kind in ("ner", "classification", "relation", "linking") and self.model_path is None:
            raise ConfigError(f"component '{self.name}' ({self.kind}) needs a model: directory",
                              fix="add model: PATH (relative to the pipeline file)")
        if self.kind == "assertion" and (config.backend or "rules") == "model" and self.model_path is None:
            raise ConfigError(f"component '{self.name}': assertion backend 'model' needs model: PATH")

    # ------------------------------------------------------------ loading
    def load(self) -> Any:
        if self._impl is not None:
            return self._impl
        for path in self.model_paths:
            if not path.exists():
                raise ModelError(f"component '{self.name}': model {path} does not exist",
                                 fix="train the pipeline's models with `make models`, or fix the path")
        if self.kind in ("ner", "classification", "relation") or (
                self.kind == "assertion" and self.config.backend == "model"):
            import medtune
            from medtune.models.store import read_meta

            expected = "assertion" if self.kind == "assertion" else self.kind
            for path in self.model_paths:
                task = read_meta(path).get("task")
                if task != expected:
                    raise ModelError(f"component '{self.name}' expects a {expected} model, but {path} "
                                     f"is a '{task}' model", fix="point the component at the right model directory")
            if len(self.model_paths) > 1:
                from medtune.inference import load_ensemble

                self._impl = load_ensemble(self.model_paths, mode=self.config.mode)
            else:
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
        elif self.kind == "classification":
            self._classify(impl, docs, batch_size)
        elif self.kind == "relation":
            for doc in docs:
                doc.ensure_span_ids()
            for doc, pred in zip(docs, impl.pipe(docs, batch_size=batch_size)):
                relations = pred.relations
                if self.config.require_label is not None:
                    relations = self._gated(doc, relations, self.config.require_label)
                doc.relations.extend(relations)
                if "id_relations" in pred.metadata:
                    if self.config.require_label is not None:
                        raise ConfigError(f"component '{self.name}': require_label applies to mention-level "
                                          "relation models, not to id-level (document) ones",
                                          fix="drop require_label from this component")
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

    def _classify(self, impl: Any, docs: list[Document], batch_size: int) -> None:
        if self.config.scope == "document":
            for doc, pred in zip(docs, impl.pipe([_bare(d) for d in docs], batch_size=batch_size)):
                doc.labels = list(pred.labels)
                doc.label_scores = dict(pred.label_scores)
            return
        from medtune.sentences import sentences_of

        pieces, owners = [], []
        for k, doc in enumerate(docs):
            sentences = sentences_of(doc)
            doc.metadata["sentences"] = [list(x) for x in sentences]
            doc.metadata["sentence_labels"] = [[] for _ in sentences]
            for j, (a, b) in enumerate(sentences):
                pieces.append(Document(id=f"{doc.id}#s{j}", text=doc.text[a:b]))
                owners.append((k, j))
        for (k, j), pred in zip(owners, impl.pipe(pieces, batch_size=batch_size)):
            docs[k].metadata["sentence_labels"][j] = list(pred.labels)

    @staticmethod
    def _gated(doc: Document, relations: list, label: str) -> list:
        """Relations whose head span lies in a sentence (or document) labelled ``label``."""
        if "sentence_labels" not in doc.metadata:  # a document-scope classification component ran
            return relations if label in doc.labels else []
        from medtune.sentences import sentence_index

        sentences = [tuple(x) for x in doc.metadata["sentences"]]
        labels = doc.metadata["sentence_labels"]
        ids = doc.span_by_id()
        return [r for r in relations if label in labels[sentence_index(sentences, ids[r.head].start)]]


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
        for k, comp in enumerate(self.components):
            if comp.config.require_label is not None and not any(
                    c.kind == "classification" for c in self.components[:k]):
                raise ConfigError(f"{source}: component '{comp.name}' has require_label "
                                  f"'{comp.config.require_label}' but no classification component comes before it",
                                  fix="add a 'kind: classification' component (model: an ADE-sentence classifier, "
                                  "say) before the relation component")

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
