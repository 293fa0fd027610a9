"""Token blocks for masked-LM pretraining, with word boundaries and document boundaries recorded.

Each document is tokenised once by a fast tokenizer; ``word_ids()`` says which word every word piece
belongs to (no "##" guessing), so the masking can take whole words. Two packings:

* ``cross_document=False`` (the default): **document-aligned**. A block holds ``[CLS]`` + the pieces of
  one document + ``[SEP]``; a document longer than a block is cut into several blocks at word
  boundaries (a word is split only when it is longer than a block), and the short tail stays a short
  block (``group_by_length`` batches it with other short blocks, so little is padded). No block holds
  two documents' text: ``PackedBlocks.block_doc`` records the one document of every block.
* ``cross_document=True``: the documents form one stream, each followed by ``[SEP]``, cut every
  ``max_length`` tokens (the classic ``group_texts`` recipe): fuller blocks, but a block may end in
  one document and go on in the next, separated by that ``[SEP]``.

Blocks live in two flat int32 arrays (tokens, word ids) and an offset table, so millions of tokens
fit in tens of megabytes. Word ids are -1 at special tokens, which are therefore never masked.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from medtune.errors import ModelError

SPECIAL = -1  # the word id of [CLS] / [SEP] / [PAD]
_TOKENIZE_BATCH = 256


def check_tokenizer(tokenizer: Any, where: str) -> None:
    if not getattr(tokenizer, "is_fast", False):
        raise ModelError(f"{where}: its tokenizer is not a fast (Rust) tokenizer, so it gives no word "
                         "boundaries (word_ids) for whole-word masking",
                         fix="use a model directory whose tokenizer.json loads as a fast tokenizer")
    missing = [n for n in ("cls_token_id", "sep_token_id", "pad_token_id", "mask_token_id")
               if getattr(tokenizer, n, None) is None]
    if missing:
        raise ModelError(f"{where}: its tokenizer has no {', '.join(missing)}",
                         fix="use a masked-LM encoder of the BERT family")


def tokenize_documents(tokenizer: Any, texts: Iterable[str]) -> Iterator[tuple[list[int], list[int]]]:
    """``(input_ids, word_ids)`` of every text, without special tokens (word ids start at 0 per text)."""
    batch: list[str] = []

    def flush() -> Iterator[tuple[list[int], list[int]]]:
        enc = tokenizer(batch, add_special_tokens=False, verbose=False)
        for i, ids in enumerate(enc["input_ids"]):
            words = enc.word_ids(i)
            yield list(ids), [SPECIAL if w is None else int(w) for w in words]

    for text in texts:
        batch.append(text)
        if len(batch) == _TOKENIZE_BATCH:
            yield from flush()
            batch = []
    if batch:
        yield from flush()


def word_aligned_pieces(word_ids: Sequence[int], body: int) -> list[tuple[int, int]]:
    """``[start, end)`` cuts of a document of ``len(word_ids)`` tokens into pieces of at most ``body``
    tokens, each cut between two words (inside a word only when one word is longer than ``body``)."""
    n, start, out = len(word_ids), 0, []
    while start < n:
        end = min(start + body, n)
        if end < n and word_ids[end] == word_ids[end - 1] and word_ids[end] != SPECIAL:
            back = end - 1
            while back > start and word_ids[back - 1] == word_ids[end]:
                back -= 1
            if back > start:
                end = back
        out.append((start, end))
        start = end
    return out


@dataclass
class PackedBlocks:
    """Blocks as flat arrays; ``self[i]`` is ``{"input_ids": [...], "word_ids": [...]}``."""

    tokens: np.ndarray
    words: np.ndarray
    offsets: np.ndarray  # block i is tokens[offsets[i]:offsets[i + 1]]
    block_doc: np.ndarray  # document-aligned: the document of each block; stream: the first document
    documents: int
    text_tokens: int  # tokens of document text (special tokens not counted)
    cross_document: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    #: the last document whose tokens are in each block (== ``block_doc`` in document-aligned packing)
    block_last_doc: np.ndarray | None = None

    def last_docs(self) -> np.ndarray:
        return self.block_doc if self.block_last_doc is None else self.block_last_doc

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        return {"input_ids": self.tokens[a:b].tolist(), "word_ids": self.words[a:b].tolist()}

    def lengths(self) -> list[int]:
        return np.diff(self.offsets).tolist()

    def subset(self, indices: Sequence[int]) -> "BlockView":
        return BlockView(self, list(indices))


@dataclass
class BlockView:
    """Some blocks of a :class:`PackedBlocks` (the training or the held-out side)."""

    blocks: PackedBlocks
    indices: list[int]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        return self.blocks[self.indices[i]]

    def lengths(self) -> list[int]:
        lengths = np.diff(self.blocks.offsets)
        return [int(lengths[i]) for i in self.indices]


def pack(tokenizer: Any, texts: Iterable[str], max_length: int, *, cross_document: bool = False) -> PackedBlocks:
    """Tokenise ``texts`` (one per document) and pack them into blocks (see the module docstring)."""
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    body = max_length - 2
    if body < 1:
        raise ValueError("max_length must leave room for [CLS] and [SEP]")
    tokens: list[np.ndarray] = []
    words: list[np.ndarray] = []
    lengths: list[int] = []
    block_doc: list[int] = []
    block_last: list[int] = []
    documents = text_tokens = 0
    stream_ids: list[int] = []
    stream_words: list[int] = []
    stream_docs: list[int] = []  # the document of every stream token (its closing [SEP] included)
    word_base = 0

    def emit(ids: Sequence[int], wids: Sequence[int], doc: int, last: int | None = None) -> None:
        tokens.append(np.asarray([cls_id, *ids, sep_id], dtype=np.int32))
        words.append(np.asarray([SPECIAL, *wids, SPECIAL], dtype=np.int32))
        lengths.append(len(ids) + 2)
        block_doc.append(doc)
        block_last.append(doc if last is None else last)

    for doc, (ids, wids) in enumerate(tokenize_documents(tokenizer, texts)):
        documents += 1
        if not ids:
            continue
        text_tokens += len(ids)
        if not cross_document:
            for a, b in word_aligned_pieces(wids, body):
                emit(ids[a:b], wids[a:b], doc)
            continue
        stream_ids.extend(ids)
        stream_ids.append(sep_id)
        stream_words.extend(w + word_base for w in wids)
        stream_words.append(SPECIAL)
        stream_docs.extend([doc] * (len(ids) + 1))
        word_base += max(wids) + 1
        while len(stream_ids) >= body:
            emit(stream_ids[:body], stream_words[:body], stream_docs[0], stream_docs[body - 1])
            stream_ids, stream_words, stream_docs = stream_ids[body:], stream_words[body:], stream_docs[body:]
    if cross_document and len(stream_ids) > body // 4:  # keep a long enough tail
        emit(stream_ids, stream_words, stream_docs[0], stream_docs[-1])
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    empty = np.zeros(0, dtype=np.int32)
    return PackedBlocks(tokens=np.concatenate(tokens) if tokens else empty,
                        words=np.concatenate(words) if words else empty, offsets=offsets,
                        block_doc=np.asarray(block_doc, dtype=np.int64), documents=documents,
                        text_tokens=text_tokens, cross_document=cross_document,
                        block_last_doc=np.asarray(block_last, dtype=np.int64))


def _doc_order(docs: np.ndarray, seed: int, doc_keys: Sequence[str] | None) -> list[int]:
    """Documents in a seeded order that depends on each document's key (its text hash), not on its
    position: the same documents come first when the corpus is read in another order or grows.
    Without keys, a seeded shuffle of the positions (the split of checkpoints of an earlier medtune)."""
    if doc_keys is None:
        order = docs.copy()
        np.random.default_rng(seed).shuffle(order)
        return [int(d) for d in order]

    def rank(d: int) -> bytes:
        return hashlib.blake2b(f"{seed}\x00{doc_keys[d]}".encode(), digest_size=8).digest()

    return sorted((int(d) for d in docs), key=rank)


def held_out_split(blocks: PackedBlocks, fraction: float, max_blocks: int, seed: int,
                   doc_keys: Sequence[str] | None = None) -> tuple[list[int], list[int]]:
    """``(train, held_out)`` block indices: the blocks of a share of the documents, chosen in the order
    of a seeded hash of ``doc_keys[d]`` (each document's text hash; a seeded shuffle when None),
    until ``fraction`` of the blocks (at most ``max_blocks``) are held out.

    No document's text is on both sides. In stream packing (``cross_document=True``) a block can hold
    the end of one document and the start of the next: a block with a held-out document and another one
    is used on neither side.
    """
    n = len(blocks)
    if fraction <= 0 or n < 2:
        return list(range(n)), []
    first, last = blocks.block_doc, blocks.last_docs()
    docs = np.unique(np.concatenate([first, last]))
    per_doc = np.bincount(first, minlength=int(last.max()) + 1)
    target = min(max_blocks, max(1, int(round(fraction * n))))
    chosen: set[int] = set()
    count = 0
    for d in _doc_order(docs, seed, doc_keys):
        if count >= target or len(chosen) + 1 >= len(docs):
            break
        chosen.add(d)
        count += int(per_doc[d])
    train, held = [], []
    for i in range(n):
        inside = [d in chosen for d in range(int(first[i]), int(last[i]) + 1)]
        if not any(inside):
            train.append(i)
        elif all(inside):
            held.append(i)
    return train, held[:max_blocks]
