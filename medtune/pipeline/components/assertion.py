"""``kind: assertion``: is each finding present, negated, uncertain, historical, a relative's, ...?

``backend: rules`` runs the ConText engine (the shipped lexicon plus ``lexicon:`` files, relative to the
pipeline file); ``backend: model`` a trained assertion model.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from medtune.assertion import ContextEngine
from medtune.document import Document
from medtune.pipeline.components.base import Component, ModelComponentConfig, register_component, resolve_path


class AssertionConfig(ModelComponentConfig):
    kind: Literal["assertion"]
    backend: Literal["rules", "model"] = Field("rules", description="rules (ConText) or model")
    model: str | None = Field(None, description="backend model: the assertion model directory")
    lexicon: list[str] = Field(default_factory=list, description="rules: extra YAML lexicons, relative to "
                               "the pipeline file")

    @model_validator(mode="after")
    def _model_for_model_backend(self) -> "AssertionConfig":
        if self.backend == "model" and self.model is None:
            raise ValueError("assertion backend 'model' needs model: PATH")
        if self.backend == "rules" and self.model is not None:
            raise ValueError("assertion backend 'rules' takes no model; set backend: model to use one")
        return self


@register_component
class AssertionComponent(Component):
    kind = "assertion"
    config_class = AssertionConfig
    task = "assertion"

    def build(self) -> Any:
        if self.config.backend == "model":
            return self.load_predictor()
        lexicons = [str(resolve_path(p, self.base)) for p in self.config.lexicon]
        return ContextEngine.from_yaml(lexicons or None)

    def process(self, docs: list[Document], *, batch_size: int = 32) -> list[Document]:
        impl = self.load()
        labels = set(self.config.labels) if self.config.labels else None
        if self.config.backend == "rules":
            for doc in docs:
                impl(doc, labels=labels)
            return docs
        for doc, pred in zip(docs, impl.pipe(docs, batch_size=batch_size)):
            by_key = {s.key(): s for s in pred.spans}
            for span in doc.spans:
                if self.wanted(span.label) and span.key() in by_key:
                    span.attributes.update(by_key[span.key()].attributes)
        return docs
