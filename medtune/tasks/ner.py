"""Named entity recognition: character spans in, character spans out.

Internally a document is cut into *words* (the corpus tokens when the document comes from token-only
IOB data, otherwise the tokenizer's pre-tokenisation words) and sub-word tokens. The model tags the
first sub-token of every word (run_ner style). Documents of any length are split into overlapping
windows of ``max_length`` tokens that never cut a word; at inference each word is decoded from the
window where it sits furthest from an edge, and one constrained Viterbi pass over the whole document
turns word scores into a valid tag sequence, so no text is ever silently truncated.
"""

from __future__ import annotations

import bisect
import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterator, Literal

import numpy as np
import torch
from pydantic import Field
from torch import nn

from medtune.batching import length_batches
from medtune.document import Document, Span, label_set
from medtune.errors import ConfigError, DataFormatError, ModelError, quote_id
from medtune.evaluation.metrics import _pair_docs, span_counts, span_errors, span_metrics
from medtune.models.heads import TokenTaggingModel
from medtune.runtime import autocast
from medtune.tasks.base import Task, pad, special_tokens, tokenize
from medtune.tasks.options import TaskOptions
from medtune.tasks.registry import register_task
from medtune.trust.calibration import Calibrator
from medtune.trust.items import ScoredItems

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- tag schemes
def tag_names(entity_labels: list[str], scheme: str) -> list[str]:
    prefixes = "BI" if scheme == "IOB2" else "BIES"
    return ["O"] + [f"{p}-{label}" for label in entity_labels for p in prefixes]


def allowed_transitions(tags: list[str], scheme: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Masks of allowed (prev -> next) transitions, allowed first tags and allowed last tags."""
    n = len(tags)
    parts = [(t, None) if t == "O" else (t[0], t[2:]) for t in tags]
    trans = np.zeros((n, n), dtype=bool)
    start = np.zeros(n, dtype=bool)
    end = np.zeros(n, dtype=bool)
    for j, (p, lab) in enumerate(parts):
        start[j] = p in ("O", "B", "S")
        end[j] = p in ("O", "I", "B") if scheme == "IOB2" else p in ("O", "E", "S")
        for i, (q, prev) in enumerate(parts):
            if scheme == "IOB2":
                ok = p != "I" or (q in ("B", "I") and prev == lab)
            else:
                inside = q in ("B", "I")
                ok = (p in ("I", "E") and inside and prev == lab) or (p in ("O", "B", "S") and not inside)
            trans[i, j] = ok
    return trans, start, end


def viterbi(scores: np.ndarray, trans_ok: np.ndarray, start_ok: np.ndarray, end_ok: np.ndarray,
            transitions: np.ndarray | None = None, start_scores: np.ndarray | None = None,
            end_scores: np.ndarray | None = None) -> list[int]:
    """Best tag path under the allowed-transition masks (plus learned CRF scores when given)."""
    n_words, n_tags = scores.shape
    if n_words == 0:
        return []
    neg = -1e9
    trans = np.where(trans_ok, 0.0 if transitions is None else transitions, neg)
    score = scores[0] + np.where(start_ok, 0.0 if start_scores is None else start_scores, neg)
    back = np.zeros((n_words, n_tags), dtype=np.int64)
    for t in range(1, n_words):
        total = score[:, None] + trans
        back[t] = total.argmax(axis=0)
        score = total.max(axis=0) + scores[t]
    score = score + np.where(end_ok, 0.0 if end_scores is None else end_scores, neg)
    path = [int(score.argmax())]
    for t in range(n_words - 1, 0, -1):
        path.append(int(back[t, path[-1]]))
    return path[::-1]


def spans_from_word_tags(tags: list[str], words: list[tuple[int, int]]) -> list[tuple[int, int, str, int, int]]:
    """(start, end, label, first_word, last_word) chunks of a *valid* tag sequence."""
    chunks = []
    begin, label = None, None
    for i, tag in enumerate(tags + ["O"]):
        prefix, lab = (tag, None) if tag == "O" else (tag[0], tag[2:])
        if begin is not None and (prefix in ("O", "B", "S") or lab != label):
            chunks.append((words[begin][0], words[i - 1][1], label, begin, i - 1))
            begin = None
        if prefix in ("B", "S") or (prefix in ("I", "E") and begin is None):
            begin, label = i, lab
        if prefix in ("E", "S") and begin is not None:
            chunks.append((words[begin][0], words[i][1], label, begin, i))
            begin = None
    return chunks


# --------------------------------------------------------------------------- words and windows
@dataclass
class WordTokens:
    """Sub-word tokens of a text and the words they form (character ranges)."""

    input_ids: list[int]
    word_first: list[int]  # token index of each word's first sub-token
    words: list[tuple[int, int]]  # character range of each word


def tokenize_words(tokenizer: Any, text: str, corpus_tokens: list[list[int]] | None = None) -> WordTokens:
    enc = tokenize(tokenizer, text, add_special_tokens=False, return_offsets_mapping=True, truncation=False,
                    verbose=False)
    ids: list[int] = enc["input_ids"]
    offsets: list[tuple[int, int]] = [tuple(o) for o in enc["offset_mapping"]]
    word_first: list[int] = []
    words: list[tuple[int, int]] = []
    if corpus_tokens is not None:
        # Words are the corpus tokens (token-only IOB data): map each sub-token to the token holding it.
        starts = [t[0] for t in corpus_tokens]
        current = -1
        for k, (a, b) in enumerate(offsets):
            if b <= a:
                continue
            w = bisect.bisect_right(starts, a) - 1
            if w < 0 or a >= corpus_tokens[w][1] or w == current:
                continue
            current = w
            word_first.append(k)
            words.append((corpus_tokens[w][0], corpus_tokens[w][1]))
        return WordTokens(ids, word_first, words)
    word_ids = enc.word_ids()
    previous = None
    for k, (wid, (a, b)) in enumerate(zip(word_ids, offsets)):
        if wid is None or b <= a:
            continue
        if wid != previous:
            word_first.append(k)
            words.append((a, b))
            previous = wid
        else:
            words[-1] = (words[-1][0], max(words[-1][1], b))
    return WordTokens(ids, word_first, words)


def plan_windows(word_first: list[int], n_tokens: int, capacity: int, stride: int) -> list[tuple[int, int]]:
    """Token ranges [start, end) of at most ``capacity`` tokens, overlapping by about ``stride``.

    Window edges fall on word starts whenever a word fits, so a word is never cut between windows.
    """
    if n_tokens <= capacity:
        return [(0, n_tokens)]
    windows: list[tuple[int, int]] = []
    start = 0
    while True:
        end = min(start + capacity, n_tokens)
        if end < n_tokens:
            k = bisect.bisect_right(word_first, end) - 1
            # snap back to a word start, unless that would not get past the previous window
            if k >= 0 and word_first[k] > max(start, windows[-1][1] if windows else 0):
                end = word_first[k]
        windows.append((start, end))
        if end >= n_tokens:
            return windows
        target = max(end - stride, start + 1)
        k = bisect.bisect_right(word_first, target) - 1
        nxt = word_first[k] if k >= 0 and word_first[k] > start else end
        start = nxt


def window_owners(windows: list[tuple[int, int]]) -> list[int]:
    """Token boundaries between consecutive windows: window j owns tokens [b[j-1], b[j])."""
    return [(windows[j + 1][0] + windows[j][1]) // 2 for j in range(len(windows) - 1)]


# --------------------------------------------------------------------------- the task
class NerOptions(TaskOptions):
    head: Literal["linear", "crf"] = "linear"
    tag_scheme: Literal["IOB2", "BIOES"] = "IOB2"
    overlapping_spans: Literal["error", "keep_longest"] = Field(
        "error", description="what to do with gold spans BIO tags cannot represent because they claim "
        "the same word (they overlap in characters, or one ends or starts inside a word next to the "
        "other): 'error' stops training naming the document and offset; 'keep_longest' keeps the longest "
        "of the spans that claim a word (ties: the earlier) and logs how many were dropped")
    discontinuous: Literal["error", "cover", "fragments", "drop"] = Field(
        "fragments", description="what training does with discontinuous gold spans, which BIO tags cannot "
        "represent: 'fragments' (default) tags each fragment as its own span of the same label; 'cover' "
        "tags one span from the first fragment's start to the last one's end; 'drop' leaves them out; "
        "'error' refuses the data (training and evaluation). Except with 'error', one warning counts them")


@register_task
class NerTask(Task):
    name = "ner"
    options_class = NerOptions
    onnx_graph = "ner-emissions"
    ensemble = "tags"
    ensemble_attributes = ("tags",)
    ensemble_meta = ("labels", "tag_scheme")
    call_settings = Task.call_settings + ("outside_weight",)

    def __init__(self, meta: dict[str, Any], tokenizer: Any) -> None:
        super().__init__(meta, tokenizer)
        self.scheme: str = meta.get("tag_scheme", "IOB2")
        self.tags = tag_names(self.labels, self.scheme)
        self.tag_to_id = {t: i for i, t in enumerate(self.tags)}
        self.max_length: int = meta["max_length"]
        self.stride: int = meta["stride"]
        self.prefix_ids, self.suffix_ids = special_tokens(tokenizer)
        self.prefix = len(self.prefix_ids)
        self.capacity = self.max_length - len(self.prefix_ids) - len(self.suffix_ids)
        self.trans_ok, self.start_ok, self.end_ok = allowed_transitions(self.tags, self.scheme)
        self.overlaps: str = meta.get("overlapping_spans", "error")
        # models saved before the option existed refused discontinuous spans
        self.discontinuous: str = meta.get("discontinuous", "error")
        # recall-first decoding: absent (every model saved before it existed) = 1.0, no bias
        self.outside_weight: float = check_outside_weight(meta.get("outside_weight", 1.0))

    @classmethod
    def meta_from_config(cls, config: Any, train_docs: list[Document]) -> dict[str, Any]:
        labels = config.model.labels or label_set(train_docs, "spans")
        if not labels:
            raise DataFormatError("the training data has no entity spans", field="data.train",
                                  fix="check the tag column / format options of the training file")
        return {
            "task": cls.name,
            "labels": list(labels),
            "head": config.model.head,
            "tag_scheme": config.model.tag_scheme,
            "max_length": config.model.max_length,
            "stride": config.model.stride,
            "dropout": config.model.dropout,
            "overlapping_spans": config.model.overlapping_spans,
            "discontinuous": config.model.discontinuous,
        }

    def build_model(self, encoder: nn.Module) -> nn.Module:
        return TokenTaggingModel(encoder, len(self.tags), head=self.meta["head"],
                                 dropout=self.meta.get("dropout", 0.1))

    # ---------------------------------------------------------------- checks
    def check_documents(self, docs: list[Document], *, source: str, training: bool) -> None:
        known = set(self.labels)
        if docs and not any(d.spans for d in docs) and any(d.labels for d in docs):
            raise DataFormatError(
                "the documents carry document labels but no spans: they are classification data, and this "
                "is a NER model", path=source, field="spans",
                fix="evaluate a classification model on this data, or give data with entity spans")
        for doc in docs:
            doc.validate(source=source)
            if training and not doc.text.strip():
                raise DataFormatError(f"document {quote_id(doc.id)} has an empty text", path=source,
                                      fix="remove empty documents from the training data")
            for i, span in enumerate(doc.spans):
                # the field names the span: the message does not repeat it
                if span.label not in known:
                    raise DataFormatError(
                        f"document {quote_id(doc.id)} has the label {quote_id(span.label)}, which the model "
                        f"does not know (labels: {', '.join(self.labels)})", path=source,
                        field=f"spans[{i}].label",
                        fix="evaluate on data with the model's entity types, or map the labels first")
                if span.is_discontinuous and self.discontinuous == "error":
                    raise DataFormatError(
                        f"document {quote_id(doc.id)} has a discontinuous span, which BIO tagging cannot "
                        "represent", path=source, field=f"spans[{i}].fragments",
                        fix="set model.discontinuous to fragments, cover or drop, or split discontinuous "
                            "spans into their fragments before training")

    # ---------------------------------------------------------------- encoding
    def _words(self, doc: Document) -> WordTokens:
        tokens = doc.metadata.get("tokens")
        return tokenize_words(self.tokenizer, doc.text, tokens if tokens else None)

    def gold_spans(self, doc: Document, counts: Counter | None = None) -> list[Span]:
        """The document's spans as training tags them: discontinuous ones per ``model.discontinuous``.

        ``counts["discontinuous_spans"]`` counts the discontinuous spans met.
        """
        counts = Counter() if counts is None else counts
        out: list[Span] = []
        for span in doc.spans:
            if not span.is_discontinuous:
                out.append(span)
                continue
            counts["discontinuous_spans"] += 1
            if self.discontinuous == "error":
                raise DataFormatError(f"document {quote_id(doc.id)} has a discontinuous span, which BIO "
                                      "tagging cannot represent", field="spans",
                                      fix="set model.discontinuous to fragments, cover or drop")
            if self.discontinuous == "cover":
                out.append(Span(start=span.start, end=span.end, label=span.label))
            elif self.discontinuous == "fragments":
                out.extend(Span(start=a, end=b, label=span.label) for a, b in sorted(span.fragments or ()))
        return out

    def word_tags(self, doc: Document, words: list[tuple[int, int]], counts: Counter | None = None) -> list[str]:
        """The gold tag of each word.

        ``counts["unaligned_spans"]`` counts spans widened to whole words, ``counts["dropped_spans"]``
        spans left out by ``overlapping_spans: keep_longest`` and ``counts["discontinuous_spans"]`` the
        discontinuous spans met. Spans conflict when they claim the same word, which they do when they
        overlap in characters and also when one ends or starts inside a word that the other reaches.
        """
        counts = Counter() if counts is None else counts
        tags = ["O"] * len(words)
        starts = [w[0] for w in words]
        spans = sorted(self.gold_spans(doc, counts), key=lambda s: (s.start, -(s.end - s.start)))
        keep_longest = self.overlaps == "keep_longest"
        if keep_longest:
            kept = _drop_overlaps(spans)
            counts["dropped_spans"] += len(spans) - len(kept)
            spans = kept
        placed: list[tuple[Span, list[int]]] = []
        for span in spans:
            first = bisect.bisect_right(starts, span.start) - 1
            if first < 0 or words[first][1] <= span.start:
                first += 1
            idx = []
            k = first
            while k < len(words) and words[k][0] < span.end:
                idx.append(k)
                k += 1
            placed.append((span, idx))
        if keep_longest:  # the same rule again where the conflict arises: at the level of words
            taken: set[int] = set()
            kept_words = []
            for span, idx in sorted(placed, key=lambda p: (-(p[0].end - p[0].start), p[0].start)):
                if taken.isdisjoint(idx):
                    kept_words.append((span, idx))
                    taken.update(idx)
                else:
                    counts["dropped_spans"] += 1
            placed = sorted(kept_words, key=lambda p: (p[0].start, -(p[0].end - p[0].start)))
        owner: list[Span | None] = [None] * len(words)
        for span, idx in placed:
            if not idx:
                counts["unaligned_spans"] += 1
                continue
            if words[idx[0]][0] != span.start or words[idx[-1]][1] != span.end:
                counts["unaligned_spans"] += 1
            other = next((owner[k] for k in idx if owner[k] is not None), None)
            if other is not None:
                if span.overlaps(other):
                    what = "overlapping spans"
                else:
                    what = ("two spans that do not overlap but claim the same word (one ends or starts inside "
                            "it)")
                raise DataFormatError(
                    f"document {quote_id(doc.id)} has {what} near offset {span.start}, which BIO tags "
                    "cannot represent", field="spans",
                    fix="keep one of the spans, or set model.overlapping_spans: keep_longest (which keeps the "
                        "longest of the spans that claim a word)")
            for n, k in enumerate(idx):
                owner[k] = span
                if self.scheme == "BIOES" and len(idx) == 1:
                    prefix = "S"
                elif n == 0:
                    prefix = "B"
                elif self.scheme == "BIOES" and n == len(idx) - 1:
                    prefix = "E"
                else:
                    prefix = "I"
                tags[k] = f"{prefix}-{span.label}"
        return tags

    def _window_features(self, wt: WordTokens, labels: list[int] | None) -> Iterator[tuple[dict, list[int]]]:
        windows = plan_windows(wt.word_first, len(wt.input_ids), self.capacity, self.stride)
        for s, e in windows:
            lo = bisect.bisect_left(wt.word_first, s)
            hi = bisect.bisect_left(wt.word_first, e)
            word_ids = list(range(lo, hi))
            feature = {
                "input_ids": self.prefix_ids + wt.input_ids[s:e] + self.suffix_ids,
                "word_index": [wt.word_first[w] - s + self.prefix for w in word_ids],
            }
            if labels is not None:
                feature["labels"] = [labels[w] for w in word_ids]
            yield feature, word_ids

    def encode_for_training(self, docs: list[Document]) -> list[dict[str, Any]]:
        counts: Counter = Counter()
        features = []
        for doc in docs:
            wt = self._words(doc)
            tags = self.word_tags(doc, wt.words, counts)
            ids = [self.tag_to_id[t] for t in tags]
            for feature, _ in self._window_features(wt, ids):
                if feature["word_index"]:
                    features.append(feature)
        if counts["unaligned_spans"]:
            logger.warning("%d gold spans do not start/end on word boundaries; they were widened to whole "
                           "words for training and count as errors in strict evaluation", counts["unaligned_spans"])
        if counts["discontinuous_spans"]:
            logger.warning("%d gold spans are discontinuous; model.discontinuous=%s: %s",
                           counts["discontinuous_spans"], self.discontinuous, _DISCONTINUOUS_DONE[self.discontinuous])
        if counts["dropped_spans"]:
            logger.warning("%d gold spans claimed a word that a longer span also claims; "
                           "model.overlapping_spans=keep_longest left them out of training", counts["dropped_spans"])
        return features

    def collate(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        pad_id = self.tokenizer.pad_token_id or 0
        input_ids = pad([f["input_ids"] for f in features], pad_id)
        attention = pad([[1] * len(f["input_ids"]) for f in features], 0)
        word_index = pad([f["word_index"] for f in features], 0)
        word_mask = pad([[1] * len(f["word_index"]) for f in features], 0)
        batch = {"input_ids": input_ids, "attention_mask": attention, "word_index": word_index,
                 "word_mask": word_mask}
        if "labels" in features[0]:
            batch["labels"] = pad([f["labels"] for f in features], -100)
        return batch

    # ---------------------------------------------------------------- inference
    def crf_params(self, model: nn.Module) -> tuple[np.ndarray | None, ...]:
        if getattr(model, "head", "linear") != "crf":
            return None, None, None
        crf = model.crf
        return (crf.transitions.detach().float().cpu().numpy(), crf.start_transitions.detach().float().cpu().numpy(),
                crf.end_transitions.detach().float().cpu().numpy())

    def check_ensemble_member(self, model: nn.Module, path: Any) -> None:
        if getattr(model, "head", "linear") == "crf":
            raise ModelError(f"{path} has a 'crf' head; an ensemble averages tag probabilities, which a "
                             "CRF's scores are not", fix="ensemble NER models with the linear head")

    def predict_buffer(self, model: nn.Module, docs: list[Document], *, batch_size: int, device: torch.device,
                       bf16: bool, diagnostics: Counter) -> list[Document]:
        crf = self.crf_params(model)
        scored = self.word_scores(model, docs, batch_size=batch_size, device=device, bf16=bf16)
        return [self.decode(doc, wt, sc, crf, self.outside_weight) for doc, (wt, sc) in zip(docs, scored)]

    def word_scores(self, model: nn.Module, docs: list[Document], *, batch_size: int, device: torch.device,
                    bf16: bool) -> list[tuple[WordTokens, np.ndarray]]:
        """Each document's words and their tag scores (log-probabilities; a CRF head's emissions), each
        word scored in the window where it sits furthest from an edge. ``decode`` turns them into spans."""
        entries = []  # (doc_index, word_ids, owned_mask, feature)
        doc_words: list[WordTokens] = []
        for d, doc in enumerate(docs):
            wt = self._words(doc)
            doc_words.append(wt)
            windows = plan_windows(wt.word_first, len(wt.input_ids), self.capacity, self.stride)
            bounds = window_owners(windows)
            for j, (feature, word_ids) in enumerate(self._window_features(wt, None)):
                lo = bounds[j - 1] if j > 0 else -1
                hi = bounds[j] if j < len(bounds) else len(wt.input_ids) + 1
                owned = [lo <= wt.word_first[w] < hi for w in word_ids]
                if word_ids:
                    entries.append((d, word_ids, owned, feature))
        scores: list[np.ndarray] = [np.zeros((len(wt.words), len(self.tags)), dtype=np.float32) for wt in doc_words]
        is_crf = getattr(model, "head", "linear") == "crf"
        with torch.inference_mode(), autocast(device, bf16):
            for idx in length_batches([len(e[3]["input_ids"]) for e in entries], batch_size):
                batch_entries = [entries[i] for i in idx]
                batch = self.collate([e[3] for e in batch_entries])
                batch = {k: v.to(device) for k, v in batch.items()}
                logits = model.emissions(batch["input_ids"], batch["attention_mask"], batch["word_index"])
                if not is_crf:
                    logits = torch.log_softmax(logits.float(), dim=-1)
                logits = logits.float().cpu().numpy()
                for row, (d, word_ids, owned, _) in enumerate(batch_entries):
                    for k, (w, own) in enumerate(zip(word_ids, owned)):
                        if own:
                            scores[d][w] = logits[row, k]
        return list(zip(doc_words, scores))

    def decode(self, doc: Document, wt: WordTokens, sc: np.ndarray, crf: tuple[np.ndarray | None, ...],
               outside_weight: float = 1.0) -> Document:
        """One Viterbi pass over a document's word scores; ``outside_weight`` < 1 adds its log to the
        ``O`` score of every word first (recall-first decoding). Span scores stay the model's own
        (unbiased) probabilities."""
        pred = doc.copy(annotations=False)
        if len(wt.words):
            path = viterbi(outside_biased(sc, outside_weight), self.trans_ok, self.start_ok, self.end_ok, *crf)
            probs = _softmax(sc)
            tags = [self.tags[i] for i in path]
            for start, end, label, first, last in spans_from_word_tags(tags, wt.words):
                conf = float(np.mean([probs[k, path[k]] for k in range(first, last + 1)]))
                pred.spans.append(Span(start=start, end=end, label=label, text=doc.text[start:end],
                                       score=round(conf, 6)))
        return pred

    # ---------------------------------------------------------------- trust
    def rescore(self, pred: Document, calibration: Calibrator) -> None:
        for span in pred.spans:
            if span.score is not None:
                span.score = round(calibration.one(span.score), 6)

    def mark_abstained(self, pred: Document, threshold: float) -> int:
        n = 0
        for span in pred.spans:
            if span.score is not None and span.score < threshold:
                span.attributes["abstained"] = True
                n += 1
        return n

    def scored_items(self, gold: list[Document], pred: list[Document]) -> ScoredItems:
        """Each predicted span, right when its offsets and type equal a gold span's (strict)."""
        rows, total = [], 0
        for d, (g, p) in enumerate(_pair_docs(gold, pred)):
            keys = {s.key() for s in g.spans}
            total += len(keys)
            rows.extend((d, s.score, s.key() in keys) for s in p.spans if s.score is not None)
        return ScoredItems.from_rows(rows, gold_total=total, unit="spans")

    def headline_counts(self, gold: list[Document], pred: list[Document], **options: Any) -> np.ndarray:
        return span_counts(gold, pred)

    # ---------------------------------------------------------------- metrics
    def metrics(self, gold: list[Document], pred: list[Document], *, diagnostics: Counter | None = None,
                **options: Any) -> dict[str, Any]:
        return span_metrics(gold, pred, labels=self.labels)

    def error_examples(self, gold: list[Document], pred: list[Document], n: int) -> list[dict[str, Any]]:
        return span_errors(gold, pred, n)


_DISCONTINUOUS_DONE = {
    "fragments": "each fragment was tagged as its own span of the same label",
    "cover": "each was tagged as one span from its first start to its last end",
    "drop": "they were left out of training",
    "error": "refused",
}


def check_outside_weight(value: Any, where: str = "outside_weight") -> float:
    """``value`` as a float in (0, 1], else a ConfigError naming ``where``."""
    try:
        weight = float(value)
    except (TypeError, ValueError):
        weight = float("nan")
    if not 0.0 < weight <= 1.0:  # also refuses NaN
        raise ConfigError(f"{where} must be a number in (0, 1], not {value!r}",
                          fix="use 1.0 for plain decoding, or a smaller weight (e.g. 0.1) to favour entities")
    return weight


def outside_biased(scores: np.ndarray, outside_weight: float) -> np.ndarray:
    """``scores`` with ``log(outside_weight)`` added to the ``O`` tag (index 0) of every word: below 1,
    decoding prefers entities (a threshold on the ``O`` probability). 1.0 returns ``scores`` itself."""
    if outside_weight == 1.0:
        return scores
    out = scores.copy()
    out[:, 0] += np.float32(np.log(outside_weight))
    return out


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _drop_overlaps(spans: list[Span]) -> list[Span]:
    """Keep the longest of overlapping spans (ties: the earliest)."""
    kept: list[Span] = []
    for span in sorted(spans, key=lambda s: (-(s.end - s.start), s.start)):
        if not any(span.overlaps(k) for k in kept):
            kept.append(span)
    return sorted(kept, key=lambda s: s.start)
