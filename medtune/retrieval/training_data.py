"""Training pairs for the cross-encoder reranker, from MedQuAD, with BM25 hard negatives.

For each question of a split, one positive pair (the question with the gold passage BM25 ranks first)
and ``negatives`` negative pairs (the passages BM25 ranks highest that do not hold the answer). Both
the passages and the BM25 index come from the *same split only*: a training pair never shows a dev or
test passage, and the dev file never a training one. A pair is a medtune document for the
classification task: ``text`` = the passage as indexed (title, section, text), ``text_pair`` = the
question, ``labels`` = ``["relevant"]`` or ``["irrelevant"]``, ``metadata`` = the question's and the
passage's ids and the passage's BM25 rank. Train with ``configs/medquad-reranker.yaml``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medtune.document import Document
from medtune.retrieval.bm25 import Bm25Index
from medtune.retrieval.passages import answer_key, chunk_documents, indexed_text, medquad_documents
from medtune.retrieval.settings import KbSettings

__all__ = ["reranker_pairs", "write_reranker_data", "POSITIVE", "NEGATIVE"]

POSITIVE, NEGATIVE = "relevant", "irrelevant"


def reranker_pairs(split: str, *, negatives: int = 3, depth: int = 30, settings: KbSettings | None = None,
                   data_dir: str | Path | None = None, max_questions: int | None = None) -> tuple[list[Document], dict]:
    """The pairs of one MedQuAD split (see the module docstring) and their counts."""
    from medtune import datasets

    settings = settings or KbSettings()
    docs = medquad_documents([split], data_dir=data_dir)
    passages = chunk_documents(docs, settings.chunk)
    texts = [indexed_text(p, settings.chunk.prefix) for p in passages]
    bm25 = Bm25Index.build(texts, settings.bm25)
    key_of_doc = {d.id: answer_key(d.text) for d in docs}
    rows_of_key: dict[str, list[int]] = {}
    for row, p in enumerate(passages):
        rows_of_key.setdefault(key_of_doc[p.source.document], []).append(row)
    out: list[Document] = []
    counts = {"questions": 0, "positives": 0, "negatives": 0, "without_gold_in_top": 0}
    for pair in datasets.load("medquad", split, data_dir=data_dir):
        if max_questions is not None and counts["questions"] >= max_questions:
            break
        question = (pair.text_pair or "").strip()
        if not question:
            continue
        key = answer_key(pair.text)
        gold = rows_of_key[key]
        rows, _ = bm25.search(question, depth)
        ranked = [int(r) for r in rows]
        gold_ranked = [r for r in ranked if r in set(gold)]
        if not gold_ranked:
            counts["without_gold_in_top"] += 1
        positive = gold_ranked[0] if gold_ranked else gold[0]
        counts["questions"] += 1
        chosen = [(positive, POSITIVE)] + [(r, NEGATIVE) for r in ranked
                                           if key_of_doc[passages[r].source.document] != key][:negatives]
        for k, (row, label) in enumerate(chosen):
            meta: dict[str, Any] = {"question": pair.id, "passage": passages[row].id,
                                    "bm25_rank": ranked.index(row) + 1 if row in ranked else None}
            out.append(Document(id=f"{pair.id}+{k}", text=texts[row], text_pair=question, labels=[label],
                                metadata=meta))
            counts["positives" if label == POSITIVE else "negatives"] += 1
    return out, counts


def write_reranker_data(output: str | Path, *, negatives: int = 3, depth: int = 30,
                        data_dir: str | Path | None = None, max_questions: int | None = None) -> dict[str, Any]:
    """``train.jsonl`` and ``dev.jsonl`` under ``output`` (each written atomically); their counts."""
    from medtune.io.jsonl import write_jsonl

    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {}
    for split in ("train", "dev"):
        pairs, counts = reranker_pairs(split, negatives=negatives, depth=depth, data_dir=data_dir,
                                       max_questions=max_questions)
        write_jsonl(pairs, output / f"{split}.jsonl")
        summary[split] = {"file": str(output / f"{split}.jsonl"), **counts}
    return summary
