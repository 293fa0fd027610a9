"""Checks of a run's settings against the base model and transformers, made before any training step.

Each raises a coded ``ConfigError`` with a fix, where transformers or torch would otherwise fail in the
middle of the first epoch (a window longer than the position table) or after the output directory was
made (a schedule that needs arguments).
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import PretrainedConfig, TrainingArguments, get_scheduler

from medtune.errors import ConfigError

# encoders whose position ids start after the padding index (RoBERTa and its descendants), so that
# ``pad_token_id + 1`` rows of the position table are never used for tokens
_PADDING_OFFSET_MODELS = frozenset({
    "roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "roberta-prelayernorm", "longformer", "mpnet",
    "data2vec-text", "luke", "ibert", "markuplm", "esm",
})


def position_limit(config: PretrainedConfig) -> int | None:
    """The most tokens the encoder has absolute positions for; None when it has no such limit (DeBERTa
    with relative positions only)."""
    limit = getattr(config, "max_position_embeddings", None)
    if not isinstance(limit, int) or getattr(config, "position_biased_input", True) is False:
        return None
    if getattr(config, "model_type", None) in _PADDING_OFFSET_MODELS:
        limit -= (getattr(config, "pad_token_id", None) or 0) + 1
    return limit


def check_max_length(max_length: int, config: PretrainedConfig, base_model: str) -> None:
    limit = position_limit(config)
    if limit is not None and max_length > limit:
        raise ConfigError(
            f"model.max_length is {max_length}, but base_model {base_model} has positions for at most "
            f"{limit} tokens (max_position_embeddings {config.max_position_embeddings})",
            fix=f"set model.max_length to {limit} or less (long documents are split into windows)")


def check_scheduler(name: str, kwargs: dict[str, Any]) -> None:
    """Build the schedule once on a throw-away optimiser, so that missing arguments fail here."""
    probe = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    try:
        get_scheduler(name, optimizer=probe, num_warmup_steps=1, num_training_steps=10,
                      scheduler_specific_kwargs=dict(kwargs))
    except (TypeError, ValueError) as err:
        raise ConfigError(f"training.lr_scheduler '{name}' cannot be built with training.lr_scheduler_kwargs "
                          f"{dict(kwargs)}: {err}",
                          fix="give the schedule's arguments in training.lr_scheduler_kwargs, or choose "
                          "another training.lr_scheduler") from None


def training_arguments(**values: Any) -> TrainingArguments:
    """``TrainingArguments(**values)``, with the combinations transformers refuses as ConfigError."""
    try:
        return TrainingArguments(**values)
    except ValueError as err:
        raise ConfigError(f"the training settings are refused by transformers: {err}",
                          fix="change the training section (e.g. reduce_lr_on_plateau needs a dev split)") from None
