"""``kind: ner``: entity spans from a NER model (or an ensemble of them), added to those already there."""

from __future__ import annotations

from typing import Literal

from medtune.document import Document
from medtune.pipeline.components.base import Component, ModelComponentConfig, register_component


class NerConfig(ModelComponentConfig):
    kind: Literal["ner"]


@register_component
class NerComponent(Component):
    kind = "ner"
    config_class = NerConfig
    task = "ner"
    ensembles = True

    def process(self, docs: list[Document], *, batch_size: int = 32) -> list[Document]:
        nlp = self.load()
        for doc, pred in zip(docs, nlp.pipe([d.copy(annotations=False) for d in docs], batch_size=batch_size)):
            new = [s for s in pred.spans if self.wanted(s.label)]
            for span in new:
                span.id = None
                span.attributes.setdefault("source", self.name)
            doc.spans.extend(new)
            doc.spans.sort(key=lambda s: (s.start, s.end, s.label))
            doc.ensure_span_ids()
        return docs
