"""``kind: deid``: replace PHI first, so that what runs after it (and what is returned) never sees it.

The rules (:mod:`medtune.deid.rules`) and/or a PHI NER model (``model:``, relative to the pipeline
file, with its decoding bias ``outside_weight``) find the PHI; ``replace`` chooses surrogates, tags or
masks; ``key_file`` (relative to the pipeline file; a secret) keeps surrogates and date shifts the same
for a patient in every run (without it a random key is drawn when the pipeline loads). Each document's
text is replaced; the spans it already had move to the new offsets with their ``text`` re-read from the
new text (so no span keeps PHI); ``metadata["deid"]`` records the replaced spans (type, label, source,
new offsets; never the PHI) and the offset map back to the original text.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from medtune.deid.deidentify import Deidentifier
from medtune.document import Document
from medtune.pipeline.components.base import Component, ComponentConfig, register_component, resolve_path


class DeidConfig(ComponentConfig):
    kind: Literal["deid"]
    rules: bool = Field(True, description="run the PHI pattern library (medtune.deid.rules)")
    times: bool = Field(False, description="also replace clock times next to a date (not a HIPAA Safe Harbor "
                                           "identifier; off by default)")
    model: str | None = Field(None, description="PHI NER model directory (configs/deid.yaml), relative to the "
                                                "pipeline file; None = rules only")
    outside_weight: float | None = Field(None, gt=0.0, le=1.0, description="the model's decoding bias: below 1 "
                                         "favours PHI (recall); None = the weight stored in the model")
    replace: Literal["surrogate", "tag", "mask"] = Field("surrogate", description="surrogate, tag or mask")
    key_file: str | None = Field(None, description="secret key file (16+ bytes), relative to the pipeline file; "
                                                   "None = a random key per load")
    mode: str = Field("auto", description="inference mode of the model (auto, fp32, bf16)")
    not_phi: bool = Field(True, description="drop the model's spans that HIPAA Safe Harbor does not count as PHI "
                                            "(states, countries, ages of 89 or less) and numbers that measure "
                                            "(\"6/10 pain\", \"3/4 str\"); medtune.deid.not_phi")

    @model_validator(mode="after")
    def _detects_something(self) -> "DeidConfig":
        if not self.rules and self.model is None:
            raise ValueError("deid needs rules: true, a model, or both")
        if self.outside_weight is not None and self.model is None:
            raise ValueError("outside_weight is the model's decoding bias; give a model as well")
        return self


@register_component
class DeidComponent(Component):
    kind = "deid"
    config_class = DeidConfig
    task = "ner"

    def build(self) -> Any:
        cfg = self.config
        engine = Deidentifier(rules=cfg.rules, model=self.model_path, outside_weight=cfg.outside_weight,
                              replace=cfg.replace,
                              key_file=resolve_path(cfg.key_file, self.base) if cfg.key_file else None,
                              mode=cfg.mode, times=cfg.times, not_phi=cfg.not_phi)
        engine.detector.predictor  # noqa: B018 - load the PHI model now (a service loads before serving)
        return engine

    def process(self, docs: list[Document], *, batch_size: int = 32) -> list[Document]:
        engine: Deidentifier = self.load()
        out = []
        for doc, new in zip(docs, engine(docs)):
            doc.text, doc.text_pair, doc.spans, doc.metadata = new.text, new.text_pair, new.spans, new.metadata
            out.append(doc)
        return out
