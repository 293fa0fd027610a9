"""How well a knowledge base retrieves: recall@k and MRR, dev tuning, and the no-answer threshold.

A question is scored against its *gold passages*: every passage of a document that holds its answer.
For MedQuAD (:func:`medquad_questions`) that is every knowledge-base document whose answer text is the
question's answer (case and white space ignored), so an answer repeated on another page counts too.
``recall@k`` is the share of questions with a gold passage among the first ``k`` hits, ``mrr`` the mean
of ``1 / rank`` of the first gold passage (0 when none is among the ``candidates`` ranked).

:func:`tune` chooses the fusion on dev (a grid over ``alpha`` of weighted fusion, and reciprocal rank
fusion; best MRR, ties to the first) and, with a reranker, its weight. :func:`calibrate` chooses the
threshold of the active score kind on dev: each question is asked twice, once as it is (it should be
answered, with a gold passage first) and once with its topic removed from the candidates: the gold
passages and every passage with the same title (for MedQuAD, the same focus: the pages of other sources
on the same disease too), as if the knowledge base did not cover it (it should say so). The threshold is
the one that makes the most of these decisions right. The removed topic is a proxy for a question the
knowledge base cannot answer: a page on a related topic (another title) may still answer it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from medtune.errors import DataFormatError
from medtune.retrieval.hybrid import Candidates
from medtune.retrieval.kb import KnowledgeBase, score_kind
from medtune.retrieval.passages import answer_key
from medtune.retrieval.settings import KbSettings

__all__ = ["Question", "medquad_questions", "questions_from_file", "Prepared", "prepare", "rankings",
           "retrieval_metrics", "tune", "calibrate", "decision_scores", "decisions", "choose_threshold", "KS"]

KS = (1, 5, 10)
ALPHAS = tuple(round(a, 1) for a in np.linspace(0, 1, 11))
RERANK_WEIGHTS = (0.25, 0.5, 0.75, 1.0)


@dataclass(frozen=True)
class Question:
    """A question and the ids of the knowledge-base documents that answer it."""

    id: str
    text: str
    gold: frozenset[str]
    qtype: str | None = None


def medquad_questions(split: str, *, data_dir: str | Path | None = None) -> list[Question]:
    """The questions of a MedQuAD split, each with every KB document holding its answer (any split)."""
    from medtune import datasets
    from medtune.retrieval.passages import medquad_documents

    by_answer: dict[str, set[str]] = {}
    for doc in medquad_documents(data_dir=data_dir):
        by_answer.setdefault(answer_key(doc.text), set()).add(doc.id)
    return [Question(id=d.id, text=d.text_pair or "", gold=frozenset(by_answer[answer_key(d.text)]),
                     qtype=d.metadata.get("qtype"))
            for d in datasets.load("medquad", split, data_dir=data_dir) if (d.text_pair or "").strip()]


def questions_from_file(path: str | Path) -> list[Question]:
    """Dev questions from JSONL documents: ``text`` = the question, ``metadata.answer_documents`` = the ids
    of the knowledge-base documents that answer it."""
    from medtune.io import read_documents

    out = []
    for n, doc in enumerate(read_documents(path, format="jsonl")):
        gold = doc.metadata.get("answer_documents")
        if not isinstance(gold, list) or not gold or not all(isinstance(g, str) for g in gold):
            raise DataFormatError(f"document {n} (0-based) has no metadata.answer_documents (a list of "
                                  "document ids)", path=path, field="metadata.answer_documents",
                                  fix='give each question {"metadata": {"answer_documents": ["DOC-ID", ...]}}')
        out.append(Question(id=doc.id, text=doc.text, gold=frozenset(gold)))
    if not out:
        raise DataFormatError("no questions in the file", path=path, fix="one JSON document per line")
    return out


@dataclass
class Prepared:
    """Questions with their vectors, candidates and gold rows (computed once, ranked many times)."""

    questions: list[Question]
    vectors: np.ndarray
    candidates: list[Candidates]
    gold_rows: list[set[int]]


def prepare(kb: KnowledgeBase, questions: Sequence[Question], batch: int = 256) -> Prepared:
    rows_of: dict[str, list[int]] = {}
    for row, passage in enumerate(kb.passages):
        rows_of.setdefault(passage.source.document, []).append(row)
    vectors, cands = [], []
    for i in range(0, len(questions), batch):
        v, c = kb.candidates([q.text for q in questions[i:i + batch]])
        vectors.append(v)
        cands.extend(c)
    gold = [{r for d in q.gold for r in rows_of.get(d, ())} for q in questions]
    dim = kb.index.dim
    return Prepared(list(questions), np.concatenate(vectors) if vectors else np.zeros((0, dim), np.float32), cands, gold)


def rankings(kb: KnowledgeBase, prep: Prepared, settings: KbSettings, reranker: Any = None) -> list[np.ndarray]:
    """Each question's candidate rows, best first."""
    out = []
    for q, v, c in zip(prep.questions, prep.vectors, prep.candidates):
        order, _, _ = kb.order(q.text, v, c, top_k=max(KS), settings=settings, reranker=reranker)
        out.append(c.rows[order])
    return out


def first_ranks(ranked: Iterable[np.ndarray], gold: Sequence[set[int]]) -> list[int | None]:
    """Per question, the rank (from 1) of the first gold passage, None when none was retrieved."""
    firsts: list[int | None] = []
    for rows, g in zip(ranked, gold):
        hit = next((i for i, r in enumerate(rows) if int(r) in g), None)
        firsts.append(None if hit is None else hit + 1)
    return firsts


def retrieval_metrics(ranked: Iterable[np.ndarray], gold: Sequence[set[int]],
                      firsts: list[int | None] | None = None) -> dict[str, Any]:
    """recall@1/5/10 and MRR (see the module docstring); ``firsts``: :func:`first_ranks`, if already known."""
    firsts = first_ranks(ranked, gold) if firsts is None else firsts
    n = len(firsts)
    out: dict[str, Any] = {"questions": n}
    for k in KS:
        out[f"recall@{k}"] = round(sum(1 for f in firsts if f is not None and f <= k) / n, 4) if n else 0.0
    out["mrr"] = round(sum(1.0 / f for f in firsts if f is not None) / n, 4) if n else 0.0
    out["not_in_candidates"] = sum(1 for f in firsts if f is None)
    return out


def _with(settings: KbSettings, section: str, **values: Any) -> KbSettings:
    return settings.model_copy(update={section: getattr(settings, section).model_copy(update=values)})


def tune(kb: KnowledgeBase, prep: Prepared) -> dict[str, Any]:
    """Choose fusion (and the reranker's weight) on ``prep``'s questions; the kb's settings are updated."""
    base = _with(kb.settings, "search", mode="hybrid")
    grid = [("weighted", a) for a in ALPHAS] + [("rrf", None)]
    table = []
    for fusion, alpha in grid:
        values = {"fusion": fusion} if alpha is None else {"fusion": fusion, "alpha": alpha}
        m = retrieval_metrics(rankings(kb, prep, _with(base, "search", **values), reranker=None), prep.gold_rows)
        table.append({**values, **m})
    best = max(table, key=lambda row: row["mrr"])  # max keeps the first of equal rows
    search = {"mode": "hybrid", "fusion": best["fusion"], **({"alpha": best["alpha"]} if "alpha" in best else {})}
    kb.configure(search=search)
    result: dict[str, Any] = {"questions": len(prep.questions), "fusion": table, "chosen": search}
    if kb.reranker is not None:
        weights = []
        for w in RERANK_WEIGHTS:
            m = retrieval_metrics(rankings(kb, prep, _with(kb.settings, "rerank", weight=w), reranker=kb.reranker),
                                  prep.gold_rows)
            weights.append({"weight": w, **m})
        chosen = max(weights, key=lambda row: row["mrr"])
        kb.configure(rerank={"weight": chosen["weight"]})
        result["rerank"] = weights
        result["chosen_rerank_weight"] = chosen["weight"]
    return result


def _top_score(kb: KnowledgeBase, q: Question, v: np.ndarray, c: Candidates) -> tuple[float | None, int | None]:
    order, _, reranked = kb.order(q.text, v, c, top_k=1)
    if not len(order):
        return None, None
    pos = int(order[0])
    return (reranked.get(pos, float(c.dense[pos])), int(c.rows[pos]))


def topic_rows(kb: KnowledgeBase, c: Candidates, gold: set[int]) -> set[int]:
    """The gold rows and every candidate about the same topic (the same title as a gold passage)."""
    titles = {(kb.passages[r].source.title or "").lower() for r in gold} - {""}
    return set(gold) | {int(r) for r in c.rows if (kb.passages[int(r)].source.title or "").lower() in titles}


def decision_scores(kb: KnowledgeBase, prep: Prepared) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(best score of each question, whether that best passage is gold, best score with the gold removed)."""
    answerable: list[tuple[float, bool]] = []
    held_out: list[float] = []
    for q, v, c, gold in zip(prep.questions, prep.vectors, prep.candidates, prep.gold_rows):
        score, row = _top_score(kb, q, v, c)
        if score is not None:
            answerable.append((score, row in gold))
        score, _ = _top_score(kb, q, v, c.without(topic_rows(kb, c, gold)))
        if score is not None:
            held_out.append(score)
    return (np.array([s for s, _ in answerable], dtype=np.float64), np.array([ok for _, ok in answerable], dtype=bool),
            np.array(held_out, dtype=np.float64))


def decisions(pos: np.ndarray, correct: np.ndarray, neg: np.ndarray, threshold: float) -> dict[str, Any]:
    """How the answer / no-answer decisions at ``threshold`` turn out (see the module docstring)."""
    answered = pos >= threshold
    total = len(pos) + len(neg)
    right = int(np.sum(answered & correct) + np.sum(neg < threshold))
    return {"questions": len(pos), "held_out": len(neg), "accuracy": round(right / total, 4) if total else None,
            "answerable_answered": round(float(answered.mean()), 4) if len(pos) else None,
            "answered_correct": round(float(correct[answered].mean()), 4) if answered.any() else None,
            "held_out_refused": round(float((neg < threshold).mean()), 4) if len(neg) else None,
            "top1_correct": round(float(correct.mean()), 4) if len(pos) else None}


def choose_threshold(pos: np.ndarray, correct: np.ndarray, neg: np.ndarray) -> float:
    """The threshold that makes the most decisions right (the middle of the interval of such thresholds)."""
    candidates = np.unique(np.concatenate([pos, neg, [np.inf]]))
    counts = np.array([int(np.sum((pos >= t) & correct) + np.sum(neg < t)) for t in candidates])
    # right(t) is constant for t in (candidates[i - 1], candidates[i]]: the best thresholds form one interval,
    # (candidates[best - 1], candidates[hi]]; take its middle, away from any dev score
    best = int(np.argmax(counts))
    hi = best
    while hi + 1 < len(candidates) and counts[hi + 1] == counts[best]:
        hi += 1
    lo_value = float(candidates[best - 1]) if best > 0 else float(candidates[best]) - 0.05
    hi_value = float(candidates[hi]) if np.isfinite(candidates[hi]) else lo_value + 0.05
    return (lo_value + hi_value) / 2


def calibrate(kb: KnowledgeBase, prep: Prepared) -> dict[str, Any]:
    """Choose and store (in ``kb.settings``) the threshold of the active score kind (module docstring)."""
    kind = score_kind(kb.settings)
    pos, correct, neg = decision_scores(kb, prep)
    if not len(pos):
        raise DataFormatError("no dev question could be scored", fix="give dev questions with answers in the kb")
    threshold = round(choose_threshold(pos, correct, neg), 6)
    info = decisions(pos, correct, neg, threshold)
    if kind == "model":
        info["model"] = kb.settings.rerank.model
    thresholds = {**kb.settings.answer.thresholds, kind: threshold}
    calibration = {**kb.settings.answer.calibration, kind: info}
    kb.configure(answer={"thresholds": thresholds, "calibration": calibration})
    return {"kind": kind, "threshold": threshold, **info}
