"""The linker split (issue 11): saved linkers written before it (tests/fixtures/golden/linker, made by its
build.py) load and predict exactly as they did, scores to the last bit."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from medtune.linking import Linker

GOLDEN_DIR = Path(__file__).parent / "fixtures" / "golden" / "linker"
GOLDEN = json.loads((GOLDEN_DIR / "golden.json").read_text(encoding="utf-8"))

sys.path.insert(0, str(GOLDEN_DIR))
from build import LINKERS, predictions  # noqa: E402


@pytest.mark.parametrize("name", sorted(LINKERS))
def test_saved_linker_predicts_as_before(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(GOLDEN_DIR)  # the manifests name the encoder by the relative path "encoder"
    linker = Linker.load(GOLDEN_DIR / name)
    got = json.loads(json.dumps(predictions(linker)))  # tuples as lists, as in golden.json
    want = GOLDEN[name]
    for part in want:
        assert got[part] == want[part], f"{name}: {part}"
    sources = {s["attributes"]["link_source"] for d in got["documents"] for s in d["spans"] if "attributes" in s}
    assert {"exact", "abbreviation", "train", "composite", "dense"} <= sources
