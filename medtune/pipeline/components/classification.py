"""``kind: classification``: a label per sentence (``scope: sentence``) or for the whole document."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from medtune.document import Document
from medtune.pipeline.components import handoff
from medtune.pipeline.components.base import Component, ModelComponentConfig, register_component


class ClassificationConfig(ModelComponentConfig):
    kind: Literal["classification"]
    scope: Literal["sentence", "document"] = Field(
        "sentence", description="label each sentence (the sentence_labels hand-off) or the document (labels)")


@register_component
class ClassificationComponent(Component):
    kind = "classification"
    config_class = ClassificationConfig
    task = "classification"

    def process(self, docs: list[Document], *, batch_size: int = 32) -> list[Document]:
        nlp = self.load()
        if self.config.scope == "document":
            for doc, pred in zip(docs, nlp.pipe([d.copy(annotations=False) for d in docs], batch_size=batch_size)):
                doc.labels = list(pred.labels)
                doc.label_scores = dict(pred.label_scores)
            return docs
        pieces, owners = [], []
        for k, doc in enumerate(docs):
            ranges = handoff.sentences(doc)
            handoff.set_sentence_labels(doc, [[] for _ in ranges])
            for j, (a, b) in enumerate(ranges):
                pieces.append(Document(id=f"{doc.id}#s{j}", text=doc.text[a:b]))
                owners.append((k, j))
        labels = {k: handoff.sentence_labels(docs[k]) for k in range(len(docs))}
        for (k, j), pred in zip(owners, nlp.pipe(pieces, batch_size=batch_size)):
            labels[k][j] = list(pred.labels)
        for k, doc in enumerate(docs):
            handoff.set_sentence_labels(doc, labels[k])
        return docs
