"""CodiEsp corpus reading (a synthetic CodiEsp-shaped tree, and the real corpus when it is there) and the
ICD-10 code system: roll-up to category and chapter, descriptions from the offline vocabulary."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from medtune import datasets
from medtune.coding import icd10
from medtune.datasets.codiesp import normalise_code, parse_offsets
from medtune.errors import ConfigError, DataFormatError

ES = {
    "c1": "Varón con dolor en fosa renal derecha. Se realiza ecografía renal derecha.",
    "c2": "Mujer con fiebre. Sin otros hallazgos.",
}
EN = {"c1": "Man with pain in the right renal fossa. Right renal ultrasound.", "c2": "Woman with fever."}


def _write_tree(root: Path, x_rows: list[str] | None = None) -> Path:
    base = root / "codiesp"
    for split in ("train", "dev", "test"):
        for folder, texts in (("text_files", ES), ("text_files_en", EN)):
            (base / split / folder).mkdir(parents=True)
            for doc_id, text in texts.items():
                (base / split / folder / f"{doc_id}.txt").write_text(text, encoding="utf-8")
        (base / split / f"{split}D.tsv").write_text("c1\tn23\nc1\tr10.9\nc2\tr50.9\n", encoding="utf-8")
        (base / split / f"{split}P.tsv").write_text("c1\tbt41zzz\n", encoding="utf-8")
        start = ES["c1"].index("dolor")
        rows = x_rows if x_rows is not None else [
            f"c1\tDIAGNOSTICO\tn23\tdolor en fosa renal\t{start} {start + 19}",
            # discontinuous, given out of order, with an empty fragment: "renal ... dolor"
            f"c1\tDIAGNOSTICO\tr10.9\tfosa dolor\t{start + 9} {start + 13};{start} {start};{start} {start + 5}",
            "c1\tPROCEDIMIENTO\tbt41zzz\tecografía renal\t" + f"{ES['c1'].index('ecografía')} "
            f"{ES['c1'].index('ecografía') + 15}",
            "c2\tDIAGNOSTICO\tr50.9\tfiebre.\t" + f"{ES['c2'].index('fiebre')} {ES['c2'].index('fiebre') + 6}",
        ]
        (base / split / f"{split}X.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root


@pytest.fixture(autouse=True)
def _fresh():
    datasets.clear_cache()
    yield
    datasets.clear_cache()


def test_synthetic_tree_english_and_spanish(tmp_path):
    root = _write_tree(tmp_path)
    en = datasets.load("codiesp-d", "train", data_dir=root, download=False)
    assert [d.id for d in en] == ["c1", "c2"] and en[0].text == EN["c1"]
    assert en[0].labels == ["N23", "R10.9"] and en[0].metadata["raw_codes"] == {"N23": "n23", "R10.9": "r10.9"}
    assert not any(d.spans for d in en)  # the X offsets point into the Spanish text
    es = datasets.load("codiesp-d-es", "dev", data_dir=root, download=False)
    doc = es[0]
    assert doc.text == ES["c1"] and doc.metadata["language"] == "es"
    assert [(s.label, s.ids) for s in doc.spans] == [("diagnosis", ["R10.9"]), ("diagnosis", ["N23"])]  # by offsets
    for d in es:
        d.validate()
    proc = datasets.load("codiesp-p-es", "test", data_dir=root, download=False)
    assert proc[0].labels == ["BT41ZZZ"] and proc[1].labels == [] and proc[0].spans[0].label == "procedure"
    assert proc[0].spans[0].text == "ecografía renal"


def test_discontinuous_reference_is_explicit_and_counted(tmp_path):
    root = _write_tree(tmp_path)
    doc = datasets.load("codiesp-d-es", "train", data_dir=root, download=False)[0]
    span = next(s for s in doc.spans if s.ids == ["R10.9"])
    start = ES["c1"].index("dolor")
    assert span.fragments == [(start, start + 5), (start + 9, start + 13)]  # sorted, empty one dropped
    assert (span.start, span.end) == (start, start + 13) and span.text == "dolor fosa"
    notes = datasets.info("codiesp-d-es", data_dir=root)["splits"]["train"]
    assert notes["discontinuous_references"] == 1 and notes["fragments_reordered"] == 1
    assert notes["empty_fragments_dropped"] == 1
    assert notes["reference_text_mismatch"] == 1  # "fiebre." quoted, "fiebre" at the offsets: kept, counted
    assert notes["codes"] == 3 and notes["evidence_spans"] == 3


def test_parse_offsets_refuses_what_it_cannot_read(tmp_path):
    counts: Counter = Counter()
    assert parse_offsets("10 20;3 5", path=tmp_path, line=1, counts=counts) == [(3, 5), (10, 20)]
    assert counts["fragments_reordered"] == 1
    for bad, code in (("10-20", "E105"), ("10 20;", "E105"), ("a b", "E105"), ("20 10", "E100")):
        with pytest.raises(DataFormatError, match=f"{code}.*trainX.tsv:7"):
            parse_offsets(bad, path=tmp_path / "trainX.tsv", line=7, counts=Counter())


def test_reference_outside_the_text_names_file_and_line(tmp_path):
    root = _write_tree(tmp_path, x_rows=["c2\tDIAGNOSTICO\tr50.9\tfiebre\t5 900"])
    with pytest.raises(DataFormatError) as err:
        datasets.load("codiesp-d-es", "train", data_dir=root, download=False)
    assert "trainX.tsv:1" in str(err.value) and "fiebre" not in str(err.value)


def test_code_normalisation():
    assert normalise_code(" s22.42xa ") == "S22.42XA" and normalise_code("bw03zzz") == "BW03ZZZ"


# ------------------------------------------------------------------------------ code system
def test_roll_up_to_category_and_chapter():
    assert icd10.category("s22.42xa") == "S22" and icd10.chapter("s22.42xa") == "19"
    assert icd10.chapter("D49.9") == "2" and icd10.chapter("D50.0") == "3"  # the D split between chapters
    assert icd10.chapter("H60.1") == "8" and icd10.chapter("C4A.9") == "2" and icd10.chapter("O9A.1") == "15"
    assert icd10.chapter("W19") == "20" and icd10.chapter("123") is None
    assert icd10.category("bw03zzz", "ICD-10-PCS") == "BW03" and icd10.chapter("bw03zzz", "ICD-10-PCS") == "B"
    assert icd10.roll_up(["R52", "R52.1", "S22.42XA", "R10.9"], "category") == ["R52", "S22", "R10"]
    assert icd10.roll_up(["R52", "S22.42XA", "R10.9"], "chapter") == ["18", "19"]
    with pytest.raises(ConfigError):
        icd10.category("R52", "ICD-9")


def test_descriptions_from_the_offline_vocabulary(tmp_path):
    folder = tmp_path / "vocab" / "icd10cm_hierarchy"
    folder.mkdir(parents=True)
    with open(folder / "icd10cm-categories-April-1-2026.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["ICD10-CM-CODE", "description", "section", "chapter"])
        writer.writerow(["R52", "Pain, unspecified", "R50-R69", "18"])
    system = icd10.code_system("ICD-10-CM", "vocab", data_dir=tmp_path)
    assert system.description("R52").text == "Pain, unspecified" and not system.description("R52").approximate
    assert system.description("R52.9").approximate and system.description("A00") is None
    assert system.coverage(["R52", "R52.9", "A00"]) == {"exact": 1, "approximate": 1, "none": 1}
    assert icd10.code_system("ICD-10-PCS", "auto").description("BW03ZZZ") is None  # no PCS descriptions
    with pytest.raises(ConfigError, match="MEDTUNE_DATA_DIR"):
        icd10.code_system("ICD-10-CM", "vocab", data_dir=tmp_path / "nowhere")


# ------------------------------------------------------------------------------ real corpus
@pytest.mark.data
def test_real_codiesp_counts_and_notes(data_dir):
    if not (data_dir / "codiesp").is_dir():
        pytest.skip("codiesp/ is not under MEDTUNE_DATA_DIR")
    info = datasets.info("codiesp-d-es", data_dir=data_dir)
    assert info["licence"] == "CC BY 4.0" and "CodiEsp" in info["citation"]
    train = info["splits"]["train"]
    assert (train["documents"], train["codes"], train["distinct_codes"]) == (500, 5639, 1767)
    assert train["discontinuous_references"] == 1047 and train["empty_fragments_dropped"] == 2
    assert train["references_without_code"] == 0
    p = datasets.info("codiesp-p", data_dir=data_dir)["splits"]
    assert [p[s]["documents_without_codes"] for s in ("train", "dev", "test")] == [65, 28, 26]
    test = datasets.load("codiesp-d-es", "test", data_dir=data_dir, download=False)
    assert sum(len(d.spans) for d in test) == 3665
    for doc in test:
        doc.validate()


@pytest.mark.data
def test_real_vocabulary_chapters_agree_with_the_ranges(data_dir):
    folder = icd10.vocab_dir(data_dir)
    if folder is None:
        pytest.skip("vocab/icd10cm_hierarchy is not under MEDTUNE_DATA_DIR")
    path = sorted(folder.glob("icd10cm-categories-*.csv"))[-1]
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 1918
    assert all(icd10.chapter(r["ICD10-CM-CODE"]) == r["chapter"] for r in rows)
