"""Saving and loading medtune model directories.

A model directory holds ``model.safetensors`` (all weights), the tokenizer files, the encoder's
``config.json`` with a ``medtune`` section (task, labels, head, windowing, thresholds, version),
``medtune_config.yaml`` (the resolved run config), ``metrics.json`` and a model card ``README.md``.
Loading builds the encoder from its config and reads tensors with safetensors: no pickle, no code
from the folder is executed.

The checks of a directory's files are in ``medtune.models.files``; the encoder in ``medtune.models.encoder``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_model as save_safetensors
from torch import nn

import medtune
from medtune.errors import ModelError, quote_id
from medtune.models.encoder import DEFAULT_BASE_MODEL, build_encoder, resolve_base_model  # noqa: F401 (re-exported)
from medtune.models.files import (WEIGHTS_NAME, find_weights, load_encoder_config, load_state_checked,  # noqa: F401
                                  load_tokenizer, read_config_json, read_safetensors)
from medtune.tasks import TASKS, Task, task_class


# ----------------------------------------------------------------------------- medtune models
def read_meta(model_dir: str | Path) -> dict[str, Any]:
    """The ``medtune`` section of a model directory's ``config.json``, checked."""
    model_dir = Path(model_dir)
    config_file = model_dir / "config.json"
    if not model_dir.is_dir() or not config_file.exists():
        raise ModelError(f"{model_dir} is not a medtune model directory (no config.json)",
                         fix="give the output directory of `medtune train`")
    meta = read_config_json(model_dir).get("medtune")
    if not meta:
        raise ModelError(f"{config_file} has no 'medtune' section: this is a plain Hugging Face model",
                         fix="fine-tune it with `medtune train` first, or use it as base_model")
    if not isinstance(meta, dict):
        raise ModelError(f"{config_file}: the 'medtune' section must be an object, not a {type(meta).__name__}",
                         fix="restore config.json from the trained model, or train again")
    task = meta.get("task")
    if not isinstance(task, str) or task not in TASKS:
        raise ModelError(f"{config_file}: the 'medtune' section names no known task (task {quote_id(task)})",
                         fix=f"the task must be one of {', '.join(sorted(TASKS))}: restore config.json, or "
                             "train again")
    return meta


def save_model(out_dir: Path, model: nn.Module, tokenizer: Any, task: Task) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    config = model.config
    meta = dict(task.meta)
    meta["version"] = medtune.__version__
    config.medtune = meta
    config.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    save_safetensors(model, str(out_dir / WEIGHTS_NAME))


def load_model(model_dir: str | Path, *, expected_task: str | None = None,
               device: str | torch.device | None = None) -> tuple[nn.Module, Any, Task]:
    model_dir = Path(model_dir)
    meta = read_meta(model_dir)
    if expected_task is not None and meta["task"] != expected_task:
        raise ModelError(f"{model_dir} is a '{meta['task']}' model, not a '{expected_task}' model",
                         fix=f"use a model trained for {expected_task}")
    weights = find_weights(model_dir)
    config = load_encoder_config(model_dir)
    tokenizer = load_tokenizer(model_dir, vocab_size=getattr(config, "vocab_size", None))
    try:
        task = task_class(meta["task"])(meta, tokenizer)
        model = task.build_model(build_encoder(None, config))
    except ModelError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as err:
        missing = f" (no {quote_id(err.args[0])})" if isinstance(err, KeyError) and err.args else ""
        raise ModelError(f"{model_dir / 'config.json'}: the 'medtune' section is incomplete or invalid{missing}; "
                         f"{type(err).__name__} building the {meta['task']} model",
                         fix="restore config.json from the trained model, or train again") from None
    load_state_checked(model, read_safetensors(weights), weights)
    model.eval()
    if device is not None:
        model.to(device)
    return model, tokenizer, task
