"""``kind: coding``: ICD-10 codes of the whole document, each with its evidence (a ``coding`` model).

The document gets ``metadata["codes"]`` (code, score, category, chapter, description, ``evidence``: the
ids of its evidence spans) and the evidence spans themselves (label ``evidence``, ``ids = [code]``), with
ids that do not clash with the spans other components wrote. Its ``labels`` are left to a
classification component. Put it after the components that read every span (assertion, linking), or
give those ``labels:`` so that they leave the evidence spans alone. The codes are suggestions for a
human coder.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from medtune.document import Document
from medtune.pipeline.components.base import Component, ModelComponentConfig, register_component


class CodingConfig(ModelComponentConfig):
    kind: Literal["coding"]
    threshold: float | None = Field(None, gt=0, lt=1, description="predict codes scoring at least this "
                                    "(None = the model's threshold, tuned on dev)")
    evidence: bool = Field(True, description="add each code's evidence spans to the document")


@register_component
class CodingComponent(Component):
    kind = "coding"
    config_class = CodingConfig
    task = "coding"

    def process(self, docs: list[Document], *, batch_size: int = 32) -> list[Document]:
        nlp = self.load()
        task = nlp.task if self.config.threshold is None else nlp.task.with_trust(threshold=self.config.threshold)
        preds = task.predict(nlp.model, [d.copy(annotations=False) for d in docs], batch_size=batch_size,
                             device=nlp.device, bf16=nlp.bf16)
        for doc, pred in zip(docs, preds):
            taken = {s.id for s in doc.spans if s.id is not None}
            renamed: dict[str, str] = {}
            if self.config.evidence:
                n = 0
                for span in pred.spans:
                    n += 1
                    while f"{self.name}-E{n}" in taken:
                        n += 1
                    renamed[str(span.id)] = span.id = f"{self.name}-E{n}"
                    doc.spans.append(span)
            codes = pred.metadata.get("codes") or []
            for entry in codes:
                entry["evidence"] = [renamed[i] for i in entry.get("evidence", []) if i in renamed]
            doc.metadata["codes"] = codes
        return docs
