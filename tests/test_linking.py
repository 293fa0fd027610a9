"""Concept linking: vocabularies, Schwartz-Hearst abbreviations, the linker cascade, save/load, scoring.

Everything runs on a made-up vocabulary; the dense step uses the tiny random BERT of conftest.py (it
must return *a* vocabulary id, not a good one). One test reads the shared MeSH files and is skipped
without ``MEDTUNE_DATA_DIR``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medtune.document import Document
from medtune.errors import DataFormatError, DatasetNotFoundError, ModelError
from medtune.linking import (
    Linker,
    Vocabulary,
    abbreviation_map,
    accepted_answers,
    composite_expansions,
    find_abbreviations,
    linking_report,
    mesh_vocabulary,
    normalise,
    sorted_key,
)

LEXICAL = ["exact", "normalised", "train", "abbreviation", "composite"]

VOCAB_TSV = """id\tname\tsynonyms
D001943\tBreast Neoplasms\t
D010051\tOvarian Neoplasms\t
D006816\tHuntington Disease\tHuntington Chorea
D003924\tDiabetes Mellitus, Type 2\tNIDDM|Type 2 Diabetes
D009203\tMyocardial Infarction\tHeart Attack
D003550\tCystic Fibrosis\t
D006973\tHypertension\t
D058186\tAcute Kidney Injury\t
D017093\tLiver Failure\t
C537866\tFictional syndrome with fever\t
OMIM:219700\tCystic fibrosis (OMIM)\t
"""


@pytest.fixture
def vocab(tmp_path: Path) -> Vocabulary:
    path = tmp_path / "vocab.tsv"
    path.write_text(VOCAB_TSV, encoding="utf-8")
    return Vocabulary.from_tsv(path)


def _doc(doc_id: str, text: str, mentions: list[tuple[str, list[str]]], label: str = "Disease",
         **attrs) -> Document:
    doc = Document(id=doc_id, text=text)
    pos = 0
    for mention, ids in mentions:
        start = text.index(mention, pos)
        span = doc.add_span(start, start + len(mention), label, ids=list(ids))
        span.attributes.update(attrs.get(mention, {}))
        pos = start + 1
    return doc


def _train_docs() -> list[Document]:
    docs = [
        _doc("t1", "Heart failure and renal and hepatic failure were seen.",
             [("Heart failure", ["MESH:D006333"]),
              ("renal and hepatic failure", ["MESH:D058186", "MESH:D017093"])],
             **{"renal and hepatic failure": {"individual_mentions": ["renal failure", "hepatic failure"]}}),
        _doc("t2", "Her heart failure worsened; aspirin was given.",
             [("heart failure", ["MESH:D006333"]), ("aspirin", ["MESH:D001241"])]),
        _doc("t3", "A case with no id.", [("case", [])]),
    ]
    docs[1].spans[1].label = "Chemical"
    return docs


# ----------------------------------------------------------------------------- vocabulary
def test_vocabulary_from_tsv(vocab: Vocabulary) -> None:
    assert len(vocab) == 11
    assert "MESH:D003924" in vocab and "D003924" not in vocab  # bare MeSH ids get the corpus spelling
    assert vocab.name("MESH:D003924") == "Diabetes Mellitus, Type 2"
    assert vocab.synonyms("MESH:D003924") == ["NIDDM", "Type 2 Diabetes"]
    assert vocab.lookup("Heart Attack") == ["MESH:D009203"]
    assert "OMIM:219700" in vocab  # non-MeSH ids are kept as written


def test_vocabulary_tsv_without_header_and_round_trip(tmp_path: Path, vocab: Vocabulary) -> None:
    path = tmp_path / "plain.tsv"
    path.write_text("D006973\tHypertension\nD006973\tHigh blood pressure\n\n# comment\n", encoding="utf-8")
    plain = Vocabulary.from_tsv(path)
    assert plain.names("MESH:D006973") == ["Hypertension", "High blood pressure"]
    out = tmp_path / "out.tsv"
    vocab.to_tsv(out)
    again = Vocabulary.from_tsv(out)
    assert {cid: again.names(cid) for cid in again} == {cid: vocab.names(cid) for cid in vocab}


@pytest.mark.parametrize("row, field", [
    ("D000001", "columns"),                       # one column
    ("D000001\tname\tsyn\textra", "columns"),     # four columns
    ("\tSome name", "id"),                        # empty id
    ("-1\tSome name", "id"),                      # the corpora's "no id"
    ("D 01\tSome name", "id"),                    # whitespace in the id
    ("D000001\t ", "name"),                       # empty name
    ("D000001\tA|B", "name"),                     # synonyms in the name column
    ("D000001\tName\tsyn1||syn2", "synonyms"),    # empty synonym
])
def test_vocabulary_tsv_malformed_row(tmp_path: Path, row: str, field: str) -> None:
    path = tmp_path / "bad.tsv"
    path.write_text(f"id\tname\tsynonyms\nD000002\tFine\t\n{row}\n", encoding="utf-8")
    with pytest.raises(DataFormatError) as info:
        Vocabulary.from_tsv(path)
    err = info.value
    assert err.line == 3 and err.field == field and err.path == str(path)
    assert err.fix and "bad.tsv:3" in str(err)


def test_mesh_vocabulary_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        mesh_vocabulary("chemical", data_dir=tmp_path)
    message = str(info.value)
    assert "2017MeshTree.txt" in message and str(tmp_path / "vocab" / "mesh_2017_tree") in message
    with pytest.raises(ValueError):
        mesh_vocabulary("genes", data_dir=tmp_path)


@pytest.mark.data
def test_mesh_vocabulary_shared_files(data_dir: Path) -> None:
    disease = mesh_vocabulary("disease", data_dir=data_dir)
    chemical = mesh_vocabulary("chemical", data_dir=data_dir)
    assert disease.name("MESH:D003920") == "Diabetes Mellitus"
    assert "MESH:C537866" in disease or any(c.startswith("MESH:C") for c in disease)
    assert chemical.name("MESH:D000082") == "Acetaminophen"
    assert "MESH:D003920" not in chemical and "MESH:D000082" not in disease
    assert len(mesh_vocabulary("all", data_dir=data_dir)) == len(set(disease) | set(chemical))


# ----------------------------------------------------------------------------- abbreviations
@pytest.mark.parametrize("text, short, long", [
    ("Heat shock transcription factor (HSF) binds DNA.", "HSF", "Heat shock transcription factor"),
    ("We studied hereditary nonpolyposis colorectal cancer (HNPCC) in families.", "HNPCC",
     "hereditary nonpolyposis colorectal cancer"),
    ("Patients with Huntington disease (HD, MIM 143100) were tested.", "HD", "Huntington disease"),
    ("The HNPCC (hereditary nonpolyposis colorectal cancer) families.", "HNPCC",
     "hereditary nonpolyposis colorectal cancer"),
    ("Levels of Gcn5-related N-acetyltransferase (GNAT) rose.", "GNAT", "Gcn5-related N-acetyltransferase"),
    ("Spinal and bulbar muscular atrophy (SBMA) is X-linked.", "SBMA", "Spinal and bulbar muscular atrophy"),
    ("It was treated with 5-fluorouracil (5-FU) twice.", "5-FU", "5-fluorouracil"),
])
def test_schwartz_hearst_classic(text: str, short: str, long: str) -> None:
    found = find_abbreviations(text)
    assert len(found) == 1
    abbr = found[0]
    assert (abbr.short, abbr.long) == (short, long)
    assert text[abbr.short_start:abbr.short_end] == short
    assert text[abbr.long_start:abbr.long_end] == long


def test_schwartz_hearst_rejects_non_abbreviations() -> None:
    assert find_abbreviations("It rose in the brain (see below) and in the liver (p < 0.05).") == []
    assert find_abbreviations("A finding (n = 12) was noted (Table 2).") == []
    text = "Angelman syndrome (AS) and Prader-Willi syndrome (PWS). Later AS (again) was seen."
    mapping = abbreviation_map(text)
    assert set(mapping) == {"AS", "PWS"} and mapping["AS"].long == "Angelman syndrome"


# ----------------------------------------------------------------------------- normalisation
def test_normalisation_keys() -> None:
    assert normalise("Huntington's Disease") == normalise("huntington disease")
    assert normalise("breast tumours") == normalise("Breast tumor")
    assert normalise("β-thalassaemia") == "beta thalassemia"
    assert sorted_key("Carcinoma, Hepatocellular") == sorted_key("hepatocellular carcinomas")
    assert composite_expansions("breast and ovarian cancer")[0] == ["breast cancer", "ovarian cancer"]
    assert ["deficiency of C6", "deficiency of C7"] in composite_expansions("deficiency of C6 and C7")
    assert composite_expansions("Hypertension") == []


# ----------------------------------------------------------------------------- the cascade
def test_exact_and_normalised(vocab: Vocabulary) -> None:
    linker = Linker(vocab, components=["exact", "normalised"])
    assert linker.resolve("Hypertension").source == "exact"
    assert linker.resolve("heart attack").ids == ["MESH:D009203"]  # exact is case-insensitive
    for mention, cid in [("myocardial infarctions", "MESH:D009203"), ("Huntington's disease", "MESH:D006816"),
                         ("type 2 diabetes mellitus", "MESH:D003924"), ("breast tumours", "MESH:D001943")]:
        result = linker.resolve(mention)
        assert (result.ids, result.source) == ([cid], "normalised"), mention
    assert linker.link("hypertension") == [("MESH:D006973", 1.0)]
    assert linker.link("completely unknown") == []
    only_exact = Linker(vocab, components=["exact"])
    assert only_exact.link("myocardial infarctions") == []


def test_train_dictionary(vocab: Vocabulary) -> None:
    linker = Linker(vocab, labels=["Disease"], components=LEXICAL).fit(_train_docs())
    assert linker.train_stats == {"documents": 3, "mentions": 3, "pairs": 5}
    result = linker.resolve("heart failure")
    assert (result.ids, result.source, result.score) == (["MESH:D006333"], "train", 1.0)
    assert linker.resolve("Heart failures").source == "train"  # normalised train level
    assert linker.resolve("renal failure").ids == ["MESH:D058186"]  # BC5CDR individual mention learned
    assert "MESH:D006333" in linker.known_ids and "MESH:D001241" not in linker.known_ids  # Chemical skipped
    without = Linker(vocab, components=["exact", "normalised"]).fit(_train_docs())
    assert without.link("heart failure") == []


def test_abbreviation_expansion(vocab: Vocabulary) -> None:
    text = "Patients with Huntington disease (HD) were studied. HD onset was late in HD carriers."
    linker = Linker(vocab, components=LEXICAL)
    result = linker.resolve("HD", doc_text=text)
    assert (result.ids, result.source) == (["MESH:D006816"], "abbreviation")
    assert linker.resolve("HDs", doc_text=text).ids == ["MESH:D006816"]  # plural short form
    assert linker.resolve("HD chorea", doc_text=text).ids == ["MESH:D006816"]  # expanded inside a mention
    assert linker.resolve("HD").ids == []  # no document, no definition
    no_abbr = Linker(vocab, components=["exact", "normalised", "train"])
    assert no_abbr.resolve("HD", doc_text=text).ids == []


def test_composite_mentions(vocab: Vocabulary) -> None:
    linker = Linker(vocab, components=LEXICAL)
    result = linker.resolve("breast and ovarian cancer")
    assert (result.ids, result.source) == (["MESH:D001943", "MESH:D010051"], "composite")
    assert [cid for cid, _ in linker.link("ovarian or breast tumours")] == ["MESH:D010051", "MESH:D001943"]
    assert linker.resolve("breast and unknown cancer").ids == []  # every part must be linked
    no_comp = Linker(vocab, components=["exact", "normalised", "train", "abbreviation"])
    assert no_comp.resolve("breast and ovarian cancer").ids == []


def test_linker_on_documents(vocab: Vocabulary) -> None:
    doc = _doc("d1", "Hypertension and cystic fibrosis; aspirin.",
               [("Hypertension", ["X"]), ("cystic fibrosis", []), ("aspirin", ["MESH:D001241"])])
    doc.spans[2].label = "Chemical"
    linker = Linker(vocab, labels=["Disease"], components=LEXICAL)
    assert linker(doc) is doc
    first, second, chem = doc.spans
    assert first.ids == ["MESH:D006973"] and first.attributes == {"link_score": 1.0, "link_source": "exact"}
    assert second.ids == ["MESH:D003550"]
    assert chem.ids == ["MESH:D001241"] and "link_source" not in chem.attributes  # not in the label set
    with pytest.raises(ValueError):
        Linker(vocab, components=["exact", "magic"])


# ----------------------------------------------------------------------------- dense (tiny model)
def test_dense_fallback_returns_vocabulary_id(vocab: Vocabulary, tiny_model_dir: Path) -> None:
    linker = Linker(vocab, encoder=str(tiny_model_dir), bf16=False).fit(_train_docs())
    result = linker.resolve("gene protein mutation risk")
    assert result.source == "dense" and len(result.ids) == 1
    assert result.ids[0] in linker.known_ids and -1.0 <= result.score <= 1.5
    assert linker.dense.embeddings is not None and linker.dense.embeddings.dtype == np.float16
    norms = np.linalg.norm(linker.dense.embeddings.astype(np.float32), axis=1)
    assert np.allclose(norms, 1.0, atol=1e-2)
    candidates = linker.candidates("gene protein mutation risk", k=3)
    assert len(candidates) == 3 and candidates[0][1] >= candidates[-1][1]


def test_save_load_round_trip(vocab: Vocabulary, tiny_model_dir: Path, tmp_path: Path) -> None:
    linker = Linker(vocab, labels=["Disease"], encoder=str(tiny_model_dir), bf16=False,
                    dense_sparse_weight=0.2).fit(_train_docs())
    text = ("Huntington disease (HD) and heart failure; HD, breast and ovarian cancer, gene protein risk, "
            "a syndrome with fever, NIDDM.")
    mentions = ["Huntington disease", "HD", "heart failure", "HD", "breast and ovarian cancer",
                "gene protein risk", "a syndrome with fever", "NIDDM"]
    docs = [_doc("x", text, [(m, []) for m in mentions])]
    before = [doc.copy() for doc in docs]
    linker.link_documents(before)
    out = linker.save(tmp_path / "linker")
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["format"] == "medtune-linker" and manifest["encoder"]["name"] == str(tiny_model_dir)
    assert manifest["vocabulary"] == {"source": vocab.source, "concepts": 11, "names": 15,
                                      "file": "vocabulary.tsv"}
    assert manifest["components"] == list(linker.components) and manifest["labels"] == ["Disease"]
    assert manifest["settings"]["dense_sparse_weight"] == 0.2
    assert np.load(out / "embeddings.npy").dtype == np.float16
    assert not list(tmp_path.glob(".linker*"))  # atomic: no temporary directory left
    loaded = Linker.load(out)
    after = [doc.copy() for doc in docs]
    loaded.link_documents(after)
    sources = set()
    for a, b in zip(before[0].spans, after[0].spans):
        assert (a.ids, a.attributes) == (b.ids, b.attributes)
        sources.add(a.attributes["link_source"])
    assert {"exact", "abbreviation", "train", "composite", "dense"} <= sources
    (out / "embeddings.npy").unlink()
    with pytest.raises(ModelError):
        Linker.load(out)
    with pytest.raises(ModelError):
        Linker.load(tmp_path / "nowhere")


# ----------------------------------------------------------------------------- scoring
class _FixedLinker:
    """Predicts fixed ids per mention text: isolates the scoring rule from the cascade."""

    labels = ("Disease",)

    def __init__(self, vocabulary: Vocabulary, answers: dict[str, list[str]]) -> None:
        self.vocabulary = vocabulary
        self.known_ids = set(vocabulary.ids()) | {"OMIM:1"}
        self.answers = answers

    def link_documents(self, docs: list[Document]) -> list[Document]:
        for doc in docs:
            for span in doc.spans:
                span.ids = list(self.answers.get(span.text, []))
                span.attributes["link_source"] = "fixed"
        return docs


def test_report_composite_and_alternative_ids(vocab: Vocabulary) -> None:
    a, b, omim = "MESH:D001943", "MESH:D010051", "OMIM:1"
    text = ("breast and ovarian cancer; BRCA tumours; cat eye syndrome; CES; hereditary deafness; deafness; "
            "unknown thing; renal and hepatic failure; aspirin")
    gold = _doc("g", text, [
        ("breast and ovarian cancer", [a, b]),        # NCBI composite: all parts needed
        ("BRCA tumours", [a, b]),                     # composite, only one part predicted
        ("cat eye syndrome", ["MESH:C537866", omim]),  # alternatives: either is right
        ("CES", ["MESH:C537866", omim]),              # alternatives: both together also right
        ("hereditary deafness", [f"{a}+{b}"]),        # '+' combination id, predicted as a list
        ("deafness", [a]),                            # wrong
        ("unknown thing", []),                        # -1: excluded
        ("renal and hepatic failure", ["MESH:D058186", "MESH:D017093"]),  # BC5CDR composite
        ("aspirin", ["MESH:D001241"]),                # other label: not scored
    ])
    gold.spans[0].attributes["type"] = "CompositeMention"
    gold.spans[1].attributes["type"] = "CompositeMention"
    gold.spans[7].attributes["individual_mentions"] = ["renal failure", "hepatic failure"]
    gold.spans[8].label = "Chemical"
    answers = {"breast and ovarian cancer": [b, a], "BRCA tumours": [a], "cat eye syndrome": [omim],
               "CES": ["MESH:C537866", omim], "hereditary deafness": [a, b], "deafness": [b],
               "renal and hepatic failure": ["MESH:D058186"], "aspirin": ["MESH:D001241"]}
    kept = gold.copy()
    report = linking_report(_FixedLinker(vocab, answers), [gold], examples=10)
    assert gold.to_dict() == kept.to_dict()  # the gold documents are not modified
    assert report["n"] == 7 and report["excluded_no_id"] == 1
    assert report["accuracy"] == round(4 / 7, 4)
    assert report["accuracy_lenient"] == round(6 / 7, 4)  # "deafness" shares nothing
    assert report["composite"] == {"n": 3, "correct": 1, "accuracy": round(1 / 3, 4)}
    assert report["by_source"] == {"fixed": {"n": 7, "correct": 4, "accuracy": round(4 / 7, 4)}}
    assert report["ceiling"] == 1.0  # every gold answer has an accepted set inside the vocabulary
    assert [e["mention"] for e in report["errors"]] == ["BRCA tumours", "deafness",
                                                        "renal and hepatic failure"]
    assert accepted_answers(gold.spans[2]) == [frozenset({"MESH:C537866"}), frozenset({omim}),
                                               frozenset({"MESH:C537866", omim})]


def test_report_with_real_linker(vocab: Vocabulary) -> None:
    linker = Linker(vocab, labels=["Disease"], components=LEXICAL).fit(_train_docs())
    docs = [_doc("e", "Heart failure, NIDDM, breast and ovarian cancer and a rare OMIM disease.",
                 [("Heart failure", ["MESH:D006333"]), ("NIDDM", ["MESH:D003924"]),
                  ("breast and ovarian cancer", ["MESH:D001943", "MESH:D010051"]),
                  ("rare OMIM disease", ["OMIM:999"])])]
    docs[0].spans[2].attributes["type"] = "CompositeMention"
    report = linking_report(linker, docs)
    assert report["n"] == 4 and report["accuracy"] == 0.75 and "per_document" not in report
    empty = _doc("f", "No mention here.", [])
    split = linking_report(linker, [docs[0], empty, docs[0]], per_document=True)
    assert split["per_document"] == [[3, 4], [0, 0], [3, 4]]  # each document's [correct, scored]
    assert report["ceiling"] == 0.5 and report["ceiling_with_train"] == 0.75
    assert set(report["by_source"]) == {"train", "exact", "composite", "none"}
