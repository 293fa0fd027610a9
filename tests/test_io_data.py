"""The readers on the real public corpora (skipped unless MEDTUNE_DATA_DIR holds them).

Counts are those of DATA.md and of the corpus papers; they pin down that nothing is dropped or
invented while reading.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from medtune.errors import DataFormatError
from medtune.io import (
    read_bioc,
    read_conll,
    read_jsonl,
    read_pubtator,
    write_conll,
    write_jsonl,
    write_pubtator,
)

pytestmark = pytest.mark.data

data_dir = os.environ.get("MEDTUNE_DATA_DIR")


def corpus(*parts: str) -> Path:
    """Path of a corpus file, skipping the test when the data directory or the file is absent."""
    if not data_dir:
        pytest.skip("MEDTUNE_DATA_DIR is not set")
    path = Path(data_dir, *parts)
    if not path.exists():
        pytest.skip(f"{path} is absent")
    return path


NCBI = {
    "train": ("train/NCBItrainset_corpus.txt", 593, 5145),
    "devel": ("devel/NCBIdevelopset_corpus.txt", 100, 787),
    "test": ("test/NCBItestset_corpus.txt", 100, 960),
}
BC5CDR = {
    "Training": (9385, 1038, 3),
    "Development": (9591, 1012, 1),
    "Test": (9809, 1066, 0),
}


@pytest.mark.parametrize("split", list(NCBI))
def test_ncbi_disease_pubtator(split: str) -> None:
    name, n_docs, n_mentions = NCBI[split]
    docs = list(read_pubtator(corpus("ncbi_disease", "original-data", name)))
    assert len(docs) == n_docs and sum(len(d.spans) for d in docs) == n_mentions
    assert len({d.id for d in docs}) == n_docs
    for doc in docs:  # the reader validates too; this states the property the brief asks for
        assert all(doc.text[s.start:s.end] == s.text for s in doc.spans)
    labels = {s.label for d in docs for s in d.spans}
    assert labels <= {"SpecificDisease", "DiseaseClass", "Modifier", "CompositeMention"}
    if split == "train":
        dup = [d for d in docs if d.metadata["pmid"] == "8528200"]
        assert [d.id for d in dup] == ["8528200", "8528200-2"] and dup[0].text == dup[1].text


@pytest.mark.parametrize("split", list(BC5CDR))
def test_bc5cdr_pubtator(split: str) -> None:
    n_mentions, n_cid, _ = BC5CDR[split]
    docs = list(read_pubtator(corpus("bc5cdr", "original-data", f"CDR_{split}Set.PubTator.txt")))
    assert len(docs) == 500 and sum(len(d.spans) for d in docs) == n_mentions
    assert sum(len(d.metadata.get("id_relations", [])) for d in docs) == n_cid
    assert sum(len(d.relations) for d in docs) == n_cid  # every CID pair has mentions of both ids
    assert {s.label for d in docs for s in d.spans} == {"Chemical", "Disease"}
    ids = {i for d in docs for s in d.spans for i in s.ids}
    assert all(i.startswith("MESH:") for i in ids)


def _same(pub: list, bioc: list) -> None:
    assert [d.id for d in pub] == [d.id for d in bioc]
    for a, b in zip(pub, bioc):
        assert a.text == b.text
        assert a.metadata["title_end"] == b.metadata["title_end"]
        assert a.metadata.get("id_relations") == b.metadata.get("id_relations")
        main = [s for s in b.spans if s.attributes.get("CompositeRole") != "IndividualMention"]
        assert [(s.start, s.end, s.label, s.text, s.ids) for s in main] == \
               [(s.start, s.end, s.label, s.text, s.ids) for s in a.spans]
        keys_a = [(r.label, a.span_by_id()[r.head].key(), a.span_by_id()[r.tail].key()) for r in a.relations]
        keys_b = [(r.label, b.span_by_id()[r.head].key(), b.span_by_id()[r.tail].key()) for r in b.relations]
        assert keys_a == keys_b


def test_bc5cdr_bioc_test_set_equals_pubtator() -> None:
    pub = list(read_pubtator(corpus("bc5cdr", "original-data", "CDR_TestSet.PubTator.txt")))
    bioc = list(read_bioc(corpus("bc5cdr", "original-data", "CDR_TestSet.BioC.xml")))
    _same(pub, bioc)
    for a, b in zip(pub, bioc):
        individual = [s.text for s in b.spans if s.attributes.get("CompositeRole") == "IndividualMention"]
        named = [n for s in a.spans for n in s.attributes.get("individual_mentions", [])]
        assert sorted(individual) == sorted(named)


@pytest.mark.parametrize("split", ["Training", "Development"])
def test_bc5cdr_bioc_corpus_errors_are_reported(split: str) -> None:
    path = corpus("bc5cdr", "original-data", f"CDR_{split}Set.BioC.xml")
    with pytest.raises(DataFormatError, match="does not match"):
        list(read_bioc(path))
    bioc = list(read_bioc(path, on_text_mismatch="skip"))
    skipped = [a for d in bioc for a in d.metadata.get("skipped_annotations", [])]
    assert len(skipped) == BC5CDR[split][2]
    pub = list(read_pubtator(corpus("bc5cdr", "original-data", f"CDR_{split}Set.PubTator.txt")))
    _same(pub, bioc)


MTL = {
    "NCBI-disease-IOB": (5424, 923, 940),
    "BC5CDR-IOB": (4560, 4581, 4797),
}


@pytest.mark.parametrize("name", list(MTL))
def test_mtl_ner_conll(name: str) -> None:
    counts = []
    for split in ("train", "devel", "test"):
        docs = list(read_conll(corpus("mtl_ner", name, f"{split}.tsv")))
        counts.append(len(docs))
        if name == "BC5CDR-IOB":
            assert sum(len(d.spans) for d in docs) == {"train": 9385, "devel": 9593, "test": 9809}[split]
    assert tuple(counts) == MTL[name]


def test_bc5cdr_six_column_conll_and_round_trip(tmp_path: Path) -> None:
    docs = list(read_conll(corpus("bc5cdr", "conll", "test.tsv")))
    assert len(docs) == 4797 and sum(len(d.spans) for d in docs) == 9809
    write_conll(docs, tmp_path / "test.tsv")
    assert [d.to_dict() for d in read_conll(tmp_path / "test.tsv")] == [d.to_dict() for d in docs]


def test_real_round_trips(tmp_path: Path) -> None:
    docs = list(read_pubtator(corpus("ncbi_disease", "original-data", "train", "NCBItrainset_corpus.txt")))
    write_pubtator(docs, tmp_path / "ncbi.txt")
    assert [d.to_dict() for d in read_pubtator(tmp_path / "ncbi.txt")] == [d.to_dict() for d in docs]
    bioc = list(read_bioc(corpus("bc5cdr", "original-data", "CDR_TestSet.BioC.xml")))
    write_jsonl(bioc, tmp_path / "cdr.jsonl")
    assert [d.to_dict() for d in read_jsonl(tmp_path / "cdr.jsonl")] == [d.to_dict() for d in bioc]
