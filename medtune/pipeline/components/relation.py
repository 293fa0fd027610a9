"""``kind: relation``: relations between the spans already there, from a relation model (or ensemble).

``require_label: L`` keeps only relations whose head lies in a sentence that an earlier sentence-scope
classification component labelled ``L`` (or, after a document-scope one, in a document labelled ``L``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from medtune.document import Document, Relation
from medtune.errors import ConfigError
from medtune.pipeline.components import handoff
from medtune.pipeline.components.base import Component, ModelComponentConfig, register_component
from medtune.sentences import sentence_index


class RelationConfig(ModelComponentConfig):
    kind: Literal["relation"]
    require_label: str | None = Field(
        None, description="keep only relations whose head is in a sentence (or document) that an earlier "
        "classification component gave this label")


@register_component
class RelationComponent(Component):
    kind = "relation"
    config_class = RelationConfig
    task = "relation"
    ensembles = True

    def check_order(self, before: list[Component], source: str) -> None:
        if self.config.require_label is not None and not any(c.kind == "classification" for c in before):
            raise ConfigError(f"{source}: component '{self.name}' has require_label "
                              f"'{self.config.require_label}' but no classification component comes before it",
                              fix="add a 'kind: classification' component (model: an ADE-sentence classifier, "
                              "say) before the relation component")

    def process(self, docs: list[Document], *, batch_size: int = 32) -> list[Document]:
        nlp = self.load()
        for doc in docs:
            doc.ensure_span_ids()
        for doc, pred in zip(docs, nlp.pipe(docs, batch_size=batch_size)):
            relations = pred.relations
            if self.config.require_label is not None:
                relations = gated(doc, relations, self.config.require_label)
            doc.relations.extend(relations)
            if "id_relations" in pred.metadata:
                if self.config.require_label is not None:
                    raise ConfigError(f"component '{self.name}': require_label applies to mention-level "
                                      "relation models, not to id-level (document) ones",
                                      fix="drop require_label from this component")
                doc.metadata["id_relations"] = pred.metadata["id_relations"]
        return docs


def gated(doc: Document, relations: list[Relation], label: str) -> list[Relation]:
    """Relations whose head span lies in a sentence (or document) labelled ``label``."""
    labels = handoff.sentence_labels(doc)
    if labels is None:  # a document-scope classification component ran
        return relations if label in doc.labels else []
    ranges = handoff.sentences(doc)
    ids = doc.span_by_id()
    return [r for r in relations if label in labels[sentence_index(ranges, ids[r.head].start)]]
