"""Neural models: a pretrained encoder with a task head.

One ``nn.Module`` per task family. The encoder is any Hugging Face ``AutoModel``; heads are small.
Models are saved as ``model.safetensors`` (whole state dict) beside the encoder's ``config.json``,
which carries a ``medtune`` section (task, labels, head, version). Loading builds the encoder from
its config and never executes code from the model folder (``trust_remote_code`` is never set).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig


@contextlib.contextmanager
def quiet_loading():
    """Silence transformers' weight-loading progress bars and load reports (expected, and noise here)."""
    from transformers.utils import logging as hf_logging

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
    from medtune.errors import ModelError

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
    from medtune.errors import ModelError

    local = Path(base_model).is_dir()
    if local:
        from medtune.models.store import WEIGHTS_NAME, check_safetensors, find_weights, read_config_json

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
    from medtune.errors import ModelError
    from medtune.models.store import find_weights, load_encoder_config, load_state_checked, read_safetensors

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


class _EncoderModel(nn.Module):
    """Shared plumbing: the encoder and its config (for ``save``)."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.config = encoder.config

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
               token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        kwargs: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None and getattr(self.config, "type_vocab_size", 0) > 1:
            kwargs["token_type_ids"] = token_type_ids
        return self.encoder(**kwargs).last_hidden_state


class TokenTaggingModel(_EncoderModel):
    """Word-level tagging: emissions at the first sub-token of each word, linear or CRF decoding.

    ``word_index`` (batch, words) holds the token position of each word's first sub-token;
    ``word_mask`` marks real words; ``labels`` (batch, words) the gold tag ids (-100 = ignore).
    """

    def __init__(self, encoder: nn.Module, num_tags: int, head: str = "linear", dropout: float = 0.1) -> None:
        super().__init__(encoder)
        self.head = head
        self.num_tags = num_tags
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(encoder.config.hidden_size, num_tags)
        if head == "crf":
            from torchcrf import CRF

            self.crf = CRF(num_tags, batch_first=True)
        elif head != "linear":
            raise ValueError(f"unknown NER head {head!r}")

    def emissions(self, input_ids, attention_mask, word_index, token_type_ids=None) -> torch.Tensor:
        states = self.encode(input_ids, attention_mask, token_type_ids)
        index = word_index.clamp(min=0).unsqueeze(-1).expand(-1, -1, states.size(-1))
        words = torch.gather(states, 1, index)
        return self.classifier(self.dropout(words)).float()

    def forward(self, input_ids, attention_mask, word_index, word_mask, labels=None, token_type_ids=None):
        logits = self.emissions(input_ids, attention_mask, word_index, token_type_ids)
        out: dict[str, torch.Tensor] = {"logits": logits}
        if labels is not None:
            if self.head == "crf":
                tags = labels.clamp(min=0)
                mask = word_mask.bool() & (labels >= 0)
                mask[:, 0] = True  # torchcrf needs the first step on; windows always start with a word
                out["loss"] = -self.crf(logits, tags, mask=mask, reduction="token_mean")
            else:
                out["loss"] = nn.functional.cross_entropy(
                    logits.reshape(-1, self.num_tags), labels.reshape(-1), ignore_index=-100)
        return out


class SequenceClassificationModel(_EncoderModel):
    """Document classification over one or more chunks per document.

    Each chunk is encoded; its feature is the CLS state, the mean of token states (linear head) or
    max-over-time convolution features (CNN head, the "BERT + CNN" recipe). Chunk features are pooled
    per document (``chunk_to_doc`` maps chunk -> document index in the batch) before the classifier.
    """

    def __init__(
        self,
        encoder: nn.Module,
        num_labels: int,
        *,
        head: str = "linear",
        multi_label: bool = False,
        pooling: str = "mean",
        chunk_pooling: str = "max",
        dropout: float = 0.1,
        cnn_kernel_sizes: list[int] | None = None,
        cnn_filters: int = 128,
    ) -> None:
        super().__init__(encoder)
        hidden = encoder.config.hidden_size
        self.head, self.multi_label, self.pooling, self.chunk_pooling = head, multi_label, pooling, chunk_pooling
        self.num_labels = num_labels
        self.dropout = nn.Dropout(dropout)
        if head == "cnn":
            sizes = cnn_kernel_sizes or [3, 4, 5]
            self.convs = nn.ModuleList(nn.Conv1d(hidden, cnn_filters, k, padding=k // 2) for k in sizes)
            feature = cnn_filters * len(sizes)
        elif head == "linear":
            feature = hidden
        else:
            raise ValueError(f"unknown classification head {head!r}")
        self.classifier = nn.Linear(feature, num_labels)

    def chunk_features(self, states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        mask = attention_mask.unsqueeze(-1).to(states.dtype)
        if self.head == "cnn":
            # zero the pad positions so a chunk's features never depend on how much padding its batch has
            x = (states * mask).transpose(1, 2)
            feats = []
            for conv in self.convs:
                h = torch.relu(conv(x))[:, :, : states.size(1)]
                h = h.masked_fill(attention_mask.unsqueeze(1) == 0, float("-inf"))
                feats.append(h.max(dim=2).values)
            return torch.cat(feats, dim=-1)
        if self.pooling == "cls":
            return states[:, 0]
        return (states * mask).sum(1) / mask.sum(1).clamp(min=1.0)

    def forward(self, input_ids, attention_mask, chunk_to_doc, labels=None, token_type_ids=None):
        states = self.encode(input_ids, attention_mask, token_type_ids)
        chunk = self.chunk_features(states, attention_mask).float()
        n_docs = int(chunk_to_doc.max().item()) + 1
        index = chunk_to_doc.unsqueeze(-1).expand_as(chunk)
        if self.chunk_pooling == "max":
            pooled = torch.full((n_docs, chunk.size(-1)), float("-inf"), dtype=chunk.dtype, device=chunk.device)
            pooled = pooled.scatter_reduce(0, index, chunk, reduce="amax", include_self=True)
        else:
            pooled = torch.zeros((n_docs, chunk.size(-1)), dtype=chunk.dtype, device=chunk.device)
            pooled = pooled.scatter_reduce(0, index, chunk, reduce="mean", include_self=False)
        logits = self.classifier(self.dropout(pooled))
        out: dict[str, torch.Tensor] = {"logits": logits}
        if labels is not None:
            if self.multi_label:
                out["loss"] = nn.functional.binary_cross_entropy_with_logits(logits, labels.float())
            else:
                out["loss"] = nn.functional.cross_entropy(logits, labels)
        return out


class MarkedSpanModel(_EncoderModel):
    """Classification of marked spans (relations, assertion): hidden states at the opening markers.

    ``marker_index`` (batch, markers) holds the token position of each opening marker; their states
    (and the [CLS] state when ``use_cls``) are concatenated before the classifier.
    """

    def __init__(self, encoder: nn.Module, num_labels: int, *, num_markers: int, use_cls: bool = False,
                 dropout: float = 0.1) -> None:
        super().__init__(encoder)
        hidden = encoder.config.hidden_size
        self.num_labels, self.num_markers, self.use_cls = num_labels, num_markers, use_cls
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden * (num_markers + int(use_cls)), num_labels)

    def forward(self, input_ids, attention_mask, marker_index, labels=None, token_type_ids=None):
        states = self.encode(input_ids, attention_mask, token_type_ids)
        index = marker_index.unsqueeze(-1).expand(-1, -1, states.size(-1))
        parts = torch.gather(states, 1, index)  # (batch, markers, hidden)
        feature = parts.reshape(parts.size(0), -1)
        if self.use_cls:
            feature = torch.cat([states[:, 0], feature], dim=-1)
        logits = self.classifier(self.dropout(feature.float()))
        out: dict[str, torch.Tensor] = {"logits": logits}
        if labels is not None:
            out["loss"] = nn.functional.cross_entropy(logits, labels)
        return out


def encoder_config_from_dir(path: str) -> PretrainedConfig:
    return AutoConfig.from_pretrained(path, trust_remote_code=False)
