"""``kind: linking``: vocabulary ids (MeSH, ...) for the spans of the given labels (a saved linker)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from medtune.document import Document
from medtune.errors import ModelError
from medtune.linking import Linker
from medtune.pipeline.components.base import Component, ComponentConfig, register_component


class LinkingConfig(ComponentConfig):
    kind: Literal["linking"]
    model: str = Field(description="a linker directory written by `medtune link build`, relative to the file")


@register_component
class LinkingComponent(Component):
    kind = "linking"
    config_class = LinkingConfig

    def build(self) -> Any:
        if not self.model_path.exists():
            raise ModelError(f"component '{self.name}': model {self.model_path} does not exist",
                             fix="build the linker with `make models` (or `medtune link build`), or fix the path")
        linker = Linker.load(self.model_path)
        if self.config.labels:  # the component's labels override those the linker was built with
            linker.labels = tuple(self.config.labels)
        return linker

    def process(self, docs: list[Document], *, batch_size: int = 32) -> list[Document]:
        self.load().link_documents(docs)
        return docs
