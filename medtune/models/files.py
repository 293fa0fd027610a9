"""Checks of model and base-model directories on disk: config.json, weights, tokenizer.

Every way a model (or base-model) directory can be broken is a coded :class:`ModelError` naming the
directory or file and the fix, never a traceback: ``config.json`` missing, not a file, not JSON, not an
object, without a known ``model_type`` (custom architectures would need ``trust_remote_code``, which
medtune never sets); weights missing, only as pickles (``pytorch_model.bin``: never unpickled),
truncated or padded, or of another task, label set or size; tokenizer files missing (transformers
would otherwise build a tokenizer of the special tokens only, and every word would be ``[UNK]``) or a
tokenizer that does not fit the encoder's embeddings.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import transformers
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from torch import nn
from transformers import CONFIG_MAPPING, AutoConfig, AutoTokenizer

from medtune.errors import ModelError, quote_id

WEIGHTS_NAME = "model.safetensors"
SHARDED_WEIGHTS_INDEX = "model.safetensors.index.json"
# Weights medtune refuses to read: torch.load unpickles, and unpickling can run code.
PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "model.pt", "model.pth", "model.bin",
                  "model.ckpt")
# At least one of these makes a tokenizer (fast tokenizer.json, WordPiece, BPE, SentencePiece).
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model",
                   "tokenizer.model", "sentencepiece.model", "source.spm")
# A tokenizer with fewer ordinary (non-special) tokens than this is a tokenizer without its vocabulary.
MIN_VOCABULARY = 32

_PICKLE_FIX = ("convert the weights to model.safetensors on a machine where you trust the file, e.g. "
               "`AutoModel.from_pretrained(DIR).save_pretrained(DIR, safe_serialization=True)`, or download "
               "the model's safetensors release")


def read_config_json(model_dir: str | Path, what: str = "model directory") -> dict[str, Any]:
    """The object in ``model_dir/config.json``, checked: a file, UTF-8 JSON, an object, a known ``model_type``."""
    model_dir = Path(model_dir)
    config_file = model_dir / "config.json"
    if not model_dir.is_dir():
        raise ModelError(f"{what} {model_dir} is not a directory" if model_dir.exists()
                         else f"{what} {model_dir} does not exist",
                         fix="give the directory of a model (relative paths are resolved from the current "
                             "directory)")
    if not config_file.exists():
        raise ModelError(f"{what} {model_dir} has no config.json",
                         fix="give the output directory of `medtune train`, or a Hugging Face model directory")
    if not config_file.is_file():
        raise ModelError(f"{config_file} is not a file", fix="replace it by the config.json of the model")
    try:
        raw = json.loads(config_file.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise ModelError(f"{config_file} is not UTF-8 text",
                         fix="restore config.json from the original model, or train again") from None
    except json.JSONDecodeError as err:
        raise ModelError(f"{config_file}:{err.lineno}: not valid JSON (truncated or corrupted?)",
                         fix="restore config.json from the original model, or train again") from None
    except OSError as err:
        raise ModelError(f"{config_file} cannot be read ({type(err).__name__})",
                         fix="check the file's permissions") from None
    if not isinstance(raw, dict):
        raise ModelError(f"{config_file} must hold a JSON object, not a {type(raw).__name__}",
                         fix="restore config.json from the original model, or train again")
    model_type = raw.get("model_type")
    if not isinstance(model_type, str) or not model_type:
        raise ModelError(f"{config_file} has no 'model_type' (an incomplete config)",
                         fix="restore config.json from the original model, or train again")
    if model_type not in CONFIG_MAPPING:
        raise ModelError(
            f"{config_file}: model_type {quote_id(model_type)} is not an architecture transformers "
            f"{transformers.__version__} knows, and medtune never runs code from a model directory "
            "(trust_remote_code)",
            fix="use a model of a built-in architecture (BERT, RoBERTa, DeBERTa, ...), or upgrade "
                "transformers if the architecture is newer than it")
    return raw


def find_weights(model_dir: str | Path, what: str = "model directory", *, sharded: bool = False) -> Path:
    """The safetensors weights of ``model_dir``; pickle-only weights are refused (never unpickled)."""
    model_dir = Path(model_dir)
    weights = model_dir / WEIGHTS_NAME
    if weights.is_file():
        return weights
    if sharded and (model_dir / SHARDED_WEIGHTS_INDEX).is_file():
        return model_dir / SHARDED_WEIGHTS_INDEX
    if weights.exists():
        raise ModelError(f"{weights} is not a file", fix="replace it by the model's weights file")
    pickles = [name for name in PICKLE_WEIGHTS if (model_dir / name).exists()]
    if pickles:
        raise ModelError(f"{what} {model_dir} has only pickle weights ({pickles[0]}); medtune never unpickles "
                         "a file, which can run code", fix=_PICKLE_FIX)
    raise ModelError(f"{what} {model_dir} has no {WEIGHTS_NAME}",
                     fix="the directory is incomplete: copy the weights again, or train again")


def load_tokenizer(model_dir: str | Path, what: str = "model directory", *, vocab_size: int | None = None) -> Any:
    """The tokenizer of ``model_dir``, refused when its files are missing or it does not fit the encoder."""
    model_dir = Path(model_dir)
    if not any((model_dir / name).is_file() for name in TOKENIZER_FILES):
        raise ModelError(
            f"{what} {model_dir} has no tokenizer files (none of {', '.join(TOKENIZER_FILES[:3])}, ...): "
            "its tokenizer would know only the special tokens and read every word as [UNK]",
            fix="save the base model's tokenizer into it: "
                "`AutoTokenizer.from_pretrained(BASE).save_pretrained(DIR)`")
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=False)
    except ModelError:
        raise
    except Exception as err:  # tokenizers raises plain Exceptions on a corrupted tokenizer.json
        raise ModelError(f"{what} {model_dir}: its tokenizer files cannot be loaded ({type(err).__name__})",
                         fix="copy the tokenizer files of the base model again") from None
    size = len(tokenizer)
    special = len(set(tokenizer.all_special_ids))
    if size - special < MIN_VOCABULARY:
        raise ModelError(
            f"{what} {model_dir}: its tokenizer has only {size} tokens ({special} special): its vocabulary "
            "files are empty or missing, and every word would be [UNK]",
            fix="save the base model's tokenizer into it: "
                "`AutoTokenizer.from_pretrained(BASE).save_pretrained(DIR)`")
    if vocab_size is not None and size > vocab_size:
        raise ModelError(
            f"{what} {model_dir}: its tokenizer has {size} tokens but the encoder's embeddings only "
            f"{vocab_size} (config.json vocab_size): the tokenizer belongs to another model",
            fix="copy the tokenizer files of the model's own base model")
    return tokenizer


def check_model_dir(model_dir: str | Path, what: str = "base_model") -> None:
    """Everything a local (base-)model directory needs before loading: config, safetensors weights, tokenizer."""
    raw = read_config_json(model_dir, what)
    find_weights(model_dir, what, sharded=True)
    vocab_size = raw.get("vocab_size")
    load_tokenizer(model_dir, what, vocab_size=vocab_size if isinstance(vocab_size, int) else None)


def load_encoder_config(model_dir: str | Path, what: str = "model directory") -> Any:
    """``AutoConfig`` of a checked ``config.json``; transformers' own refusals become a ``ModelError``."""
    raw = read_config_json(model_dir, what)
    try:
        return AutoConfig.from_pretrained(model_dir, trust_remote_code=False)
    except Exception as err:
        raise ModelError(f"{Path(model_dir) / 'config.json'}: transformers cannot build a "
                         f"{quote_id(raw['model_type'])} config from it ({type(err).__name__})",
                         fix="restore config.json from the original model, or train again") from None


def _unreadable_weights(weights: Path, err: Exception) -> ModelError:
    size = weights.stat().st_size if weights.exists() else 0
    return ModelError(
        f"{weights} is not a readable safetensors file ({size} bytes: truncated, padded or corrupted; "
        f"{type(err).__name__})",
        fix="copy the weights again from where the model came from, or train again")


def read_safetensors(weights: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of a safetensors file; a truncated, padded or corrupted file is a ``ModelError``."""
    weights = Path(weights)
    try:
        return load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise _unreadable_weights(weights, err) from None


def check_safetensors(weights: str | Path) -> None:
    """Read only the header of a safetensors file: it must be whole (its size what the header says)."""
    weights = Path(weights)
    try:
        with safe_open(str(weights), framework="pt", device="cpu") as handle:
            handle.keys()
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise _unreadable_weights(weights, err) from None


def load_state_checked(module: nn.Module, state: dict[str, torch.Tensor], weights: str | Path,
                       *, ignore_missing: tuple[str, ...] = ()) -> None:
    """Load ``state`` into ``module`` only when it fits exactly (names and shapes), else a ``ModelError``.

    Tied tensors that safetensors stored once (e.g. shared embeddings) are not counted as missing;
    missing names starting with ``ignore_missing`` are allowed.
    """
    own = module.state_dict()
    mismatched = [k for k, v in state.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    unexpected = [k for k in state if k not in own]
    missing: list[str] = []
    if not mismatched:
        missing = list(module.load_state_dict(state, strict=False).missing_keys)
        loaded = module.state_dict()
        shared = {loaded[k].data_ptr() for k in state if k in loaded}
        missing = [k for k in missing if not k.startswith(ignore_missing) and loaded[k].data_ptr() not in shared]
    if not (mismatched or unexpected or missing) and state:
        return
    parts = []
    if mismatched:
        k = mismatched[0]
        parts.append(f"{len(mismatched)} of another shape (e.g. {k}: {list(state[k].shape)} in the file, "
                     f"{list(own[k].shape)} expected)")
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
    if not state:
        parts.append("no tensors at all")
    raise ModelError(
        f"{weights} does not fit the model its config.json describes: " + "; ".join(parts),
        fix="the weights belong to another model (another task, label set or size): copy the matching "
            "model.safetensors and config.json together, or train again")
