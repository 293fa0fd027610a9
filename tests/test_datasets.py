"""Named corpora: registry, deterministic splits, downloads (against a file:// mirror), real-data counts.

Tests marked ``data`` read the public corpora under ``$MEDTUNE_DATA_DIR`` and are skipped without it.
Nothing here touches the network: every download goes to a ``file://`` mirror (``MEDTUNE_DATA_MIRROR``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from medtune import datasets
from medtune.datasets import registry
from medtune.datasets.splits import assign_split, bucket, sha256_hex, sha256_order
from medtune.errors import DataFormatError, DatasetNotFoundError

FIXTURES = Path(__file__).parent / "fixtures" / "datasets"
MIRROR = FIXTURES / "mirror"

ALL_NAMES = ["ncbi-disease", "bc5cdr", "bc5cdr-chem", "bc5cdr-disease", "bc2gm", "hoc", "nicta-piboso",
             "chemprot", "gad", "pubmedqa", "ade-classification", "negex", "assertion",
             "physionet-deid",
             "bc5cdr-cid", "ade", "pubmedqa-long-answer",
             "ncbi-disease-linking", "bc5cdr-disease-linking", "bc5cdr-chem-linking", "covid-qa",
             "covid-qa-sentences", "medquad", "medquad-qtype", "codiesp-d", "codiesp-d-es", "codiesp-p", "codiesp-p-es"]


@pytest.fixture(autouse=True)
def _fresh_cache(monkeypatch):
    monkeypatch.delenv(datasets.ENV_MIRROR, raising=False)
    datasets.clear_cache()
    yield
    datasets.clear_cache()


def _real_root() -> Path | None:
    env = os.environ.get("MEDTUNE_DATA_DIR", "").strip()
    return Path(env) if env and Path(env).is_dir() else None


@pytest.fixture
def real_root():
    root = _real_root()
    if root is None:
        pytest.skip("MEDTUNE_DATA_DIR is not set (public corpora needed)")
    return root


def _need_folder(root: Path, name: str) -> None:
    if not (root / datasets.get_spec(name).folder).is_dir():
        pytest.skip(f"{datasets.get_spec(name).folder}/ is not under MEDTUNE_DATA_DIR")


def _mirror_env(monkeypatch, mirror: Path) -> None:
    monkeypatch.setenv(datasets.ENV_MIRROR, mirror.as_uri() + "/")


def _files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.exists() else []


# ------------------------------------------------------------------------------------- registry
def test_registry_lists_every_corpus_with_complete_specs():
    assert [s.name for s in datasets.list_datasets()] == ALL_NAMES
    for spec in datasets.list_datasets():
        assert spec.task in ("ner", "classification", "relation", "assertion", "linking", "qa", "retrieval", "coding")
        assert spec.labels and len(set(spec.labels)) == len(spec.labels)
        assert spec.licence and spec.citation and spec.description and spec.split_note
        expected = {"negex": ("test",), "pubmedqa-long-answer": ("train", "dev")}
        assert spec.splits == expected.get(spec.name, ("train", "dev", "test"))
        repo, commit = [part.strip() for part in spec.source.split("@")]
        for file in spec.files:
            assert re.fullmatch(r"[0-9a-f]{64}", file.sha256), file
            assert file.size > 0
            assert file.url.startswith(f"https://raw.githubusercontent.com/{repo}/{commit}/"), file.url
        for split in spec.splits:  # every split has something to read
            assert spec.files_for(split) or spec.manual_paths
        if not spec.downloadable:  # it names the paths to fill (files or manual ones) and where to get them
            assert (spec.manual_paths or spec.files) and "git clone" in spec.download_unsupported
        d = spec.to_dict()
        assert d["name"] == spec.name and d["split_note"] == spec.split_note
    assert datasets.get_spec("hoc").multi_label and datasets.get_spec("pubmedqa").pair
    assert not any(datasets.get_spec(n).multi_label for n in ALL_NAMES if n != "hoc" and not n.startswith("codiesp"))
    assert all(datasets.get_spec(n).multi_label for n in ALL_NAMES if n.startswith("codiesp"))


def test_get_spec_normalises_names():
    assert datasets.get_spec("NCBI_Disease").name == "ncbi-disease"
    assert datasets.get_spec(" ade-classification ").name == "ade-classification"


def test_unknown_name_lists_valid_names():
    with pytest.raises(DatasetNotFoundError) as err:
        datasets.load("ncbi-diseases")
    message = str(err.value)
    assert "ncbi-diseases" in message and "Did you mean 'ncbi-disease'" in message
    for name in ALL_NAMES:
        assert name in message
    with pytest.raises(DatasetNotFoundError):
        datasets.info("no-such-corpus")


def test_unknown_split_lists_valid_splits(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="train, dev, test"):
        datasets.load("gad", "validation-2", data_dir=tmp_path)
    assert registry.resolve_split(datasets.get_spec("gad"), "devel") == "dev"
    assert registry.resolve_split(datasets.get_spec("gad"), "VALIDATION") == "dev"


def test_hoc_label_names_are_stable():
    assert datasets.get_spec("hoc").labels == tuple(datasets.HOC_HALLMARKS.values())
    assert len(datasets.HOC_HALLMARKS) == 10
    assert all(re.fullmatch(r"[a-z_]+", v) for v in datasets.HOC_HALLMARKS.values())


# ----------------------------------------------------------------------------------- data dir
def test_data_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("MEDTUNE_DATA_DIR", str(tmp_path / "env"))
    assert datasets.data_dir() == tmp_path / "env"
    assert datasets.data_dir(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("MEDTUNE_DATA_DIR")
    with pytest.raises(DatasetNotFoundError, match="MEDTUNE_DATA_DIR"):
        datasets.data_dir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert datasets.data_dir(fallback=True) == tmp_path / "home" / ".cache" / "medtune" / "data"


def test_absent_corpus_without_env_names_the_variable(monkeypatch, tmp_path):
    monkeypatch.delenv("MEDTUNE_DATA_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(DatasetNotFoundError) as err:
        datasets.load("chemprot", "dev", download=False)
    message = str(err.value)
    assert "MEDTUNE_DATA_DIR" in message
    assert str(tmp_path / "home" / ".cache" / "medtune" / "data" / "chemprot" / "dev.tsv") in message
    assert not (tmp_path / "home" / ".cache").exists()


# --------------------------------------------------------------------------------------- splits
def test_split_hash_is_sha256_and_platform_independent():
    # Fixed values: a change here would silently reshuffle every split we make.
    assert sha256_hex("12345") == "5994471abb01112afcc18159f6cc74b4f511b99806da59b3caf5a9c173cacfc5"
    assert bucket("12345") == 41 and bucket("0") == 5 and bucket("8528200") == 8
    assert assign_split("12345", [("train", 70), ("dev", 10), ("test", 20)]) == "train"
    assert assign_split("12345", [("train", 40), ("dev", 10), ("test", 50)]) == "dev"
    assert sha256_order(["1", "2", "3"]) == sorted(["1", "2", "3"], key=sha256_hex)
    with pytest.raises(ValueError):
        assign_split("1", [("train", 50), ("test", 40)])


# ------------------------------------------------------------------------------------- download
def _fixture_chemprot(monkeypatch) -> registry.DataFile:
    """Point chemprot's test file at the tiny fixture (its real checksum), keep train/dev as they are."""
    fixture = MIRROR / "chemprot" / "test.tsv"
    data = fixture.read_bytes()
    spec = datasets.get_spec("chemprot")
    test_file = replace(spec.files_for("test")[0], sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    files = tuple(test_file if f.splits == ("test",) else f for f in spec.files)
    monkeypatch.setitem(registry._REGISTRY, "chemprot", replace(spec, files=files))
    return test_file


def test_download_from_file_mirror_fetches_only_the_split_files(monkeypatch, tmp_path):
    _fixture_chemprot(monkeypatch)
    _mirror_env(monkeypatch, MIRROR)
    root = tmp_path / "data"
    docs = datasets.load("chemprot", "test", data_dir=root)
    assert [d.labels for d in docs] == [["CPR:4"], ["False"], ["CPR:3"]]
    assert [d.id for d in docs] == ["chemprot-test-0", "chemprot-test-1", "chemprot-test-2"]
    assert _files_under(root) == [root / "chemprot" / "test.tsv"]  # no train/dev, no temp file
    assert (root / "chemprot" / "test.tsv").read_bytes() == (MIRROR / "chemprot" / "test.tsv").read_bytes()
    # Present now: no second download needed even with download=False and no mirror.
    monkeypatch.delenv(datasets.ENV_MIRROR)
    assert len(datasets.load("chemprot", "test", data_dir=root, download=False)) == 3


def test_checksum_mismatch_leaves_nothing_and_names_both_checksums(monkeypatch, tmp_path):
    test_file = _fixture_chemprot(monkeypatch)
    mirror = tmp_path / "mirror"
    (mirror / "chemprot").mkdir(parents=True)
    tampered = (MIRROR / "chemprot" / "test.tsv").read_bytes().replace(b"CPR:3", b"CPR:9")
    (mirror / "chemprot" / "test.tsv").write_bytes(tampered)
    _mirror_env(monkeypatch, mirror)
    root = tmp_path / "data"
    with pytest.raises(datasets.ChecksumMismatchError) as err:
        datasets.load("chemprot", "test", data_dir=root)
    message = str(err.value)
    assert "test.tsv" in message
    assert test_file.sha256 in message and hashlib.sha256(tampered).hexdigest() in message
    assert isinstance(err.value, DataFormatError)
    assert _files_under(root) == []


def test_oversized_download_is_refused(monkeypatch, tmp_path):
    _fixture_chemprot(monkeypatch)
    mirror = tmp_path / "mirror"
    (mirror / "chemprot").mkdir(parents=True)
    (mirror / "chemprot" / "test.tsv").write_bytes((MIRROR / "chemprot" / "test.tsv").read_bytes() * 2)
    _mirror_env(monkeypatch, mirror)
    with pytest.raises(datasets.ChecksumMismatchError, match="size mismatch"):
        datasets.load("chemprot", "test", data_dir=tmp_path / "data")
    assert _files_under(tmp_path / "data") == []


def test_absent_corpus_error_names_the_paths(monkeypatch, tmp_path):
    root = tmp_path / "data"
    with pytest.raises(DatasetNotFoundError) as err:
        datasets.load("ncbi-disease", "dev", data_dir=root, download=False)
    message = str(err.value)
    assert str(root / "ncbi_disease" / "original-data" / "devel" / "NCBIdevelopset_corpus.txt") in message
    assert "NCBItrainset" not in message  # only what the split needs
    assert "MEDTUNE_DATA_DIR" in message
    assert "https://raw.githubusercontent.com/spyysalo/ncbi-disease/5a266c6/" in message


def test_failed_download_says_where_to_put_the_files(monkeypatch, tmp_path):
    _mirror_env(monkeypatch, tmp_path / "empty-mirror")
    root = tmp_path / "data"
    with pytest.raises(DatasetNotFoundError) as err:
        datasets.load("pubmedqa", "test", data_dir=root)
    message = str(err.value)
    for name in ("ori_pqal.json", "test_ground_truth.json"):
        assert str(root / "pubmedqa" / name) in message
    assert "Download failed" in message and "MEDTUNE_DATA_DIR" in message
    assert _files_under(root) == []


def test_hoc_download_is_declared_unsupported(monkeypatch, tmp_path):
    _mirror_env(monkeypatch, tmp_path / "empty-mirror")
    root = tmp_path / "data"
    with pytest.raises(DatasetNotFoundError) as err:
        datasets.load("hoc", "train", data_dir=root)
    message = str(err.value)
    assert f"{root / 'hoc' / 'text'}/" in message and f"{root / 'hoc' / 'labels'}/" in message
    assert "git clone https://github.com/sb895/Hallmarks-of-Cancer" in message
    assert "not supported" in message


@pytest.mark.data
def test_download_real_files_from_file_mirror(real_root, monkeypatch, tmp_path):
    _need_folder(real_root, "gad")
    mirror = tmp_path / "mirror"
    (mirror / "gad").mkdir(parents=True)
    shutil.copyfile(real_root / "gad" / "test.tsv", mirror / "gad" / "test.tsv")
    _mirror_env(monkeypatch, mirror)
    root = tmp_path / "data"
    docs = datasets.load("gad", "test", data_dir=root)
    assert len(docs) == 534
    assert _files_under(root) == [root / "gad" / "test.tsv"]
    assert docs == datasets.load("gad", "test", data_dir=real_root)
    with pytest.raises(DatasetNotFoundError, match="train.tsv"):  # train is not in the mirror
        datasets.load("gad", "dev", data_dir=root)


# ------------------------------------------------------------------------------ real corpora
# (name, split, documents, total mentions (NER) or {label: count} (classification))
EXPECTED = [
    ("ncbi-disease", "train", 592, 5134),
    ("ncbi-disease", "dev", 100, 787),
    ("ncbi-disease", "test", 100, 960),
    ("bc5cdr", "train", 500, 9385),
    ("bc5cdr", "dev", 500, 9591),
    ("bc5cdr", "test", 500, 9809),
    ("bc5cdr-chem", "train", 500, 5203),
    ("bc5cdr-chem", "dev", 500, 5347),
    ("bc5cdr-chem", "test", 500, 5385),
    ("bc5cdr-disease", "train", 500, 4182),
    ("bc5cdr-disease", "dev", 500, 4244),
    ("bc5cdr-disease", "test", 500, 4424),
    ("bc2gm", "train", 12574, 15197),
    ("bc2gm", "dev", 2519, 3061),
    ("bc2gm", "test", 5038, 6325),
    ("hoc", "train", 1300, {"proliferative_signaling": 325, "evading_growth_suppressors": 163,
                            "resisting_cell_death": 298, "replicative_immortality": 76, "angiogenesis": 97,
                            "invasion_metastasis": 214, "genomic_instability": 227,
                            "tumor_promoting_inflammation": 164, "cellular_energetics": 75,
                            "avoiding_immune_destruction": 77}),
    ("hoc", "dev", 191, {"proliferative_signaling": 41, "evading_growth_suppressors": 24,
                         "resisting_cell_death": 36, "replicative_immortality": 13, "angiogenesis": 16,
                         "invasion_metastasis": 34, "genomic_instability": 33,
                         "tumor_promoting_inflammation": 22, "cellular_energetics": 13,
                         "avoiding_immune_destruction": 15}),
    ("hoc", "test", 361, {"proliferative_signaling": 96, "evading_growth_suppressors": 53,
                          "resisting_cell_death": 95, "replicative_immortality": 26, "angiogenesis": 30,
                          "invasion_metastasis": 43, "genomic_instability": 73,
                          "tumor_promoting_inflammation": 54, "cellular_energetics": 17,
                          "avoiding_immune_destruction": 16}),
    ("nicta-piboso", "train", 6979, {"background": 1832, "intervention": 258, "other": 1114,
                                     "outcome": 3186, "population": 504, "study design": 85}),
    ("nicta-piboso", "dev", 801, {"background": 191, "intervention": 33, "other": 136, "outcome": 378,
                                  "population": 57, "study design": 6}),
    ("nicta-piboso", "test", 1991, {"background": 525, "intervention": 63, "other": 303, "outcome": 959,
                                    "population": 120, "study design": 21}),
    ("chemprot", "train", 16521, {"CPR:3": 761, "CPR:4": 2251, "CPR:5": 172, "CPR:6": 235, "CPR:9": 713,
                                  "False": 12389}),
    ("chemprot", "dev", 10361, {"CPR:3": 548, "CPR:4": 1093, "CPR:5": 115, "CPR:6": 199, "CPR:9": 457,
                                "False": 7949}),
    ("chemprot", "test", 14396, {"CPR:3": 664, "CPR:4": 1658, "CPR:5": 183, "CPR:6": 292, "CPR:9": 644,
                                 "False": 10955}),
    ("gad", "train", 4317, {"0": 2042, "1": 2275}),
    ("gad", "dev", 479, {"0": 234, "1": 245}),
    ("gad", "test", 534, {"0": 253, "1": 281}),
    ("pubmedqa", "train", 450, {"yes": 250, "no": 154, "maybe": 46}),
    ("pubmedqa", "dev", 50, {"yes": 26, "no": 15, "maybe": 9}),
    ("pubmedqa", "test", 500, {"yes": 276, "no": 169, "maybe": 55}),
    ("pubmedqa-long-answer", "train", 450, {"yes": 250, "no": 154, "maybe": 46}),
    ("pubmedqa-long-answer", "dev", 50, {"yes": 26, "no": 15, "maybe": 9}),
    ("physionet-deid", "train", 1342, 950),
    ("physionet-deid", "dev", 229, 159),
    ("physionet-deid", "test", 272, 192),
    ("ade-classification", "train", 16901, {"ADE": 3449, "noADE": 13452}),
    ("ade-classification", "dev", 1991, {"ADE": 417, "noADE": 1574}),
    ("ade-classification", "test", 2068, {"ADE": 406, "noADE": 1662}),
    ("ade", "train", 16901, 8823),
    ("ade", "dev", 1991, 1024),
    ("ade", "test", 2068, 992),
    ("bc5cdr-cid", "train", 500, 9385),
    ("bc5cdr-cid", "dev", 500, 9591),
    ("bc5cdr-cid", "test", 500, 9809),
    ("negex", "test", 2376, {"present": 1885, "negated": 491}),
    ("assertion", "train", 5624, {"present": 3317, "negated": 1411, "uncertain": 896}),
    ("assertion", "dev", 733, {"present": 401, "negated": 246, "uncertain": 86}),
    ("assertion", "test", 2376, {"present": 1885, "negated": 491, "uncertain": 0}),
    ("ncbi-disease-linking", "train", 592, 5134),
    ("ncbi-disease-linking", "dev", 100, 787),
    ("ncbi-disease-linking", "test", 100, 960),
    ("bc5cdr-disease-linking", "train", 500, 4182),
    ("bc5cdr-disease-linking", "dev", 500, 4244),
    ("bc5cdr-disease-linking", "test", 500, 4424),
    ("bc5cdr-chem-linking", "train", 500, 5203),
    ("bc5cdr-chem-linking", "dev", 500, 5347),
    ("bc5cdr-chem-linking", "test", 500, 5385),
    ("covid-qa", "train", 1033, 1033),
    ("covid-qa", "dev", 139, 139),
    ("covid-qa", "test", 208, 208),
    ("covid-qa-sentences", "train", 11466, {"irrelevant": 10330, "relevant": 1136}),
    ("covid-qa-sentences", "dev", 1551, {"irrelevant": 1390, "relevant": 161}),
    ("covid-qa-sentences", "test", 2318, {"irrelevant": 2080, "relevant": 238}),
    ("medquad", "train", 13117, {"information": 3641, "symptoms": 2164, "treatment": 1941,
                                 "inheritance": 1159, "frequency": 900, "genetic changes": 874, "causes": 592,
                                 "exams and tests": 539, "research": 308, "outlook": 278,
                                 "susceptibility": 255, "considerations": 197, "prevention": 168,
                                 "stages": 62, "complications": 38, "support groups": 1}),
    ("medquad", "dev", 1692, {"information": 440, "symptoms": 310, "treatment": 257, "inheritance": 153,
                              "frequency": 113, "genetic changes": 110, "causes": 70, "exams and tests": 62,
                              "research": 44, "outlook": 45, "susceptibility": 35, "considerations": 16,
                              "prevention": 21, "stages": 12, "complications": 4, "support groups": 0}),
    ("medquad", "test", 1598, {"information": 454, "symptoms": 274, "treatment": 244, "inheritance": 134,
                               "frequency": 107, "genetic changes": 103, "causes": 65, "exams and tests": 52,
                               "research": 43, "outlook": 38, "susceptibility": 34, "considerations": 22,
                               "prevention": 21, "stages": 3, "complications": 4, "support groups": 0}),
    ("medquad-qtype", "train", 13119, {"information": 3643, "symptoms": 2164, "treatment": 1941,
                                       "inheritance": 1159, "frequency": 900, "genetic changes": 874,
                                       "causes": 592, "exams and tests": 539, "research": 308, "outlook": 278,
                                       "susceptibility": 255, "considerations": 197, "prevention": 168,
                                       "stages": 62, "complications": 38, "support groups": 1}),
    ("medquad-qtype", "dev", 1693, {"information": 441, "symptoms": 310, "treatment": 257, "inheritance": 153,
                                    "frequency": 113, "genetic changes": 110, "causes": 70,
                                    "exams and tests": 62, "research": 44, "outlook": 45,
                                    "susceptibility": 35, "considerations": 16, "prevention": 21,
                                    "stages": 12, "complications": 4, "support groups": 0}),
    ("medquad-qtype", "test", 1600, {"information": 456, "symptoms": 274, "treatment": 244,
                                     "inheritance": 134, "frequency": 107, "genetic changes": 103,
                                     "causes": 65, "exams and tests": 52, "research": 43, "outlook": 38,
                                     "susceptibility": 34, "considerations": 22, "prevention": 21,
                                     "stages": 3, "complications": 4, "support groups": 0}),
    # coding: (documents, (codes, evidence spans)); the Spanish readings carry the X.tsv references
    ("codiesp-d", "train", 500, (5639, 0)),
    ("codiesp-d", "dev", 250, (2677, 0)),
    ("codiesp-d", "test", 250, (2842, 0)),
    ("codiesp-d-es", "train", 500, (5639, 7209)),
    ("codiesp-d-es", "dev", 250, (2677, 3431)),
    ("codiesp-d-es", "test", 250, (2842, 3665)),
    ("codiesp-p", "train", 500, (1550, 0)),
    ("codiesp-p", "dev", 250, (817, 0)),
    ("codiesp-p", "test", 250, (879, 0)),
    ("codiesp-p-es", "train", 500, (1550, 1972)),
    ("codiesp-p-es", "dev", 250, (817, 1046)),
    ("codiesp-p-es", "test", 250, (879, 1112)),
]


@pytest.mark.data
@pytest.mark.parametrize("name", ALL_NAMES)
def test_real_corpus_counts(real_root, name):
    _need_folder(real_root, name)
    spec = datasets.get_spec(name)
    rows = {split: (n, counts) for nm, split, n, counts in EXPECTED if nm == name}
    assert set(rows) == set(spec.splits)
    for split, (n_docs, counts) in rows.items():
        docs = datasets.load(name, split, data_dir=real_root, download=False)
        assert len(docs) == n_docs, (name, split)
        assert len({d.id for d in docs}) == n_docs, "document ids are unique"
        if spec.task in ("ner", "relation", "linking", "qa"):
            assert sum(len(d.spans) for d in docs) == counts
            assert {s.label for d in docs for s in d.spans} <= set(spec.labels)
        elif spec.task == "coding":
            assert (sum(len(d.labels) for d in docs), sum(len(d.spans) for d in docs)) == counts
            assert {s.label for d in docs for s in d.spans} <= set(spec.labels)
        elif spec.task == "assertion":
            seen = {label: 0 for label in spec.labels}
            for d in docs:
                assert len(d.spans) == 1 and d.spans[0].attributes["assertion"] in seen
                seen[d.spans[0].attributes["assertion"]] += 1
            assert seen == counts
        else:
            seen = {label: 0 for label in spec.labels}
            for d in docs:
                assert spec.multi_label or len(d.labels) == 1
                for label in d.labels:
                    seen[label] += 1
            assert seen == counts
        for d in docs[:50]:
            d.validate()
            assert (d.text_pair is not None) == spec.pair


@pytest.mark.data
def test_info_reports_counts_and_notes(real_root):
    _need_folder(real_root, "ncbi-disease")
    info = datasets.info("ncbi-disease", data_dir=real_root)
    assert info["licence"] and info["citation"] and "8528200" in info["split_note"]
    train = info["splits"]["train"]
    assert train["documents"] == 592 and train["mentions"] == {"Disease": 5134}
    assert train["duplicate_documents_removed"] == 1
    assert sum(train["mention_types"].values()) == 5134
    assert "sentences" not in train  # no sentence split in PubTator

    _need_folder(real_root, "bc5cdr")
    bc5 = datasets.info("bc5cdr", data_dir=real_root)["splits"]
    assert sum(s["mentions_total"] for s in bc5.values()) == 28785
    assert sum(s["relations"]["CID"] for s in bc5.values()) == 3116

    _need_folder(real_root, "hoc")
    hoc = datasets.info("hoc", data_dir=real_root)["splits"]
    assert sum(s["documents"] for s in hoc.values()) == 1852
    assert sum(s["sentences"] for s in hoc.values()) == 17464
    assert sum(s["unlabelled"] for s in hoc.values()) == 272

    _need_folder(real_root, "ade-classification")
    ade = datasets.info("ade-classification", data_dir=real_root)
    assert ade["notes"] == {"positive_relation_rows": 6821, "positive_sentences": 4272,
                            "negative_rows": 16695, "negative_duplicates_removed": 7,
                            "in_both_files_counted_positive": 0, "pmids": 2972,
                            "mentions_moved_to_matching_occurrence": 0, "relation_rows_duplicated": 0,
                            "relation_rows_mention_not_in_sentence": 0}
    assert ade["splits"]["dev"]["sentences"] == 1991
    relations = datasets.info("ade", data_dir=real_root)["splits"]
    assert sum(s["relations"]["ADE"] for s in relations.values()) == 6821  # every DRUG-AE.rel row


@pytest.mark.data
@pytest.mark.parametrize("name,key", [("hoc", "pmid"), ("pubmedqa", "pmid"),
                                      ("ade-classification", "pmid"), ("gad", "row")])
def test_made_splits_are_deterministic_and_disjoint(real_root, name, key):
    _need_folder(real_root, name)
    first = {s: datasets.load(name, s, data_dir=real_root) for s in ("train", "dev", "test")}
    datasets.clear_cache()  # re-parse from the files
    second = {s: datasets.load(name, s, data_dir=real_root) for s in ("train", "dev", "test")}
    for split in first:
        assert [d.to_dict() for d in first[split]] == [d.to_dict() for d in second[split]]
    keys = {s: {d.metadata[key] for d in docs} for s, docs in first.items()}
    if name == "gad":  # train and dev come from train.tsv; test rows are another file
        assert not keys["train"] & keys["dev"]
        assert keys["train"] | keys["dev"] == set(range(4796))
    else:
        assert not keys["train"] & keys["dev"] and not keys["train"] & keys["test"]
        assert not keys["dev"] & keys["test"]
    if name == "hoc":
        for split, docs in first.items():
            for d in docs:
                assert assign_split(d.metadata["pmid"], [("train", 70), ("dev", 10), ("test", 20)]) == split
    if name == "pubmedqa":
        dev = [d.id for d in first["dev"]]
        rest = dev + [d.id for d in first["train"]]
        assert sorted(dev) == sorted(sha256_order(rest)[:50])


@pytest.mark.data
def test_document_shapes(real_root):
    _need_folder(real_root, "hoc")
    doc = datasets.load("hoc", "dev", data_dir=real_root)[0]
    assert len(doc.metadata["sentences"]) == len(doc.metadata["sentence_labels"])
    for (a, b), nxt in zip(doc.metadata["sentences"], doc.metadata["sentences"][1:] + [None]):
        assert doc.text[a:b].strip() and (nxt is None or nxt[0] == b + 1)
    union = {x for labels in doc.metadata["sentence_labels"] for x in labels}
    assert set(doc.labels) == union

    _need_folder(real_root, "pubmedqa")
    q = datasets.load("pubmedqa", "test", data_dir=real_root)[0]
    assert q.text_pair and q.text_pair.endswith("?") and q.labels[0] in ("yes", "no", "maybe")
    a, b = q.metadata["contexts"][0]
    assert q.text[a:b] and b <= len(q.text)

    _need_folder(real_root, "ncbi-disease")
    n = datasets.load("ncbi-disease", "test", data_dir=real_root)[0]
    assert all(s.label == "Disease" and s.attributes["type"] for s in n.spans)

    _need_folder(real_root, "bc5cdr")
    full = datasets.load("bc5cdr", "test", data_dir=real_root)
    chem = datasets.load("bc5cdr-chem", "test", data_dir=real_root)
    assert any(d.relations for d in full) and not any(d.relations for d in chem)
    assert all("id_relations" not in d.metadata for d in chem)
    assert [d.id for d in full] == [d.id for d in chem]

    _need_folder(real_root, "nicta-piboso")
    s = datasets.load("nicta-piboso", "dev", data_dir=real_root)[1]
    assert s.id == f"{s.metadata['abstract_id']}-1" and s.metadata["sentence_index"] == 1


@pytest.mark.data
def test_load_returns_independent_copies(real_root):
    _need_folder(real_root, "hoc")
    docs = datasets.load("hoc", "dev", data_dir=real_root)
    original = json.loads(docs[0].to_json())
    docs[0].labels.append("x")
    docs[0].metadata["sentences"].clear()
    docs.clear()
    again = datasets.load("hoc", "dev", data_dir=real_root)
    assert again[0].to_dict() == original and len(again) == 191


def test_ade_offsets_are_mapped_into_the_sentence(tmp_path):
    """DRUG-AE.rel offsets are document-level: the sentence's shift is the one its mentions agree on,
    and a mention that occurs twice takes the occurrence the document offset points at."""
    folder = tmp_path / "ade_corpus_v2"
    folder.mkdir()
    sentence = "Rash after drug X; drug X was stopped."
    # the sentence starts at document offset 100; the second "drug X" (local 19) is the annotated one
    (folder / "DRUG-AE.rel").write_text(
        f"7|{sentence}|Rash|100|104|drug X|119|125\n", encoding="utf-8")
    (folder / "ADE-NEG.txt").write_text("7 NEG Nothing happened.\n", encoding="utf-8")
    docs = [d for split in ("train", "dev", "test") for d in datasets.load("ade", split, data_dir=tmp_path,
                                                                        download=False)]
    pos = next(d for d in docs if d.spans)
    assert [(s.start, s.end, s.label, s.text) for s in pos.spans] == [(0, 4, "AE", "Rash"),
                                                                     (19, 25, "Drug", "drug X")]
    by_id = pos.span_by_id()
    assert [(by_id[r.head].text, by_id[r.tail].text, r.label) for r in pos.relations] == [("drug X", "Rash", "ADE")]
    neg = next(d for d in docs if not d.spans)
    assert neg.text == "Nothing happened." and not neg.relations and not neg.labels


def test_ade_row_with_bad_offset_names_line_and_field(tmp_path):
    folder = tmp_path / "ade_corpus_v2"
    folder.mkdir()
    (folder / "DRUG-AE.rel").write_text("7|A rash.|rash|2|6|x|a|b\n", encoding="utf-8")
    (folder / "ADE-NEG.txt").write_text("", encoding="utf-8")
    with pytest.raises(DataFormatError) as info:
        datasets.load("ade", "train", data_dir=tmp_path, download=False)
    message = str(info.value)
    assert "DRUG-AE.rel:1" in message and "start/end" in message
    assert "rash" not in message.lower().replace("drug-ae.rel", "")
