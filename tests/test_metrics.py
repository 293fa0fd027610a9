"""Span metrics: strict character-span F1 equals seqeval's strict IOB2 F1 on IOB corpora."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from seqeval.metrics import f1_score
from seqeval.scheme import IOB2

from medtune.document import Document, Span
from medtune.io.conll import read_conll, tags_from_spans
from medtune.evaluation.metrics import classification_metrics, span_metrics


def seqeval_f1(gold: list[Document], pred: list[Document]) -> float:
    y_true = [tags_from_spans(g, g.metadata["tokens"]) for g in gold]
    y_pred = [tags_from_spans(p, g.metadata["tokens"]) for g, p in zip(gold, pred)]
    return f1_score(y_true, y_pred, mode="strict", scheme=IOB2)


def iob_docs(seed: int, n: int = 12) -> list[Document]:
    """Token-only documents as the CoNLL reader builds them (text = tokens joined by spaces)."""
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        tokens = [rng.choice(["fever", "of", "the", "BRCA1", "-", "cancer", "("]) for _ in range(rng.randint(1, 15))]
        offsets, pos = [], 0
        for tok in tokens:
            offsets.append([pos, pos + len(tok)])
            pos += len(tok) + 1
        doc = Document(id=f"s{i}", text=" ".join(tokens), metadata={"tokens": offsets})
        k = 0
        while k < len(tokens):
            if rng.random() < 0.3:
                last = min(k + rng.randint(0, 2), len(tokens) - 1)
                doc.add_span(offsets[k][0], offsets[last][1], rng.choice(["Disease", "Gene"]))
                k = last + 1 + rng.randint(0, 1)
            else:
                k += 1
        docs.append(doc)
    return docs


def perturb(docs: list[Document], seed: int) -> list[Document]:
    """Predictions that differ from gold the way models do: missed, extra, shifted and relabelled spans."""
    rng = random.Random(seed)
    out = []
    for doc in docs:
        pred = doc.copy(annotations=False)
        tokens = doc.metadata["tokens"]
        for span in doc.spans:
            r = rng.random()
            if r < 0.15:
                continue
            if r < 0.3:
                span = Span(span.start, span.end, "Gene" if span.label == "Disease" else "Disease")
            elif r < 0.45:
                ends = [t[1] for t in tokens if span.start < t[1]]
                span = Span(span.start, rng.choice(ends), span.label)
            pred.spans.append(span)
        if rng.random() < 0.3 and tokens:
            t = rng.choice(tokens)
            if not any(s.start < t[1] and t[0] < s.end for s in pred.spans):
                pred.spans.append(Span(t[0], t[1], "Disease"))
        # drop overlaps so the prediction stays representable in IOB2
        kept: list[Span] = []
        for s in sorted(pred.spans, key=lambda s: s.start):
            if not any(s.overlaps(k) for k in kept):
                kept.append(s)
        pred.spans = kept
        out.append(pred)
    return out


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 100_000))
def test_strict_span_f1_equals_seqeval_strict_iob2(seed):
    gold = iob_docs(seed)
    pred = perturb(gold, seed + 1)
    assert span_metrics(gold, pred)["f1"] == pytest.approx(seqeval_f1(gold, pred), abs=1e-12)


def test_model_predictions_on_a_conll_file_match_seqeval(tiny_ner_model, tmp_path):
    import medtune

    path = tmp_path / "gold.conll"
    path.write_text("The\tO\npatient\tO\nhas\tO\nbreast\tB-Disease\ncancer\tI-Disease\nand\tO\nfever\tB-Disease\n.\tO\n\n"
                    "A\tO\nmutation\tO\nin\tO\nthe\tO\ngene\tB-Gene\ncauses\tO\nfever\tB-Disease\n\n"
                    "She\tO\ndenies\tO\ncough\tO\n.\tO\n", encoding="utf-8")
    gold = list(read_conll(path))
    pred = list(medtune.load(tiny_ner_model, mode="fp32").pipe(gold))
    result = span_metrics(gold, pred)
    assert result["counts"]["tp"] > 0
    assert result["f1"] == pytest.approx(seqeval_f1(gold, pred), abs=1e-12)


def test_span_metrics_by_hand():
    g = Document("a", "xx yy zz", spans=[Span(0, 2, "A"), Span(3, 5, "B"), Span(6, 8, "A")])
    p = Document("a", "xx yy zz", spans=[Span(0, 2, "A"), Span(3, 8, "B")])
    m = span_metrics([g], [p])
    assert m["precision"] == pytest.approx(1 / 2) and m["recall"] == pytest.approx(1 / 3)
    assert m["per_type"]["A"]["f1"] == pytest.approx(2 * 1 * 0.5 / 1.5)
    assert m["per_type"]["B"]["f1"] == 0.0
    assert m["per_type"]["B"]["lenient_f1"] == 1.0  # overlap counts when lenient
    assert m["lenient"]["micro"]["f1"] > m["f1"]


def test_classification_metrics_ignore_and_positive_label():
    labels = ["False", "CPR:3", "CPR:4"]
    gold = [Document(str(i), "t", labels=[lab]) for i, lab in enumerate(["False", "CPR:3", "CPR:4", "CPR:3"])]
    pred = [Document(str(i), "t", labels=[lab]) for i, lab in enumerate(["CPR:3", "CPR:3", "False", "CPR:3"])]
    m = classification_metrics(gold, pred, labels, multi_label=False, ignore_labels=["False"])
    # positives: gold 3 (CPR:3 x2, CPR:4), predicted 3 (CPR:3 x3), correct 2 -> P = R = 2/3
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["accuracy"] == pytest.approx(0.5)
    b = classification_metrics(gold, pred, labels, multi_label=False, positive_label="CPR:3")
    assert b["f1"] == pytest.approx(2 * 1.0 * (2 / 3) / (1 + 2 / 3))


def test_metrics_refuse_misaligned_documents():
    with pytest.raises(ValueError, match="order differs"):
        span_metrics([Document("a", "x")], [Document("b", "x")])
