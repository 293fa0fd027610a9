"""``kind: sentences``: sentence boundaries for the components after it (kept when a reader gave them)."""

from __future__ import annotations

from typing import Literal

from medtune.document import Document
from medtune.pipeline.components import handoff
from medtune.pipeline.components.base import Component, ComponentConfig, register_component


class SentencesConfig(ComponentConfig):
    kind: Literal["sentences"]


@register_component
class SentencesComponent(Component):
    kind = "sentences"
    config_class = SentencesConfig

    def build(self) -> None:
        return None

    def process(self, docs: list[Document], *, batch_size: int = 32) -> list[Document]:
        for doc in docs:
            handoff.sentences(doc)
        return docs
