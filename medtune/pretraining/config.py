"""The strict configuration of a masked-LM pretraining run (``medtune pretrain CONFIG.yaml``).

Four sections: ``corpus`` (which text, :mod:`medtune.pretraining.corpus`), ``masking``
(:mod:`medtune.pretraining.masking`), ``packing`` (:mod:`medtune.pretraining.packing`) and ``training``
(:mod:`medtune.pretraining.run`). Unknown keys fail with the valid ones, as in a run config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator

from medtune.config import _explain, apply_override, read_yaml_mapping
from medtune.errors import ConfigError
from medtune.models.encoder import DEFAULT_BASE_MODEL
from medtune.tasks.options import StrictModel


class PretrainError(ConfigError):
    """A pretraining run cannot start or continue: no text left, a test split asked for, checkpoints
    of another run, a tokenizer without word boundaries."""

    code = "E310"


class CorpusConfig(StrictModel):
    corpora: list[str] = Field(..., min_length=1, description="named corpora (`medtune datasets list`) or "
                               "files / folders of documents; their unlabelled text is used")
    splits: list[Literal["train", "dev"]] = Field(
        ["train"], min_length=1, description="splits of the named corpora to read (test is never read)")
    format: str | None = Field(None, description="reader format for files (default: from the suffix)")
    min_chars: int = Field(20, ge=1, description="documents shorter than this (after grouping) are skipped")
    exclusion_min_chars: int = Field(
        40, ge=10, description="a training document is dropped when one of its sentences of at least this many "
        "normalised characters is also a sentence of a test document")

    @field_validator("splits")
    @classmethod
    def _no_duplicates(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


class MaskingConfig(StrictModel):
    strategy: Literal["whole_word", "span", "token"] = Field(
        "whole_word", description="whole_word: all pieces of a word or none; span: runs of whole words with "
        "geometric lengths (SpanBERT); token: independent word pieces (BERT's original recipe)")
    probability: float = Field(0.15, gt=0, lt=1, description="share of (non-special) tokens selected")
    mask_fraction: float = Field(0.8, ge=0, le=1, description="selected tokens replaced by [MASK]")
    random_fraction: float = Field(0.1, ge=0, le=1, description="selected tokens replaced by a random token "
                                   "(the rest keep their token)")
    span_p: float = Field(0.2, gt=0, lt=1, description="span: geometric parameter of the span length in words")
    span_max_words: int = Field(10, ge=1, description="span: longest span, in words")

    @field_validator("random_fraction")
    @classmethod
    def _fractions(cls, value: float, info: Any) -> float:
        if info.data.get("mask_fraction", 0.8) + value > 1:
            raise ValueError("mask_fraction + random_fraction must be at most 1")
        return value


class PackingConfig(StrictModel):
    max_length: int = Field(128, ge=8, le=8192, description="tokens per block, [CLS] and [SEP] included")
    cross_document: bool = Field(
        False, description="false: a block holds the text of one document only (long documents give "
        "several blocks, cut at word boundaries); true: one stream of documents separated by [SEP], "
        "cut every max_length tokens")


class PretrainTrainingConfig(StrictModel):
    epochs: float = Field(1.0, gt=0, description="passes over the blocks, when max_steps is not set")
    max_steps: int | None = Field(None, ge=1, description="optimiser steps of the whole run (the schedule's length)")
    max_tokens: int | None = Field(None, ge=1, description="stop once this many (non-padding) tokens were seen")
    time_budget_minutes: float | None = Field(
        None, gt=0, description="stop this invocation after so many minutes (a checkpoint is saved; --resume "
        "continues)")
    learning_rate: float = Field(1e-4, gt=0)
    batch_size: int = Field(32, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    warmup_ratio: float = Field(0.06, ge=0, lt=1)
    weight_decay: float = Field(0.01, ge=0)
    head_warmup_steps: int | None = Field(
        None, ge=0, description="first steps that train only the MLM head (encoder and embeddings frozen); "
        "None = 100 when the head is fresh (the base model shipped none), else 0")
    held_out_fraction: float = Field(0.02, ge=0, lt=0.5, description="share of documents whose blocks are held "
                                     "out for the held-out MLM loss (never trained on)")
    held_out_max_blocks: int = Field(512, ge=1, description="at most this many held-out blocks are scored")
    eval_every: int = Field(500, ge=1, description="held-out MLM loss every N steps")
    save_every: int = Field(500, ge=1, description="checkpoint every N steps (beside the output)")
    logging_every: int = Field(50, ge=1)
    group_by_length: bool = Field(True, description="batch blocks of similar length (less padding)")
    bf16: Literal["auto", "true", "false"] = "auto"
    seed: int = 42
    progress_bar: bool = True


class PretrainConfig(StrictModel):
    base_model: str = Field(DEFAULT_BASE_MODEL, description="encoder to continue from (a masked-LM family)")
    output: str | None = Field(None, description="model directory to write (--output overrides)")
    corpus: CorpusConfig
    masking: MaskingConfig = Field(default_factory=MaskingConfig)
    packing: PackingConfig = Field(default_factory=PackingConfig)
    training: PretrainTrainingConfig = Field(default_factory=PretrainTrainingConfig)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "pretraining config") -> "PretrainConfig":
        try:
            return cls.model_validate(raw)
        except ValidationError as err:
            raise ConfigError(_explain(err, source, cls)) from None

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: dict[str, Any] | None = None) -> "PretrainConfig":
        raw = read_yaml_mapping(path, "pretraining config", "give the path of a YAML file like "
                                "configs/pretrain-med.yaml")
        for dotted, value in (overrides or {}).items():
            apply_override(raw, dotted, value)
        return cls.from_dict(raw, source=str(path))
