"""The linker split (issue 11): saved linkers written before it (tests/fixtures/golden/linker, made by its
build.py) load and predict exactly as they did, scores to the last bit, and save to the same files; the
settings are one model; the parts (normalize, lexical, dense) work alone."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from helpers import load_module

from medtune.errors import ConfigError, ModelError
from medtune.linking import EncoderSettings, Linker, LinkerSettings, Vocabulary
from medtune.linking.config import LinkerConfig
from medtune.linking.dense import DenseIndex
from medtune.linking.lexical import LexicalIndex
from medtune.linking.normalize import LEVEL_SCORE, LEVELS, level_key, uninvert, without_salts

GOLDEN_DIR = Path(__file__).parent / "fixtures" / "golden" / "linker"
GOLDEN = json.loads((GOLDEN_DIR / "golden.json").read_text(encoding="utf-8"))

_build = load_module(GOLDEN_DIR / "build.py", "golden_linker_build")
LINKERS, predictions = _build.LINKERS, _build.predictions


def _close(got: object, want: object) -> bool:
    """Equal, floats to 1e-6 (nested dicts and lists)."""
    if isinstance(want, float) and isinstance(got, (int, float)):
        return got == pytest.approx(want, rel=1e-6, abs=1e-6)
    if isinstance(want, dict) and isinstance(got, dict):
        return got.keys() == want.keys() and all(_close(got[k], want[k]) for k in want)
    if isinstance(want, list) and isinstance(got, list):
        return len(got) == len(want) and all(_close(g, w) for g, w in zip(got, want))
    return got == want


@pytest.mark.parametrize("name", sorted(LINKERS))
def test_saved_linker_predicts_as_before(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(GOLDEN_DIR)  # the manifests name the encoder by the relative path "encoder"
    linker = Linker.load(GOLDEN_DIR / name)
    got = json.loads(json.dumps(predictions(linker)))  # tuples as lists, as in golden.json
    want = GOLDEN[name]
    for part in want:  # dense scores to 1e-6: matmul order varies with the CPU and its threads
        assert _close(got[part], want[part]), f"{name}: {part}"
    sources = {s["attributes"]["link_source"] for d in got["documents"] for s in d["spans"] if "attributes" in s}
    assert {"exact", "abbreviation", "train", "composite", "dense"} <= sources


@pytest.mark.parametrize("name", sorted(LINKERS))
def test_saved_again_writes_the_same_files(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(GOLDEN_DIR)
    out = Linker.load(GOLDEN_DIR / name).save(tmp_path / name)
    old_manifest = json.loads((GOLDEN_DIR / name / "manifest.json").read_text(encoding="utf-8"))
    new_manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert new_manifest == old_manifest  # same keys, same order of settings, same values
    assert list(new_manifest["settings"]) == list(LinkerSettings.model_fields)
    for file in sorted((GOLDEN_DIR / name).iterdir()):
        if file.name != "manifest.json":
            assert (out / file.name).read_bytes() == file.read_bytes(), file.name


# ----------------------------------------------------------------------------- settings, defined once
def test_settings_one_model_for_linker_config_and_manifest(tmp_path: Path) -> None:
    vocab = _vocab(tmp_path)
    linker = Linker(vocab, components=["exact"], dense_sparse_weight=0.2, prefer="vocab", bf16=False)
    assert linker.settings == LinkerSettings(dense_sparse_weight=0.2, prefer="vocab")
    assert linker.encoder_settings == EncoderSettings(bf16=False)
    assert linker.dense_sparse_weight == 0.2 and linker.prefer == "vocab"  # read as attributes
    assert linker.configure(dense_train_bonus=0.5) is linker and linker.settings.dense_train_bonus == 0.5
    with pytest.raises(ValueError, match="unknown linker setting 'dense_bonus'"):
        linker.configure(dense_bonus=1.0)
    with pytest.raises(ValueError, match="prefer"):
        linker.configure(prefer="both")
    assert linker.settings.dense_train_bonus == 0.5  # a refused change leaves the settings as they were
    with pytest.raises(ValueError, match="unknown Linker option"):
        Linker(vocab, dense_bonus=1.0)
    with pytest.raises(ValueError, match="pooling"):
        Linker(vocab, pooling="max")
    with pytest.raises(AttributeError):
        linker.no_such_setting  # noqa: B018
    config = LinkerConfig.model_validate({"vocabulary": "x", "settings": {"prefer": "vocab"},
                                          "encoder": {"name": "enc", "max_length": 16}})
    assert config.settings == LinkerSettings(prefer="vocab") and config.encoder.max_length == 16


def test_config_refuses_unknown_settings(tmp_path: Path) -> None:
    path = tmp_path / "linker.yaml"
    path.write_text("vocabulary: mesh-disease\nsettings: {dense_bonus: 1}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        LinkerConfig.from_yaml(path)
    message = str(info.value)
    assert "settings.dense_bonus" in message and "dense_train_bonus" in message and str(path) in message


def test_saved_settings_of_another_version_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(GOLDEN_DIR)
    out = Linker.load(GOLDEN_DIR / "linker-default").save(tmp_path / "l")
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    manifest["settings"]["dense_magic"] = 1
    (out / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(ModelError, match="dense_magic"):
        Linker.load(out)


# ----------------------------------------------------------------------------- the parts alone
def _vocab(tmp_path: Path) -> Vocabulary:
    path = tmp_path / "vocab.tsv"
    path.write_text("id\tname\tsynonyms\nD001\tCarcinoma, Hepatocellular\tLiver cell carcinoma\n"
                    "D002\tHeart Failure\t\nC003\tHeart failure syndrome\t\n", encoding="utf-8")
    return Vocabulary.from_tsv(path)


def test_normalize_levels() -> None:
    assert LEVELS == ("exact", "norm", "sorted", "loose") and LEVEL_SCORE["exact"] == 1.0
    assert level_key("exact", "  Heart\u00a0 FAILURE ") == "heart failure"
    assert level_key("sorted", "Carcinoma, Hepatocellular") == level_key("sorted", "hepatocellular carcinomas")
    assert level_key("loose", "kidney tumours") == level_key("loose", "renal cancer")
    assert uninvert("Carcinoma, Hepatocellular") == "Hepatocellular Carcinoma"
    assert uninvert("Diabetes Mellitus, Type 2") == "Diabetes Mellitus, Type 2"  # digit: not inverted
    assert without_salts("Bupropion HCl") == "Bupropion" and without_salts("Bupropion") is None


def test_lexical_index(tmp_path: Path) -> None:
    index = LexicalIndex(_vocab(tmp_path))
    assert index.vocab_lookup("exact", "hepatocellular carcinoma") == ("MESH:D001",)  # uninverted name
    assert index.vocab_lookup("norm", "heart failures") == ("MESH:D002",)
    assert index.lookup("liver cell carcinomas", ["exact", "normalised"], "train") == (
        ("MESH:D001",), LEVEL_SCORE["norm"], "normalised")
    assert index.lookup("heart failure", ["exact"], "train")[2] == "exact"
    index.set_train(Counter({("HF", ("MESH:C003",)): 3, ("hf", ("MESH:D002",)): 1}))
    answer, score, source = index.lookup("HF", ["exact", "normalised", "train"], "train")
    assert (answer, source) == (("MESH:C003",), "train") and score == pytest.approx(0.75)  # 3 of 4 votes
    assert index.lookup("HF", ["exact", "normalised"], "train") is None
    assert index.prior == Counter({"MESH:C003": 3, "MESH:D002": 1})


def test_dense_index_with_a_stub_encoder(tmp_path: Path) -> None:
    class Stub:  # texts -> fixed unit vectors: the ranking and the adjustments alone
        vectors = {"a": [1.0, 0.0], "b": [0.8, 0.6], "c": [0.6, 0.8], "q": [1.0, 0.0]}

        def encode(self, texts):
            return np.array([self.vectors[t] for t in texts], dtype=np.float32)

    index = DenseIndex(Stub())  # type: ignore[arg-type]
    index.build([("a", ("MESH:C1",), False), ("b", ("MESH:D2",), True), ("c", ("MESH:D3",), False)],
                seen_ids={"MESH:D2"})
    assert len(index) == 3 and index.embeddings.dtype == np.float16
    plain = LinkerSettings(dense_train_bonus=0.0, dense_scr_penalty=0.0, dense_context_bonus=0.0)
    assert [a for a, _ in index.search("q", plain, k=3)] == [("MESH:C1",), ("MESH:D2",), ("MESH:D3",)]
    tuned = LinkerSettings(dense_train_bonus=0.1, dense_scr_penalty=0.25)  # C1: 1-0.25, D2: 0.8+0.1
    hits = index.search("q", tuned, k=2)
    assert [a for a, _ in hits] == [("MESH:D2",), ("MESH:C1",)] and hits[0][1] == pytest.approx(0.9, abs=1e-3)
    no_train = index.search("q", tuned, k=3, use_train=False)  # training rows never returned, no bonus
    assert [a for a, _ in no_train] == [("MESH:C1",), ("MESH:D3",)]
    boosted = index.search("q", plain.model_copy(update={"dense_context_bonus": 0.5}), k=1,
                           context=frozenset({("MESH:D3",)}))
    assert boosted[0][0] == ("MESH:D3",)
    index.clear()
    assert not index.built and len(index) == 0
    with pytest.raises(ValueError):
        index.set([("a", ("X",), False)], np.zeros((2, 2), dtype=np.float16), ())
