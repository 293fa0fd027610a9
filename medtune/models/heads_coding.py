"""The coding model: a document of any length in chunks, one score per code, and per-token weights per code.

The encoder reads the chunks of every document of a batch; ``token_index`` (docs, T) gathers, for each
document, the states of its tokens from all its chunks in text order (each text token once: the
overlap of two chunks is split between them), ``token_mask`` marks the real ones. Two heads:

* ``laat`` (label-wise attention, as in LAAT / PLM-ICD): ``Z = tanh(W H)``, one query per code attends
  over all the document's tokens, ``A = softmax(Q Z^T)``, the code's document vector ``V = A H`` and
  its logit ``<V, w_code> + b_code``. The softmax is computed in float32 with the row maximum
  subtracted (log-sum-exp), masked tokens get exactly 0 and a document without tokens gets zero
  attention (no NaN), so long documents with large scores stay finite.
* ``pooled``: the mean of the document's token states and a linear layer; its logit is the mean over
  tokens of ``<h_t, w_code>``, so each token's share of it is an exact attribution (the evidence weights).

Code descriptions (``label_embeddings``, the encoder's mean-pooled encoding of each code's description,
a saved buffer): each code's query and output weights get a shared projection of its description
added, ``q = Q * seen + P_q e``, ``w = W * seen + P_w e``, ``b = b * seen + b_0``. ``seen`` is 1 for codes
with a training document and 0 otherwise, so a code absent from training is scored through the shared
projections alone (learnt from the other codes' descriptions) rather than pushed down by a free
parameter that only ever saw negatives. With descriptions, ``attention_dim`` is the hidden size and
``W`` and ``P_q`` start as the identity: at step 0 a code attends to the tokens most like its description.

Without descriptions nothing is known of a code absent from training: its logit is a fixed prior,
``logit(unseen_prior)`` (the task gives ``1 / (training documents + 2)``, the add-one estimate of a code
seen in none of them; ``prior`` when it is not given), the same for every document, so it is scored low
and never predicted at a usual threshold (rather than ``w = 0, b = 0``: a score of exactly 0.5).
"""

from __future__ import annotations

import torch
from torch import nn

from medtune.models.heads import _EncoderModel

HEADS = ("laat", "pooled")
UNSEEN_PRIOR = 1e-3  # the prior of an unseen code when neither ``unseen_prior`` nor ``prior`` is given


def _logit(p: float) -> float:
    return float(torch.logit(torch.tensor(min(max(float(p), 1e-6), 0.5))))


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Softmax over ``dim`` of the positions where ``mask`` is true, in float32, stable for any scale:
    the maximum is subtracted first; masked positions are exactly 0; an all-masked row is all 0."""
    scores = scores.float().masked_fill(~mask, float("-inf"))
    top = scores.amax(dim=dim, keepdim=True)
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top)).detach()
    weights = torch.exp(scores - top)
    total = weights.sum(dim=dim, keepdim=True)
    return weights / total.clamp_min(torch.finfo(weights.dtype).tiny)


class CodingModel(_EncoderModel):
    """See the module docstring. ``forward`` returns ``logits`` (docs, codes), ``loss`` with ``labels``,
    and with ``evidence_top=K`` the K best codes per document (``top_codes``) with their token weights
    (``top_weights``, docs x K x T)."""

    def __init__(self, encoder: nn.Module, num_labels: int, *, head: str = "laat", dropout: float = 0.1,
                 attention_dim: int = 256, descriptions: bool = False, prior: float | None = None,
                 unseen_prior: float | None = None) -> None:
        super().__init__(encoder)
        if head not in HEADS:
            raise ValueError(f"unknown coding head {head!r}")
        hidden = encoder.config.hidden_size
        self.head, self.num_labels, self.descriptions = head, num_labels, descriptions
        self.dropout = nn.Dropout(dropout)
        # saved with the weights: the description encodings and which codes had training documents
        self.register_buffer("label_embeddings", torch.zeros(num_labels, hidden) if descriptions else None)
        self.register_buffer("seen", torch.ones(num_labels))
        bias = 0.0 if prior is None else _logit(prior)
        # without descriptions, the fixed logit of a code that had no training document (not a parameter)
        fallback = unseen_prior if unseen_prior is not None else prior if prior is not None else UNSEEN_PRIOR
        self.unseen_logit = _logit(fallback)
        if head == "laat":
            dim = hidden if descriptions else attention_dim
            self.attention = nn.Linear(hidden, dim, bias=False)
            self.queries = nn.Parameter(torch.empty(num_labels, dim))
            nn.init.xavier_uniform_(self.queries)
            if descriptions:
                nn.init.eye_(self.attention.weight)
                nn.init.zeros_(self.queries)
                self.query_projection = nn.Linear(hidden, dim, bias=False)
                nn.init.eye_(self.query_projection.weight)
        self.output_weight = nn.Parameter(torch.empty(num_labels, hidden))
        nn.init.xavier_uniform_(self.output_weight)
        self.output_bias = nn.Parameter(torch.full((num_labels,), bias))
        if descriptions:
            self.output_projection = nn.Linear(hidden, hidden, bias=False)
            nn.init.zeros_(self.output_projection.weight)
            self.shared_bias = nn.Parameter(torch.tensor(bias))

    # ----------------------------------------------------------------- per-code parameters
    def _per_code(self) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
        seen = self.seen.unsqueeze(-1)
        query = self.queries * seen if self.head == "laat" else None
        weight, bias = self.output_weight * seen, self.output_bias * self.seen
        if self.descriptions:
            e = self.label_embeddings
            if query is not None:
                query = query + self.query_projection(e)
            weight = weight + self.output_projection(e)
            bias = bias + self.shared_bias * (1 - self.seen)
        else:  # a code without training documents or description: the fixed prior logit
            bias = bias + self.unseen_logit * (1 - self.seen)
        return query, weight, bias

    def document_tokens(self, input_ids, attention_mask, token_index, token_type_ids=None) -> torch.Tensor:
        states = self.encode(input_ids, attention_mask, token_type_ids)
        flat = states.reshape(-1, states.size(-1))
        return flat[token_index.reshape(-1)].reshape(*token_index.shape, -1)  # (docs, T, hidden)

    def forward(self, input_ids, attention_mask, token_index, token_mask, labels=None, token_type_ids=None,
                evidence_top: int = 0):
        tokens = self.dropout(self.document_tokens(input_ids, attention_mask, token_index, token_type_ids))
        mask = token_mask.bool()
        query, weight, bias = self._per_code()
        with torch.autocast(device_type=tokens.device.type, enabled=False):
            h = tokens.float()
            if self.head == "laat":
                z = torch.tanh(self.attention(h))                            # (docs, T, dim)
                scores = torch.einsum("dtk,lk->dlt", z, query.float())       # (docs, codes, T)
                attention = masked_softmax(scores, mask.unsqueeze(1))
                vectors = torch.einsum("dlt,dth->dlh", attention, h)         # (docs, codes, hidden)
                logits = (vectors * weight.float()).sum(-1) + bias.float()
            else:
                counts = mask.sum(1, keepdim=True).clamp(min=1).float()
                pooled = (h * mask.unsqueeze(-1)).sum(1) / counts
                logits = pooled @ weight.float().T + bias.float()
        out: dict[str, torch.Tensor] = {"logits": logits}
        if labels is not None:
            out["loss"] = nn.functional.binary_cross_entropy_with_logits(logits, labels.float())
        if evidence_top:
            k = min(int(evidence_top), self.num_labels)
            top = logits.topk(k, dim=-1).indices                                 # (docs, K)
            if self.head == "laat":
                picked = torch.gather(attention, 1, top.unsqueeze(-1).expand(-1, -1, attention.size(-1)))
            else:  # each token's share of the mean: <h_t, w>, positive parts normalised to sum 1
                share = torch.einsum("dth,dkh->dkt", h, weight.float()[top]).relu() * mask.unsqueeze(1)
                picked = share / share.sum(-1, keepdim=True).clamp_min(1e-12)
            out["top_codes"], out["top_weights"] = top, picked
        return out
