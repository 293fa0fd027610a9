"""Neural models: a pretrained encoder with a task head, one ``nn.Module`` per task family.

The encoder is any Hugging Face ``AutoModel`` (see ``medtune.models.encoder``); heads are small.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


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
        class_weights: list[float] | None = None,
    ) -> None:
        super().__init__(encoder)
        hidden = encoder.config.hidden_size
        self.head, self.multi_label, self.pooling, self.chunk_pooling = head, multi_label, pooling, chunk_pooling
        # not in the state dict: the weights live in the model meta, and old directories load unchanged
        self.register_buffer("class_weights", None if class_weights is None else torch.tensor(class_weights),
                             persistent=False)
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
                out["loss"] = nn.functional.cross_entropy(logits, labels, weight=self.class_weights)
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


class SpanExtractionModel(_EncoderModel):
    """Extractive question answering: a start and an end score for every token of a window.

    ``labels`` (batch, 2) hold the gold start and end positions in the window (0, the first special
    token, when the window holds no answer); padding never scores.
    """

    def __init__(self, encoder: nn.Module, *, dropout: float = 0.1) -> None:
        super().__init__(encoder)
        self.dropout = nn.Dropout(dropout)
        self.qa_outputs = nn.Linear(encoder.config.hidden_size, 2)

    def forward(self, input_ids, attention_mask, labels=None, token_type_ids=None):
        states = self.encode(input_ids, attention_mask, token_type_ids)
        logits = self.qa_outputs(self.dropout(states)).float()  # (batch, tokens, 2): start, end
        logits = logits.masked_fill(attention_mask.unsqueeze(-1) == 0, -1e4)
        out: dict[str, torch.Tensor] = {"logits": logits}
        if labels is not None:
            start, end = logits.unbind(-1)
            out["loss"] = (nn.functional.cross_entropy(start, labels[:, 0])
                           + nn.functional.cross_entropy(end, labels[:, 1])) / 2
        return out
