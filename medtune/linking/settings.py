"""The linker's settings, defined once: the :class:`~medtune.linking.cascade.Linker` keeps them, the YAML
config (:mod:`medtune.linking.config`) validates them, and the saved manifest writes them as they are.

:class:`LinkerSettings` are the tunable decisions of the cascade (the manifest's ``settings``; changed
without rebuilding anything by :meth:`Linker.configure`). :class:`EncoderSettings` say how the dense
index embeds text (the manifest's ``encoder``, plus the vector length ``dim``). The defaults were tuned on
the NCBI-disease and BC5CDR dev splits (``0`` for every ``dense_*`` number = plain cosine).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = ["LinkerSettings", "EncoderSettings", "validated"]


class LinkerSettings(BaseModel):
    """How the cascade decides (see :mod:`medtune.linking.cascade`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prefer: Literal["train", "vocab"] = Field(
        "train", description="at the same normalisation level, whether a training mention (train) or a "
        "vocabulary name (vocab) wins")
    abbreviation_first: bool = Field(
        True, description="try a short form the document defines before the train dictionary")
    composite_min_score: float = Field(
        0.8, description="the lowest score a dense part of a composite mention may have for the composite "
        "reading to be accepted")
    dense_train_bonus: float = Field(
        0.03, description="added to the dense score of an answer seen in training")
    dense_scr_penalty: float = Field(
        0.1, description="subtracted from the dense score of a MeSH supplementary concept (MESH:C...) never "
        "seen in training: corpora annotate mostly with descriptors, and SCR names attract wrong neighbours")
    dense_sparse_weight: float = Field(
        0.0, description="weight of the cosine of character 2-3-gram TF-IDF vectors (BioSyn's sparse "
        "score) added to the dense score")
    dense_context_bonus: float = Field(
        0.05, description="added, when linking documents, to answers that a lexical component gave another "
        "mention of the same document")


class EncoderSettings(BaseModel):
    """The dense index's encoder (see :class:`medtune.embedding.TextEncoder`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field("default", description="model name or directory for resolve_base_model "
                      "(default: sentence-transformers/all-MiniLM-L6-v2)")
    pooling: Literal["mean", "cls"] = "mean"
    max_length: int = Field(48, ge=1, description="tokens per text (mentions and names are short)")
    batch_size: int = Field(128, ge=1)
    bf16: bool | Literal["auto", "true", "false"] = Field(
        "auto", description="bfloat16 autocast: auto (where the CPU computes it natively), true or false")


def validated(model: type[BaseModel], values: dict[str, Any], what: str) -> Any:
    """``model(**values)``, or a ``ValueError`` naming each bad key and listing the valid ones."""
    try:
        return model.model_validate(values)
    except ValidationError as err:
        parts = []
        for e in err.errors():
            where = ".".join(str(p) for p in e["loc"])
            if e["type"] == "extra_forbidden":
                parts.append(f"unknown {what} {where!r}")
            else:
                parts.append(f"{what} {where!r}: {e['msg']}")
        raise ValueError("; ".join(parts) + f" ({what}s are {', '.join(model.model_fields)})") from None
