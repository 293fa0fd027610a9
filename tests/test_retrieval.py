"""Retrieval QA (medtune.retrieval): chunking with sources, BM25, the faiss index, hybrid fusion,
reranking, the knowledge-base directory, the no-answer threshold, dev tuning and calibration.

Tiny made-up corpora and a deterministic hashing encoder injected through the API (no weights); one
test runs the real TextEncoder path on the tiny random BERT of conftest.py. Tests marked ``data`` read
the real MedQuAD under MEDTUNE_DATA_DIR.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys

import numpy as np
import pytest

from medtune.document import Document
from medtune.errors import ConfigError, DataFormatError, MissingExtraError, ModelError
from medtune.retrieval import KbSettings, KnowledgeBase
from medtune.retrieval.bm25 import Bm25Index, top_k
from medtune.retrieval.evaluate import Question, calibrate, prepare, rankings, retrieval_metrics, topic_rows, tune
from medtune.retrieval.hybrid import Candidates, fused_scores, ranking
from medtune.retrieval.index import VectorIndex
from medtune.retrieval.passages import SourceSet, chunk_document, indexed_text, read_sources
from medtune.retrieval.reader import AnswerSpan
from medtune.retrieval.rerank import MaxSimReranker, rerank_order
from medtune.retrieval.settings import Bm25Settings, ChunkSettings, IndexSettings, SearchSettings

pytest.importorskip("bm25s")
pytest.importorskip("faiss")


class HashEncoder:
    """Bag of hashed words (stems: the first five letters), L2-normalised: similar wording, similar vector."""

    def __init__(self, dim: int = 64, salt: str = "") -> None:
        self.dim, self.salt = dim, salt
        self.calls = 0

    def encode(self, texts):
        self.calls += 1
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"[a-z]{3,}", text.lower()):
                h = int(hashlib.sha256((self.salt + word[:5]).encode()).hexdigest(), 16)
                out[i, h % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1.0, norms)


DOCS = [
    ("fever", "Fever", "Treatment", "Fever is treated with rest and fluids. Paracetamol lowers a high fever."),
    ("asthma", "Asthma", "Symptoms", "Asthma causes wheezing and shortness of breath. Attacks come at night."),
    ("gout", "Gout", "Causes", "Gout is caused by uric acid crystals in the joints. Red meat raises uric acid."),
    ("anemia", "Anemia", "Treatment", "Iron tablets treat iron deficiency anemia. Vitamin C helps absorb iron."),
    ("migraine", "Migraine", "Symptoms", "A migraine is a throbbing headache on one side. Light and noise hurt."),
    ("eczema", "Eczema", "Treatment", "Moisturisers and steroid creams treat eczema. Avoid harsh soaps."),
]
QUESTIONS = [("How is fever treated?", "fever"), ("What are the symptoms of asthma?", "asthma"),
             ("What causes gout?", "gout"), ("How is anemia treated?", "anemia"),
             ("What are the symptoms of migraine?", "migraine"), ("How is eczema treated?", "eczema")]


def corpus() -> list[Document]:
    return [Document(id=i, text=t, metadata={"title": ti, "section": se, "url": f"https://example.org/{i}"})
            for i, ti, se, t in DOCS]


@pytest.fixture
def kb(tmp_path):
    settings = KbSettings.model_validate({"answer": {"thresholds": {"dense": 0.3}}})
    return KnowledgeBase.from_sources(SourceSet(corpus(), [{"kind": "test"}]), tmp_path / "kb",
                                      settings=settings, encoder=HashEncoder())


# ------------------------------------------------------------------------------------- passages
def test_chunks_are_whole_sentences_with_true_offsets_and_sources():
    text = ("First sentence has five words. Second one is here too. "
            + " ".join(f"W{i}" for i in range(25)) + ". Last short one.")
    doc = Document(id="d1", text=text, metadata={"title": "T", "section": "S", "url": "u", "file": "f.txt"})
    passages = chunk_document(doc, ChunkSettings(max_words=10))
    assert [p.id for p in passages] == [f"d1#{k}" for k in range(len(passages))]
    for p in passages:
        assert p.text == text[p.source.start:p.source.end] and p.text.strip() == p.text
        assert len(p.text.split()) <= 10
        assert (p.source.document, p.source.title, p.source.section, p.source.url, p.source.file) == \
            ("d1", "T", "S", "u", "f.txt")
    assert passages[0].text == "First sentence has five words. Second one is here too."  # 10 words fit
    assert [p.text.split()[0] for p in passages[1:]] == ["W0", "W10", "W20"]  # the long one cut between words
    assert passages[-1].text.endswith("W24. Last short one.")  # its last piece packed with the next sentence
    assert "".join(p.text for p in passages).replace(" ", "") == text.replace(" ", "")  # nothing lost
    overlapping = chunk_document(doc, ChunkSettings(max_words=12, overlap_sentences=1))
    assert overlapping[1].source.start < overlapping[0].source.end  # the second repeats a sentence
    assert chunk_document(Document(id="blank", text="  \n "), ChunkSettings()) == []
    p = passages[0]
    assert indexed_text(p, "title_section") == "T. S. " + p.text
    assert indexed_text(p, "title") == "T. " + p.text and indexed_text(p, "none") == p.text


def test_sources_keep_ids_files_and_never_the_question(tmp_path):
    folder = tmp_path / "notes"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("Aspirin lowers a fever.", encoding="utf-8")
    (folder / "sub" / "b.txt").write_text("Gout hurts.", encoding="utf-8")
    (folder / ".hidden.txt").write_text("skip me", encoding="utf-8")
    jsonl = tmp_path / "qa.jsonl"
    jsonl.write_text(json.dumps({"id": "q1", "text": "The answer text.", "text_pair": "SECRET QUESTION?",
                                 "metadata": {"title": "Title", "url": "https://x"}}) + "\n", encoding="utf-8")
    got = read_sources([folder, jsonl])
    assert [d.id for d in got.documents] == ["a", "sub/b", "q1"]
    assert got.documents[1].metadata["file"] == "sub/b.txt"
    assert got.documents[2].text_pair is None and got.documents[2].metadata["title"] == "Title"
    assert [s["documents"] for s in got.sources] == [2, 1] and all(len(s["sha256"]) == 64 for s in got.sources)
    before = got.sources[0]["sha256"]
    (folder / "a.txt").write_text("Aspirin lowers a high fever.", encoding="utf-8")
    assert read_sources([folder]).sources[0]["sha256"] != before
    kb = KnowledgeBase.from_sources(got, tmp_path / "kb", settings=KbSettings(), encoder=HashEncoder())
    assert "SECRET" not in (tmp_path / "kb" / "passages.jsonl").read_text(encoding="utf-8")
    assert kb.manifest["counts"] == {"documents": 3, "passages": 3, "sources": 2}
    with pytest.raises(DataFormatError, match="not found"):
        read_sources([tmp_path / "nowhere.jsonl"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataFormatError, match="no .txt files"):
        read_sources([tmp_path / "empty"])


# ------------------------------------------------------------------------------------- indexes
def test_bm25_ranks_the_obvious_passage_first_and_scores_every_row():
    texts = [t for _, _, _, t in DOCS]
    index = Bm25Index.build(texts, Bm25Settings())
    rows, scores = index.search("uric acid crystals", 3)
    assert rows[0] == 2 and scores[0] > scores[1]
    assert index.scores("wheezing breath").argmax() == 1
    assert index.scores("treated").shape == (len(texts),)  # stemmed: "treated" matches "treat"
    assert index.scores("treated")[[0, 3, 5]].min() > 0 and index.scores("treated")[1] == 0
    assert not index.scores("zzzz unknownword").any() and not index.scores("the of and").any()
    assert top_k(np.array([1.0, 3.0, 3.0, 2.0]), 3)[0].tolist() == [1, 2, 3]  # ties by the lower row


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_vector_index_nearest_neighbours(kind, tmp_path):
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(400, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    settings = IndexSettings(kind=kind, nlist=8, nprobe=8)  # ivf: every cluster searched -> exact
    index = VectorIndex.build(vectors, settings)
    queries = vectors[:20] + 0.05 * rng.normal(size=(20, 16)).astype(np.float32)
    rows, scores = index.search(queries, 5)
    exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :5]
    if kind in ("flat", "ivf"):
        assert (rows == exact).all()
        assert np.allclose(scores, np.take_along_axis(queries @ vectors.T, exact, 1), atol=1e-5)
    else:  # approximate: the nearest one is found
        assert (rows[:, 0] == exact[:, 0]).mean() >= 0.95
    assert np.allclose(index.vectors(np.array([3, 7])), vectors[[3, 7]], atol=1e-6)
    index.save(tmp_path / "v.faiss")
    again = VectorIndex.load(tmp_path / "v.faiss", settings)
    assert (again.search(queries, 5)[0] == rows).all()
    (tmp_path / "bad.faiss").write_bytes(b"not an index")
    with pytest.raises(ModelError, match="cannot be read"):
        VectorIndex.load(tmp_path / "bad.faiss", settings)


def test_ivf_needs_enough_passages():
    with pytest.raises(ConfigError, match="flat"):
        VectorIndex.build(np.eye(4, dtype=np.float32), IndexSettings(kind="ivf", nlist=10))


# ------------------------------------------------------------------------------------- fusion
def test_fusion_modes_by_hand():
    c = Candidates(rows=np.array([10, 11, 12, 13]), bm25=np.array([9.0, 1.0, 5.0, 0.0], np.float32),
                   dense=np.array([0.1, 0.9, 0.5, 0.5], np.float32))
    order = lambda **kw: c.rows[ranking(c, SearchSettings(**kw))].tolist()  # noqa: E731
    assert order(mode="bm25") == [10, 12, 11, 13]
    assert order(mode="dense") == [11, 12, 13, 10]  # the tie 12/13 by the row
    assert order(mode="hybrid", alpha=1.0) == order(mode="dense")
    assert order(mode="hybrid", alpha=0.0) == [10, 12, 11, 13]
    weighted = fused_scores(c, SearchSettings(mode="hybrid", alpha=0.5))
    assert np.allclose(weighted, 0.5 * (c.dense - 0.1) / 0.8 + 0.5 * c.bm25 / 9.0)
    rrf = fused_scores(c, SearchSettings(mode="hybrid", fusion="rrf", rrf_k=60))
    dense_rank, bm25_rank = np.array([4, 1, 2, 3]), np.array([1, 3, 2, 4])
    assert np.allclose(rrf, 1 / (60 + dense_rank) + 1 / (60 + bm25_rank))
    assert order(mode="hybrid", fusion="rrf") == [11, 12, 10, 13]  # .032266 > .032258 > .032018 > .031498


def test_rerank_order_fuses_the_two_rankings():
    order = np.array([0, 1, 2, 3, 4])
    rows = np.array([100, 101, 102])
    scores = np.array([0.1, 0.2, 0.9])  # the reranker prefers the third
    assert rerank_order(order, scores, 1.0, rows).tolist() == [2, 1, 0, 3, 4]
    assert rerank_order(order, scores, 0.0, rows).tolist() == [0, 1, 2, 3, 4]
    assert rerank_order(order, scores, 0.5, rows).tolist()[3:] == [3, 4]  # below the depth: unchanged


def test_maxsim_finds_the_one_answering_sentence_and_caches():
    encoder = HashEncoder()
    rer = MaxSimReranker(encoder)
    q = encoder.encode(["uric acid crystals"])[0]
    texts = ["Many words about weather and sport and travel and food. Uric acid crystals.",
             "Uric things and weather acid sport crystals travel mixed in one long sentence with more words"]
    scores = rer.scores("q", q, ["a", "b"], texts)
    assert scores[0] > scores[1] and scores[0] == pytest.approx(1.0, abs=1e-5)
    calls = encoder.calls
    assert np.allclose(rer.scores("q", q, ["a", "b"], texts), scores) and encoder.calls == calls


# ------------------------------------------------------------------------------------- the kb
def test_kb_answers_with_sources_and_round_trips(kb, tmp_path):
    result = kb.ask("How is anemia treated?", top_k=3)
    assert result.answered and result.answer.passage.source.document == "anemia"
    src = result.answer.passage.source
    assert (src.title, src.section, src.url) == ("Anemia", "Treatment", "https://example.org/anemia")
    assert result.answer.passage.text == DOCS[3][3][src.start:src.end]
    assert [h.rank for h in result.hits] == [1, 2, 3] and set(result.hits[0].scores) == {"bm25", "dense", "fused"}
    assert result.score == result.hits[0].score == pytest.approx(result.hits[0].scores["dense"])
    d = result.to_dict()
    assert d["answer"]["source"]["url"] == src.url and d["score_kind"] == "dense" and len(d["hits"]) == 3
    json.dumps(d)

    again = KnowledgeBase.load(tmp_path / "kb", encoder=HashEncoder())
    for question, _ in QUESTIONS:
        a = [(h.passage.id, round(h.score, 6)) for h in kb.search([question], 6)[0]]
        b = [(h.passage.id, round(h.score, 6)) for h in again.search([question], 6)[0]]
        assert a == b
    manifest = json.loads((tmp_path / "kb" / "manifest.json").read_text())
    assert manifest["format"] == "medtune-kb" and manifest["counts"]["passages"] == len(kb.passages)
    assert manifest["encoder"]["dim"] == 64 and len(manifest["encoder"]["fingerprint"]) == 3
    assert manifest["settings"]["chunk"] == {"max_words": 150, "overlap_sentences": 0, "prefix": "title_section"}
    assert set(manifest["sizes"]) == {"passages.jsonl", "bm25", "dense.faiss"}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries left


def test_kb_refuses_another_encoder_and_damaged_directories(kb, tmp_path):
    with pytest.raises(ModelError, match="another encoder"):
        KnowledgeBase.load(tmp_path / "kb", encoder=HashEncoder(salt="other"))
    with pytest.raises(ModelError, match="dimensions"):
        KnowledgeBase.load(tmp_path / "kb", encoder=HashEncoder(dim=32))
    with pytest.raises(ModelError, match="not a knowledge base"):
        KnowledgeBase.load(tmp_path, encoder=HashEncoder())
    with pytest.raises(ModelError, match="does not exist"):
        KnowledgeBase.load(tmp_path / "nowhere", encoder=HashEncoder())
    lines = (tmp_path / "kb" / "passages.jsonl").read_text().splitlines()
    (tmp_path / "kb" / "passages.jsonl").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(ModelError, match="holds 5 passages"):
        KnowledgeBase.load(tmp_path / "kb", encoder=HashEncoder())
    manifest = json.loads((tmp_path / "kb" / "manifest.json").read_text())
    manifest["settings"]["search"]["bogus"] = 1
    (tmp_path / "kb" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ConfigError, match="bogus"):
        KnowledgeBase.load(tmp_path / "kb", encoder=HashEncoder())


def test_no_answer_below_the_threshold(kb):
    known = kb.ask("How is eczema treated?")
    unknown = kb.ask("Which volcano erupted in Iceland?")
    assert known.answered and known.score >= 0.3 and known.threshold == 0.3
    assert not unknown.answered and unknown.answer is None and unknown.score < 0.3
    assert unknown.hits and unknown.to_dict()["answer"] is None  # the closest passages, not an answer
    with pytest.raises(ConfigError, match="empty"):
        kb.ask("   ")
    with pytest.raises(ConfigError, match="top_k"):
        kb.ask("fever?", top_k=0)


def test_build_is_atomic_and_refuses_to_overwrite(tmp_path):
    class Broken(HashEncoder):
        def encode(self, texts):
            raise RuntimeError("encoder crashed")

    with pytest.raises(RuntimeError):
        KnowledgeBase.from_sources(SourceSet(corpus(), []), tmp_path / "kb", settings=KbSettings(), encoder=Broken())
    assert list(tmp_path.iterdir()) == []
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "a.txt").write_text("Aspirin lowers a fever.")
    KnowledgeBase.build([folder], tmp_path / "kb", encoder=HashEncoder())
    with pytest.raises(ConfigError, match="--overwrite"):
        KnowledgeBase.build([folder], tmp_path / "kb", encoder=HashEncoder())
    KnowledgeBase.build([folder], tmp_path / "kb", encoder=HashEncoder(), overwrite=True)


def test_missing_extra_names_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "bm25s", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'medtune\[retrieval\]' -c constraints.txt"):
        KnowledgeBase.build([tmp_path], tmp_path / "kb", encoder=HashEncoder())


def test_reranker_and_reader_plug_in(kb):
    class Reverse:  # prefers the passages fusion ranked last
        kind = "model"

        def scores(self, question, vector, ids, texts):
            return np.arange(len(ids), dtype=np.float32)

    class FirstWord:
        def read(self, question, passage):
            end = passage.index(" ")
            return AnswerSpan(text=passage[:end], start=0, end=end, score=0.9)

    plain = [h.passage.id for h in kb.search(["How is fever treated?"], 6)[0]]
    kb.use_reranker(Reverse())
    kb.configure(rerank={"depth": 6, "weight": 1.0}, answer={"thresholds": {"dense": 0.3, "model": 0.0}})
    reranked = kb.search(["How is fever treated?"], 6)[0]
    assert [h.passage.id for h in reranked] == plain[::-1]
    assert reranked[0].score == reranked[0].scores["rerank"] == 5.0 and kb.ask("fever?").score_kind == "model"
    kb.use_reranker("none")
    kb.reader = FirstWord()
    result = kb.ask("How is fever treated?")
    assert result.span.text == "Fever" and result.to_dict()["span"] == {"text": "Fever", "start": 0, "end": 5,
                                                                         "score": 0.9}
    kb.use_reranker("maxsim")
    kb.configure(answer={"thresholds": {"maxsim": 0.5}})
    maxsim = kb.ask("How is fever treated?")
    assert maxsim.score_kind == "maxsim" and maxsim.answer.passage.source.document == "fever"


def test_routing_by_question_type_keeps_passages_of_that_section(kb):
    from medtune.retrieval.route import route

    class Router:
        def types(self, questions):
            return ["symptoms" if "symptom" in q else None for q in questions]

    _, (c,) = kb.candidates(["What are the symptoms of gout?"])
    sections = lambda cands: {kb.passages[int(r)].source.section for r in cands.rows}  # noqa: E731
    assert sections(c) == {"Treatment", "Symptoms", "Causes"}
    assert sections(route(c, kb.passages, "symptoms")) == {"Symptoms"}
    assert route(c, kb.passages, "stages") is c and route(c, kb.passages, None) is c  # no such section: all kept
    kb.router = Router()
    routed = kb.search(["What are the symptoms of gout?", "What causes gout?"], 6)
    assert {h.passage.source.section for h in routed[0]} == {"Symptoms"}
    assert routed[1][0].passage.source.document == "gout" and len(routed[1]) == 6


def test_real_text_encoder_path(tiny_model_dir, tmp_path):
    settings = KbSettings.model_validate({"encoder": {"name": str(tiny_model_dir), "max_length": 32, "bf16": False}})
    built = KnowledgeBase.from_sources(SourceSet(corpus(), []), tmp_path / "kb", settings=settings)
    loaded = KnowledgeBase.load(tmp_path / "kb")  # the encoder the manifest names, fingerprint checked
    assert loaded.index.dim == 32
    q = "fever treated"
    assert [h.passage.id for h in built.search([q], 3)[0]] == [h.passage.id for h in loaded.search([q], 3)[0]]


# ------------------------------------------------------------------------------------- evaluation
def test_metrics_by_hand():
    ranked = [np.array([5, 1, 2]), np.array([7, 8, 9]), np.array([3])]
    gold = [{1}, {4}, {3}]
    m = retrieval_metrics(ranked, gold)
    assert m["recall@1"] == round(1 / 3, 4) and m["recall@5"] == round(2 / 3, 4)
    assert m["mrr"] == round((0.5 + 0 + 1) / 3, 4) and m["not_in_candidates"] == 1


def test_tune_and_calibrate_on_dev_questions(kb):
    questions = [Question(id=f"q{i}", text=q, gold=frozenset([d])) for i, (q, d) in enumerate(QUESTIONS)]
    prep = prepare(kb, questions)
    assert all(len(g) == 1 for g in prep.gold_rows)
    result = tune(kb, prep)
    assert len(result["fusion"]) == 12 and kb.settings.search.fusion == result["chosen"]["fusion"]
    best = max(row["mrr"] for row in result["fusion"])
    assert retrieval_metrics(rankings(kb, prep, kb.settings), prep.gold_rows)["mrr"] == best == 1.0
    cal = calibrate(kb, prep)
    assert cal["kind"] == "dense" and kb.threshold == pytest.approx(cal["threshold"])
    assert cal["questions"] == cal["held_out"] == 6 and cal["top1_correct"] == 1.0
    # the threshold makes the most decisions right: no other threshold does better
    scores = [kb.rank(q.text, v, c, 1)[0].score for q, v, c in zip(prep.questions, prep.vectors, prep.candidates)]
    held = [kb.rank(q.text, v, c.without(topic_rows(kb, c, g)), 1)[0].score
            for q, v, c, g in zip(prep.questions, prep.vectors, prep.candidates, prep.gold_rows)]
    right = lambda t: sum(s >= t for s in scores) + sum(h < t for h in held)  # noqa: E731
    assert right(kb.threshold) == max(right(t) for t in scores + held + [2.0]) == round(cal["accuracy"] * 12)
    assert cal["accuracy"] >= 0.75
    kb.save_settings()
    again = KnowledgeBase.load(kb.directory, encoder=HashEncoder())
    assert again.threshold == kb.threshold and again.settings.answer.calibration["dense"]["questions"] == 6
    assert not again.ask("Which volcano erupted in Iceland?").answered


# ------------------------------------------------------------------------------------- MedQuAD
@pytest.mark.data
def test_medquad_split_keeps_each_page_in_one_split(data_dir):
    from medtune import datasets
    from medtune.datasets.medquad import page_split
    from medtune.retrieval.passages import medquad_documents

    if not (data_dir / "medquad").is_dir():
        pytest.skip("medquad/ is not under MEDTUNE_DATA_DIR")
    pages = {}
    for split in ("train", "dev", "test"):
        for doc in datasets.load("medquad", split):
            assert pages.setdefault(doc.metadata["document"], split) == split
            assert page_split(doc.metadata["document"]) == split and doc.text.strip() and doc.text_pair
    assert len(pages) == 5476 and sum(1 for s in pages.values() if s == "test") > 400
    info = datasets.info("medquad")
    notes = info["notes"]
    assert notes["qa_pairs"] == 16412 and notes["answered"] == 16407 and notes["answers_removed"] == 5
    assert notes["folders"]["2_GARD_QA"]["answers_removed"] == 5 and len(notes["qtypes"]) == 16
    assert notes["absent_folders"] == ["10_MPlus_ADAM_QA", "11_MPlusDrugs_QA", "12_MPlusHerbsSupplements_QA"]
    assert sum(s["documents"] for s in info["splits"].values()) == 16407
    qtype = datasets.info("medquad-qtype")["splits"]
    assert sum(s["documents"] for s in qtype.values()) == 16412
    kb_docs = medquad_documents(["dev"])
    assert all(d.text_pair is None and d.metadata["split"] == "dev" for d in kb_docs)
    assert len(kb_docs) < len(datasets.load("medquad", "dev"))  # an answer repeated on a page is kept once
